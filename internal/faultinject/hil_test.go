package faultinject

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/internal/hilproc"
)

// hilKills SIGKILLs hil itself (a real process) at random points of a
// run (flattening, booting, in a step) and of a replay, then starts the
// next run: what the killed one left — QEMU processes, hil-vm dirs, veth
// pairs, namespaces, owner records, rootfs lock files and temp dirs — must
// be gone once the next run has started, and the next run must pass.
func (s *suite) hilKills(t *testing.T) {
	dir := t.TempDir()
	long := hilproc.WriteFile(t, dir, "long.yaml", "name: fi-long\nstartup: {budget: 60s}\nsteps:\n  - wait: 30s\n")
	startup := filepath.Join(s.root, "scenarios", "startup.yaml")
	img := "oci:" + filepath.Join(s.images, "pcapwatch")
	type kill struct {
		what   string
		fresh  bool // a rootfs cache of its own: the kill may hit the flatten
		window time.Duration
		args   []string
	}
	run := []string{"run", "--image", img, "--retries", "0", "--progress", "plain", long}
	replay := []string{"replay", "home-minute", "--netns"} // + a namespace of the job's own
	var ks []kill
	for i := 0; i < 4; i++ {
		ks = append(ks, kill{"hil run", false, 1500 * time.Millisecond, run})
	}
	for i := 0; i < 2; i++ {
		ks = append(ks, kill{"hil run, flattening", true, 150 * time.Millisecond, run})
	}
	for i := 0; i < 4; i++ {
		ks = append(ks, kill{"hil replay", false, 1500 * time.Millisecond, replay})
	}
	names := make([]string, len(ks))
	afters := make([]time.Duration, len(ks))
	for i, k := range ks {
		afters[i] = time.Duration(s.float() * float64(k.window))
		names[i] = fmt.Sprintf("%02d_%s", i, strings.ReplaceAll(k.what, " ", "_"))
	}
	parallel(t, vms, names, func(t *testing.T, i int) {
		k := ks[i]
		start := time.Now()
		var env []string
		cache := ""
		if k.fresh {
			cache = hilproc.FreshRootfsCache(t)
			env = []string{"HIL_CACHE=" + cache}
		}
		args := k.args
		if args[0] == "replay" {
			// Each replay its own namespace: two replays into one would
			// both want its eth0.
			args = append(args[:len(args):len(args)], netns(t, fmt.Sprintf("hilfi%d-%d", os.Getpid(), i)))
		}
		p := s.hil(t, env, args...)
		if k.fresh {
			// The flatten of a fresh cache takes a few hundred ms: kill
			// within it, once its temp dir is there.
			p.Until("a rootfs being flattened", time.Minute, func() bool {
				m, _ := filepath.Glob(filepath.Join(cache, "rootfs", ".tmp-*"))
				return len(m) > 0
			})
		}
		time.Sleep(afters[i])
		select {
		case <-p.Done():
			t.Fatalf("%s ended (exit %d) before the SIGKILL %s after its start:\n%s", k.what, p.Code(), afters[i], p.Out())
		default:
		}
		p.Stop(syscall.SIGKILL, 30*time.Second)
		lines := strings.Split(strings.TrimSpace(p.Out()), "\n")
		t.Logf("%s SIGKILLed %s after its start, at: %s", k.what, afters[i].Round(time.Millisecond), lines[len(lines)-1])

		next := s.hilDone(t, 3*time.Minute, env, "run", "--image", img, "--retries", "0", "--progress", "plain", startup)
		r := row{injected: 1, took: time.Since(start)}
		left := hilproc.WaitGone(p.Pid(), nil)
		if cache != "" {
			left = append(left, hilproc.RootFSLeftovers(cache)...)
		}
		if len(left) > 0 {
			t.Errorf("%s SIGKILLed %s after its start left, after the next run: %v\nkilled:\n%s\nnext:\n%s", k.what, afters[i], left, p.Out(), next.Out())
		}
		r.leftovers = len(left) + leftovers(t, next)
		if next.Code() != 0 {
			r.wrongFail++
			t.Errorf("the run after a SIGKILLed %s: exit %d, want 0:\n%s", k.what, next.Code(), next.Out())
		}
		s.tally.add("SIGKILL of "+strings.SplitN(k.what, ",", 2)[0]+", then the next run", r)
	})
}

// absurdSchedules: replay steps and replays that could never end, and
// counts no scenario can mean, are refused before anything boots (issue
// 12, lesser finding 5): a bounded refusal, never a pass, nothing left.
func (s *suite) absurdSchedules(t *testing.T) {
	dir := t.TempDir()
	img := "oci:" + filepath.Join(s.images, "pcapwatch")
	steps := map[string]string{
		"schedule 1e-9pps":     "  - replay: {fixture: dns, schedule: 1e-9pps}\n",
		"schedule xNaN":        "  - replay: {fixture: dns, schedule: xNaN}\n",
		"schedule x1e308":      "  - replay: {fixture: dns, schedule: x1e308}\n",
		"schedule xInf":        "  - replay: {fixture: dns, schedule: xInf}\n",
		"loops 1000000000":     "  - replay: {fixture: dns, loops: 1000000000}\n",
		"count == -1":          "  - expect_output: {regex: x, count: \"== -1\"}\n",
		"wait beyond timeout":  "  - wait: 10m\n",
		"replay beyond within": "  - replay: {fixture: home-minute, schedule: x0.001}\n",
	}
	for what, step := range steps {
		start := time.Now()
		f := hilproc.WriteFile(t, dir, strings.NewReplacer(" ", "_", "=", "", "-", "_").Replace(what)+".yaml",
			"name: absurd\nstartup: {budget: 30s}\nsteps:\n"+step)
		p := s.hilDone(t, time.Minute, nil, "run", "--image", img, "--retries", "0", "--progress", "plain", f)
		r := row{injected: 1, leftovers: leftovers(t, p)}
		switch {
		case p.Code() == 0:
			r.wrongPass++
			t.Errorf("%s: hil run passed:\n%s", what, p.Out())
		case p.Code() != 2 || strings.Contains(p.Out(), "=== RUN"):
			t.Errorf("%s: exit %d; want 2, refused before anything boots:\n%s", what, p.Code(), p.Out())
		}
		r.took = time.Since(start)
		s.tally.add("absurd replay step or bound in a scenario", r)
	}
	start := time.Now()
	p := s.hilDone(t, time.Minute, nil, "replay", "dns", "--netns", netns(t, fmt.Sprintf("hilfa%d", os.Getpid())), "--speed", "1e-9pps")
	r := row{injected: 1, leftovers: leftovers(t, p), took: time.Since(start)}
	if p.Code() == 0 {
		r.wrongPass++
		t.Errorf("hil replay --speed 1e-9pps: exit 0:\n%s", p.Out())
	}
	s.tally.add("absurd replay step or bound in a scenario", r)
}
