package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/hilproc"
	"github.com/hilproject/hil/internal/testenv"
)

// These tests run the real hil binary as a separate process, send it
// SIGTERM or SIGKILL at chosen points and look at what it left: the QEMU
// processes, hil-vm-* dirs, veth pairs and namespaces it made, all
// recorded under its pid (internal/owner).

// TestMain runs hil itself when HIL_TEST_MAIN=1 (tests that need a
// separate hil process re-execute the test binary), else the tests.
func TestMain(m *testing.M) {
	if os.Getenv("HIL_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	hilproc.Cleanup()
	os.Exit(code)
}

// buildHil builds cmd/hil once per test binary.
func buildHil(t *testing.T) string { return hilproc.Build(t) }

func startHil(t *testing.T, env []string, args ...string) *hilproc.Proc {
	t.Helper()
	return hilproc.Start(t, env, args...)
}

// stopHil sends sig and waits for the process; limit only catches a hang
// (the watchdog in main exits after teardownGrace): the check that matters
// is that the verb returned.
func stopHil(p *hilproc.Proc, sig syscall.Signal) time.Duration {
	return p.Stop(sig, teardownGrace+20*time.Second)
}

func writeScenario(t *testing.T, dir, name, doc string) string {
	t.Helper()
	return hilproc.WriteFile(t, dir, name, doc)
}

const readyLine = "    pass" // a finished phase in --progress plain

// hil exits soon after SIGTERM or SIGINT at every point of a run, through
// its own teardown (not the watchdog), and leaves no QEMU, dir, veth or
// namespace. The times are printed for the record (go test -v).
func TestSignalAtEveryPointTearsDown(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	dir := t.TempDir()
	img := "oci:" + filepath.Join(images, "pcapwatch")
	steps := writeScenario(t, dir, "steps.yaml", "name: sig-steps\nstartup: {budget: 60s}\nsteps:\n  - wait: 2m\n")
	replaying := writeScenario(t, dir, "replay.yaml", "name: sig-replay\nstartup: {budget: 60s}\nsteps:\n  - replay: home-minute\n")
	ns := "hilsig" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })

	type point struct {
		name  string
		env   []string
		args  []string
		sig   syscall.Signal
		reach func(p *hilproc.Proc) // returns once the process is at the point
	}
	cache := hilproc.FreshRootfsCache(t)
	flattening := func(p *hilproc.Proc) {
		p.Until("a rootfs being flattened", time.Minute, func() bool {
			m, _ := filepath.Glob(filepath.Join(cache, "rootfs", ".tmp-*"))
			return len(m) > 0
		})
	}
	booting := func(p *hilproc.Proc) {
		p.Until("a hil-vm dir", time.Minute, func() bool { return len(hilproc.VMDirs(p.Pid())) > 0 })
	}
	inSteps := func(p *hilproc.Proc) {
		p.Until("the ready phase", 2*time.Minute, func() bool { return strings.Contains(p.Out(), "ready (") })
		time.Sleep(300 * time.Millisecond)
	}
	points := []point{
		{"flatten", []string{"HIL_CACHE=" + cache}, []string{"run", "--image", img, "--progress", "plain", steps}, syscall.SIGTERM, flattening},
		{"boot", nil, []string{"run", "--image", img, "--progress", "plain", steps}, syscall.SIGTERM, booting},
		{"steps (wait)", nil, []string{"run", "--image", img, "--progress", "plain", steps}, syscall.SIGINT, inSteps},
		{"replay step", nil, []string{"run", "--image", img, "--progress", "plain", replaying}, syscall.SIGTERM, inSteps},
		{"hil replay", nil, []string{"replay", "home-minute", "--netns", ns}, syscall.SIGTERM, func(p *hilproc.Proc) {
			p.Until("the replay's veth pair", 30*time.Second, func() bool { return strings.Contains(p.Out(), "created veth pair") })
			time.Sleep(300 * time.Millisecond)
		}},
	}
	var table []string
	for _, pt := range points {
		t.Run(pt.name, func(t *testing.T) {
			p := startHil(t, pt.env, pt.args...)
			pt.reach(p)
			took := stopHil(p, pt.sig)
			out := p.Out()
			if strings.Contains(out, "teardown did not finish") || p.Code() == 128+int(pt.sig) {
				t.Errorf("exited by the watchdog or the signal itself (exit %d), not through the teardown:\n%s", p.Code(), out)
			}
			if p.Code() == 0 {
				t.Errorf("exit 0 after %s:\n%s", pt.sig, out)
			}
			// Right away: the teardown is done before hil exits.
			if left := hilproc.Leftovers(p.Pid()); len(left) > 0 {
				t.Errorf("left behind: %v\n%s", left, out)
			}
			if pt.name == "flatten" {
				// The interrupted flatten's temp dir and lock go too.
				if m := hilproc.RootFSLeftovers(cache); len(m) > 0 {
					t.Errorf("left in the rootfs cache: %v", m)
				}
			}
			t.Logf("output:\n%s", out)
			table = append(table, fmt.Sprintf("%-16s %-8s exit %3d after %v", pt.name, sigName(pt.sig), p.Code(), took.Round(time.Millisecond)))
		})
	}
	t.Logf("signal to exit:\n  %s", strings.Join(table, "\n  "))
}

