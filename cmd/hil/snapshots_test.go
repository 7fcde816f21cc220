package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/hilproc"
	"github.com/hilproject/hil/internal/testenv"
)

// freshSnapshotCache is a hil cache that shares the kernels, rootfs, init
// and package caches with the real one (symlinks) but starts with no
// snapshot, initramfs or log.
func freshSnapshotCache(t *testing.T) string {
	t.Helper()
	root, err := cache.Root()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		switch e.Name() {
		case "snapshots", "initramfs", "logs":
			continue
		}
		if err := os.Symlink(filepath.Join(root, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const concurrentScenario = `name: snap-%s
targets: [system]
platforms: [linux/arm/v7]
strict_delivery: true
app: {env: {HIL_CASE: %s}}
startup: {budget: 90s}
timeout: 3m
steps:
  - replay: {fixture: dns, schedule: top}
  - signal: TERM
  - expect_output: {json: {event: summary, frames: 12, counts.dns_query: 12}, count: "== 1", within: 30s, settle: 10ms}
  - expect_exit: {code: 0, within: 30s}
`

// Two hil run processes on the same image and machine at once, on an
// empty snapshot cache: both boot cold and save the same base snapshot
// and the same app-level one, then restore what is there. Both give the
// right verdicts, each second case boots from a snapshot, and the cache
// ends consistent: every snapshot whole (its metadata beside it, naming
// its own key and level), no temporary left, and no more snapshots than
// there are distinct keys (one base, one per app environment).
func TestConcurrentRunsShareTheSnapshotCache(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-arm"); err != nil {
		t.Skip("qemu-system-arm not installed")
	}
	images := testenv.ImagesDir(t)
	hc := freshSnapshotCache(t)
	scen := t.TempDir()
	for _, c := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(scen, c+".yaml"), []byte(fmt.Sprintf(concurrentScenario, c, c)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var procs []*hilproc.Proc
	var reports []string
	for i := 0; i < 2; i++ {
		rep := filepath.Join(t.TempDir(), "report")
		reports = append(reports, rep)
		procs = append(procs, startHil(t, []string{"HIL_CACHE=" + hc}, "run", "--image", "oci:"+filepath.Join(images, "pcapwatch"),
			"--target", "system", "--progress", "plain", "--retries", "0", "--report", rep, scen))
	}
	for i, p := range procs {
		select {
		case <-p.Done():
		case <-time.After(8 * time.Minute):
			t.Fatalf("hil run %d did not end in 8 minutes:\n%s", i, p.Out())
		}
		if p.Code() != 0 {
			t.Errorf("hil run %d: exit %d:\n%s", i, p.Code(), p.Out())
		}
	}
	for i, rep := range reports {
		b, err := os.ReadFile(filepath.Join(rep, "results.json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Results []scenario.Result }
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		var boots []string
		for _, r := range doc.Results {
			boots = append(boots, r.Scenario+"="+r.Device.String("boot"))
			if r.Verdict != scenario.Pass {
				t.Errorf("run %d: %s: %s: %s", i, r.ID(), r.Verdict, r.Reason)
			}
		}
		t.Logf("run %d boots: %v", i, boots)
		if len(doc.Results) != 2 || doc.Results[1].Device.String("boot") == "cold" {
			t.Errorf("run %d: boots %v; want two cases, the second from a snapshot", i, boots)
		}
	}

	dir := filepath.Join(hc, "snapshots", "system")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{} // key → level
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasSuffix(n, ".tmp"):
			t.Errorf("temporary %s left in the snapshot cache", n)
		case strings.HasSuffix(n, ".vmstate"):
			b, err := os.ReadFile(filepath.Join(dir, n+".json"))
			if err != nil {
				t.Errorf("snapshot %s has no metadata: %v", n, err)
				continue
			}
			var meta struct{ Key, Level string }
			if err := json.Unmarshal(b, &meta); err != nil {
				t.Errorf("snapshot %s: metadata %q: %v", n, b, err)
				continue
			}
			want := strings.TrimSuffix(strings.TrimPrefix(n, "base-"), ".vmstate")
			if meta.Key != want || (meta.Level == "base") != strings.HasPrefix(n, "base-") {
				t.Errorf("snapshot %s: metadata says key %s, level %s", n, meta.Key, meta.Level)
			}
			states[meta.Key] = meta.Level
		case strings.HasSuffix(n, ".vmstate.json"):
			if _, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(n, ".json"))); err != nil {
				t.Errorf("metadata %s without its snapshot", n)
			}
		}
	}
	levels := map[string]int{}
	for _, l := range states {
		levels[l]++
	}
	if levels["base"] != 1 || levels["app"] != 2 || len(states) != 3 {
		t.Errorf("snapshots %v; want one base and one app-level per environment (2)", states)
	}
}
