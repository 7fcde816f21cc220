package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/schemas"
)

// hil cache du / prune / rm on a cache of its own (HIL_CACHE): sizes per
// kind, removal by age and by kind, bad input refused.
func TestCacheVerbs(t *testing.T) {
	root := t.TempDir()
	t.Setenv("HIL_CACHE", root)
	write := func(rel string, size int, age time.Duration) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		for q := p; q != root; q = filepath.Dir(q) {
			os.Chtimes(q, when, when)
		}
	}
	write("snapshots/system/old.vmstate", 3<<20, 30*24*time.Hour)
	write("snapshots/system/old.vmstate.json", 100, 30*24*time.Hour)
	write("snapshots/system/new.vmstate", 2<<20, time.Minute)
	write("rootfs/sha256-aa/rootfs/bin/app", 1<<20, 30*24*time.Hour)
	write("rootfs/sha256-aa/report.json", 10, 30*24*time.Hour)
	write("logs/system/1.console.log", 4096, 2*time.Hour)
	write("kernels/armhf/6.1.0-50-armmp/vmlinuz", 5<<20, time.Hour)

	out, errText, code := runHil(t, "cache", "du", "--json")
	if code != 0 {
		t.Fatalf("du: exit %d %s", code, errText)
	}
	validates(t, "hil cache du --json", schemas.Def("cache_du"), out)
	var du struct {
		Root  string
		Kinds []struct {
			Kind    string
			Entries int
			Bytes   int64
		}
		TotalBytes int64 `json:"total_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &du); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string][2]int64{}
	for _, k := range du.Kinds {
		got[k.Kind] = [2]int64{int64(k.Entries), k.Bytes}
	}
	if du.Root != root || got["snapshots"][0] != 2 || got["snapshots"][1] < 5<<20 || got["rootfs"][0] != 1 || got["kernels"][0] != 1 || got["logs"][0] != 1 || du.TotalBytes < 11<<20 {
		t.Errorf("du: %s", out)
	}
	if out, _, code := runHil(t, "cache", "du"); code != 0 || !strings.Contains(out, "snapshots") || !strings.Contains(out, "MiB") || !strings.Contains(out, "total") {
		t.Errorf("du text: %s", out)
	}

	// Prune: what was not used for a week goes, the rest stays.
	out, errText, code = runHil(t, "cache", "prune", "--older-than", "7d")
	if code != 0 || !strings.Contains(out, "removed 2 entries") {
		t.Fatalf("prune: exit %d %s\n%s", code, errText, out)
	}
	for p, want := range map[string]bool{
		"snapshots/system/old.vmstate": false, "snapshots/system/old.vmstate.json": false, "rootfs/sha256-aa": false,
		"snapshots/system/new.vmstate": true, "logs/system/1.console.log": true, "kernels/armhf/6.1.0-50-armmp/vmlinuz": true,
	} {
		if _, err := os.Stat(filepath.Join(root, p)); (err == nil) != want {
			t.Errorf("after prune, %s exists: %v; want %v", p, err == nil, want)
		}
	}
	// rm by kind.
	if out, errText, code := runHil(t, "cache", "rm", "snapshots", "logs"); code != 0 || !strings.Contains(out, "removed 2 entries") {
		t.Fatalf("rm: exit %d %s\n%s", code, errText, out)
	}
	if _, err := os.Stat(filepath.Join(root, "kernels/armhf/6.1.0-50-armmp/vmlinuz")); err != nil {
		t.Error("rm snapshots logs removed a kernel")
	}
	if out, _, code := runHil(t, "cache", "rm", "--all"); code != 0 || !strings.Contains(out, "removed 1 entry") {
		t.Errorf("rm --all: %d %s", code, out)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"cache", "rm"}, "name the kinds to remove"},
		{[]string{"cache", "rm", "bogus"}, `unknown cache kind "bogus"`},
		{[]string{"cache", "prune"}, "--older-than is required"},
		{[]string{"cache", "prune", "--older-than", "soon"}, "expected a duration like 14d"},
	} {
		if _, errText, code := runHil(t, bad.args...); code != 2 || !strings.Contains(errText, bad.want) {
			t.Errorf("%v: exit %d %q; want 2 and %q", bad.args, code, errText, bad.want)
		}
	}
}