// A hil run SIGKILLed mid-boot and a hil replay SIGKILLed mid-replay leave
// their dir, veth pair and namespace; the next hil to start removes them
// (saying so), runs clean, and leaves a live concurrent run's alone.
func TestKilledRunsAreCleanedUpByTheNext(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	// Every hil start sweeps the hil-vm dirs of gone processes in its
	// TMPDIR; with the shared /tmp, a hil started by another package's
	// tests at the same moment may sweep this test's stale dir first.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	img := "oci:" + filepath.Join(images, "pcapwatch")
	long := writeScenario(t, dir, "long.yaml", "name: long\nstartup: {budget: 60s}\nsteps:\n  - wait: 2m\n")
	quick := filepath.Join(root, "scenarios", "startup.yaml")

	ns := "hilkill" + strconv.Itoa(os.Getpid())
	ns2 := ns + "b"
	for _, n := range []string{ns, ns2} {
		if out, err := exec.Command("ip", "netns", "add", n).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", n).Run() })
	}
	// 1. Live runs that must survive every cleanup below (each hil start
	//    cleans up).
	live := startHil(t, nil, "run", "--image", img, "--progress", "plain", long)
	live.Until("the live run's ready phase", 2*time.Minute, func() bool { return strings.Contains(live.Out(), "ready (") })
	liveDirs := hilproc.VMDirs(live.Pid())
	liveReplay := startHil(t, nil, "replay", "home-minute", "--netns", ns2)
	liveReplay.Until("the live replay's veth pair", 30*time.Second, func() bool { return strings.Contains(liveReplay.Out(), "created veth pair") })
	liveVeth := strings.Fields(liveReplay.Out()[strings.Index(liveReplay.Out(), "created veth pair")+len("created veth pair"):])[0]

	// 2. A hil replay mid-replay and a hil run mid-boot, both SIGKILLed
	//    (both started before either is killed: every start cleans up).
	//    The run's QEMU dies with it, its dir stays; the replay's pair stays
	//    and used to be reused by the next replay into that namespace.
	rk := startHil(t, nil, "replay", "home-minute", "--netns", ns)
	rk.Until("the replay's veth pair", 30*time.Second, func() bool { return strings.Contains(rk.Out(), "created veth pair") })
	staleVeth := strings.Fields(rk.Out()[strings.Index(rk.Out(), "created veth pair")+len("created veth pair"):])[0]
	killed := startHil(t, nil, "run", "--image", img, "--progress", "plain", long)
	killed.Until("a hil-vm dir", time.Minute, func() bool { return len(hilproc.VMDirs(killed.Pid())) > 0 })
	stopHil(killed, syscall.SIGKILL)
	stopHil(rk, syscall.SIGKILL)
	stale := hilproc.VMDirs(killed.Pid())
	if len(stale) != 1 {
		t.Fatalf("after SIGKILL: dirs %v; expected the one left behind", stale)
	}
	if q := hilproc.WaitGone(killed.Pid(), func(l string) bool { return strings.Contains(l, "hil-vm-") }); len(q) > 0 {
		t.Errorf("QEMU outlived the killed hil: %v", q)
	}
	if exec.Command("ip", "link", "show", staleVeth).Run() != nil {
		t.Fatalf("the killed replay's %s is already gone", staleVeth)
	}

	// 4. The next hil to start (a replay into the same namespace) removes
	//    both leftovers, says so, and makes a pair of its own; the next run
	//    after it is clean too.
	// Veth pairs are host-wide: a hil started by another package's tests
	// may have removed the stale one already (it is gone either way; who
	// removed it is what cannot be asserted then).
	wants := []string{"hil: removed " + stale[0] + ", left behind", "created veth pair"}
	if exec.Command("ip", "link", "show", staleVeth).Run() == nil {
		wants = append(wants, "hil: removed veth "+staleVeth+", left behind")
	} else {
		t.Logf("%s was removed by a concurrent hil before the next replay started", staleVeth)
	}
	// A snapshot save the killed run had under way (its partial file,
	// named for it, untouched for minutes): the next hil removes it too.
	cacheRoot, err := cache.Root()
	if err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(cacheRoot, "snapshots", "system", fmt.Sprintf("base-%d.vmstate.%d.0-0badf00d.tmp", os.Getpid(), killed.Pid()))
	os.MkdirAll(filepath.Dir(partial), 0o755)
	if err := os.WriteFile(partial, []byte("a partial migration stream"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(partial) })
	then := time.Now().Add(-5 * time.Minute)
	os.Chtimes(partial, then, then)
	nextReplay := startHil(t, nil, "replay", "dns", "--netns", ns, "--speed", "top")
	nextReplay.Wait()
	if _, err := os.Stat(partial); err == nil {
		t.Errorf("the killed run's partial snapshot %s is still there after the next hil started", partial)
	}
	out := nextReplay.Out()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("next replay: output lacks %q:\n%s", want, out)
		}
	}
	if nextReplay.Code() != 0 || strings.Contains(out, "created veth pair "+staleVeth) {
		t.Errorf("next replay: exit %d (want 0), reusing %s?\n%s", nextReplay.Code(), staleVeth, out)
	}
	next := startHil(t, nil, "run", "--image", img, "--progress", "plain", quick)
	next.Wait()
	// Only this test's leftovers are asserted on: other packages' tests
	// kill hil processes too, and their veth pairs are host-wide.
	if next.Code() != 0 || strings.Contains(next.Out(), "removed "+stale[0]) || strings.Contains(next.Out(), "removed veth "+staleVeth) {
		t.Errorf("next run: exit %d, want 0 with nothing of this test's left to remove:\n%s", next.Code(), next.Out())
	}
	for _, p := range []*hilproc.Proc{killed, rk, next, nextReplay} {
		if left := hilproc.Leftovers(p.Pid()); len(left) > 0 {
			t.Errorf("pid %d (%v) left: %v", p.Pid(), p.Cmd.Args[1:3], left)
		}
	}
	if exec.Command("ip", "link", "show", staleVeth).Run() == nil {
		t.Errorf("%s still exists", staleVeth)
	}
	for _, d := range liveDirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("the live run's %s was removed: %v", d, err)
		}
	}
	if exec.Command("ip", "link", "show", liveVeth).Run() != nil {
		t.Errorf("the live replay's %s was removed", liveVeth)
	}

	// 5. The live ones end cleanly on SIGTERM.
	stopHil(live, syscall.SIGTERM)
	stopHil(liveReplay, syscall.SIGTERM)
	for _, p := range []*hilproc.Proc{live, liveReplay} {
		if left := hilproc.WaitGone(p.Pid(), nil); len(left) > 0 {
			t.Errorf("pid %d left: %v", p.Pid(), left)
		}
	}
}
