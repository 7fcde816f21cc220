package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/internal/owner"
	"github.com/hilproject/hil/internal/testenv"
)

// These tests run the real hil binary as a separate process, send it
// SIGTERM or SIGKILL at chosen points and look at what it left: the QEMU
// processes, hil-vm-* dirs, veth pairs and namespaces it made, all
// recorded under its pid (internal/owner).

var hilBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// TestMain runs hil itself when HIL_TEST_MAIN=1 (tests that need a
// separate hil process re-execute the test binary), else the tests.
func TestMain(m *testing.M) {
	if os.Getenv("HIL_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	if hilBin.dir != "" {
		os.RemoveAll(hilBin.dir)
	}
	os.Exit(code)
}

// buildHil builds cmd/hil once per test binary.
func buildHil(t *testing.T) string {
	t.Helper()
	hilBin.once.Do(func() {
		if hilBin.dir, hilBin.err = os.MkdirTemp("", "hil-cli-test-"); hilBin.err != nil {
			return
		}
		hilBin.path = filepath.Join(hilBin.dir, "hil")
		out, err := exec.Command("go", "build", "-o", hilBin.path, ".").CombinedOutput()
		if err != nil {
			hilBin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if hilBin.err != nil {
		t.Fatal(hilBin.err)
	}
	return hilBin.path
}

// syncBuffer is the combined output of a process, readable while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type hilProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
	code int
	end  time.Time
}

func startHil(t *testing.T, env []string, args ...string) *hilProc {
	t.Helper()
	p := &hilProc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(buildHil(t), args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		p.end = time.Now()
		p.code = p.cmd.ProcessState.ExitCode()
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = 128 + int(ws.Signal())
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *hilProc) pid() int { return p.cmd.Process.Pid }

// until polls cond until it holds or the process ends or limit passes.
func (p *hilProc) until(what string, limit time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		select {
		case <-p.done:
			p.t.Fatalf("hil ended (exit %d) before %s:\n%s", p.code, what, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %s within %s:\n%s", what, limit, p.out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop sends sig and waits for the process; it returns how long it took
// to exit. limit only catches a hang (the watchdog in main exits after
// teardownGrace): the check that matters is that the verb returned.
func (p *hilProc) stop(sig syscall.Signal) time.Duration {
	p.t.Helper()
	sent := time.Now()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(teardownGrace + 20*time.Second):
		p.t.Fatalf("hil still runs %s after %s:\n%s", time.Since(sent), sig, p.out.String())
	}
	return p.end.Sub(sent)
}

// vmDirs are the system target's per-boot dirs owned by pid.
func vmDirs(pid int) []string {
	m, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("hil-vm-%d.*", pid)))
	return m
}

// qemusOf lists the live processes whose command line names a socket in
// one of pid's hil-vm dirs: its QEMUs.
func qemusOf(pid int) []int {
	var out []int
	marker := []byte(fmt.Sprintf("hil-vm-%d.", pid))
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, marker) && !bytes.Contains(b, []byte("hil-cli-test")) {
			if st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); !bytes.Contains(st, []byte(") Z ")) {
				out = append(out, n)
			}
		}
	}
	return out
}

// claimsOf lists the owner records (veth pairs, namespaces) of pid.
func claimsOf(pid int) []string {
	var out []string
	ents, _ := os.ReadDir(owner.RunDir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(owner.RunDir, e.Name()))
		if err == nil && strings.HasPrefix(string(b), strconv.Itoa(pid)+".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// leftovers says what pid left: QEMUs, dirs, veth pairs and namespaces.
func leftovers(pid int) []string {
	var out []string
	for _, q := range qemusOf(pid) {
		out = append(out, fmt.Sprintf("qemu pid %d", q))
	}
	out = append(out, vmDirs(pid)...)
	for _, c := range claimsOf(pid) {
		out = append(out, "owner record "+c)
		kind, name, _ := strings.Cut(c, "-")
		switch kind {
		case "veth":
			if exec.Command("ip", "link", "show", name).Run() == nil {
				out = append(out, "veth "+name)
			}
		case "netns":
			if _, err := os.Stat("/run/netns/" + name); err == nil {
				out = append(out, "netns "+name)
			}
		}
	}
	return out
}

// waitGone waits (briefly) for what a killed process's children do on
// their own (QEMU dies of PR_SET_PDEATHSIG) and returns what remains.
func waitGone(pid int, keep func(string) bool) []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []string
		for _, l := range leftovers(pid) {
			if keep == nil || !keep(l) {
				left = append(left, l)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeScenario(t *testing.T, dir, name, doc string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// freshRootfsCache is a HIL_CACHE that shares everything with the user's
// cache except the rootfs cache, so that the image is flattened anew.
func freshRootfsCache(t *testing.T) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(base, "hil")
	if c := os.Getenv("HIL_CACHE"); c != "" {
		shared = c
	}
	dir := t.TempDir()
	for _, sub := range []string{"agent", "debian", "emuprobe", "images", "init", "initramfs", "kernels", "logs", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(shared, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(shared, sub), filepath.Join(dir, sub)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
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
		reach func(p *hilProc) // returns once the process is at the point
	}
	cache := freshRootfsCache(t)
	flattening := func(p *hilProc) {
		p.until("a rootfs being flattened", time.Minute, func() bool {
			m, _ := filepath.Glob(filepath.Join(cache, "rootfs", ".tmp-*"))
			return len(m) > 0
		})
	}
	booting := func(p *hilProc) {
		p.until("a hil-vm dir", time.Minute, func() bool { return len(vmDirs(p.pid())) > 0 })
	}
	inSteps := func(p *hilProc) {
		p.until("the ready phase", 2*time.Minute, func() bool { return strings.Contains(p.out.String(), "ready (") })
		time.Sleep(300 * time.Millisecond)
	}
	points := []point{
		{"flatten", []string{"HIL_CACHE=" + cache}, []string{"run", "--image", img, "--progress", "plain", steps}, syscall.SIGTERM, flattening},
		{"boot", nil, []string{"run", "--image", img, "--progress", "plain", steps}, syscall.SIGTERM, booting},
		{"steps (wait)", nil, []string{"run", "--image", img, "--progress", "plain", steps}, syscall.SIGINT, inSteps},
		{"replay step", nil, []string{"run", "--image", img, "--progress", "plain", replaying}, syscall.SIGTERM, inSteps},
		{"hil replay", nil, []string{"replay", "home-minute", "--netns", ns}, syscall.SIGTERM, func(p *hilProc) {
			p.until("the replay's veth pair", 30*time.Second, func() bool { return strings.Contains(p.out.String(), "created veth pair") })
			time.Sleep(300 * time.Millisecond)
		}},
	}
	var table []string
	for _, pt := range points {
		t.Run(pt.name, func(t *testing.T) {
			p := startHil(t, pt.env, pt.args...)
			pt.reach(p)
			took := p.stop(pt.sig)
			out := p.out.String()
			if strings.Contains(out, "teardown did not finish") || p.code == 128+int(pt.sig) {
				t.Errorf("exited by the watchdog or the signal itself (exit %d), not through the teardown:\n%s", p.code, out)
			}
			if p.code == 0 {
				t.Errorf("exit 0 after %s:\n%s", pt.sig, out)
			}
			// Right away: the teardown is done before hil exits.
			if left := leftovers(p.pid()); len(left) > 0 {
				t.Errorf("left behind: %v\n%s", left, out)
			}
			if pt.name == "flatten" {
				// The interrupted flatten's temp dir and lock go too.
				if m, _ := filepath.Glob(filepath.Join(cache, "rootfs", "[.s]*")); len(m) > 0 {
					t.Errorf("left in the rootfs cache: %v", m)
				}
			}
			t.Logf("output:\n%s", out)
			table = append(table, fmt.Sprintf("%-16s %-8s exit %3d after %v", pt.name, sigName(pt.sig), p.code, took.Round(time.Millisecond)))
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
	live.until("the live run's ready phase", 2*time.Minute, func() bool { return strings.Contains(live.out.String(), "ready (") })
	liveDirs := vmDirs(live.pid())
	liveReplay := startHil(t, nil, "replay", "home-minute", "--netns", ns2)
	liveReplay.until("the live replay's veth pair", 30*time.Second, func() bool { return strings.Contains(liveReplay.out.String(), "created veth pair") })
	liveVeth := strings.Fields(liveReplay.out.String()[strings.Index(liveReplay.out.String(), "created veth pair")+len("created veth pair"):])[0]

	// 2. A hil replay mid-replay and a hil run mid-boot, both SIGKILLed
	//    (both started before either is killed: every start cleans up).
	//    The run's QEMU dies with it, its dir stays; the replay's pair stays
	//    and used to be reused by the next replay into that namespace.
	rk := startHil(t, nil, "replay", "home-minute", "--netns", ns)
	rk.until("the replay's veth pair", 30*time.Second, func() bool { return strings.Contains(rk.out.String(), "created veth pair") })
	staleVeth := strings.Fields(rk.out.String()[strings.Index(rk.out.String(), "created veth pair")+len("created veth pair"):])[0]
	killed := startHil(t, nil, "run", "--image", img, "--progress", "plain", long)
	killed.until("a hil-vm dir", time.Minute, func() bool { return len(vmDirs(killed.pid())) > 0 })
	killed.stop(syscall.SIGKILL)
	rk.stop(syscall.SIGKILL)
	stale := vmDirs(killed.pid())
	if len(stale) != 1 {
		t.Fatalf("after SIGKILL: dirs %v; expected the one left behind", stale)
	}
	if q := waitGone(killed.pid(), func(l string) bool { return strings.Contains(l, "hil-vm-") }); len(q) > 0 {
		t.Errorf("QEMU outlived the killed hil: %v", q)
	}
	if exec.Command("ip", "link", "show", staleVeth).Run() != nil {
		t.Fatalf("the killed replay's %s is already gone", staleVeth)
	}

	// 4. The next hil to start (a replay into the same namespace) removes
	//    both leftovers, says so, and makes a pair of its own; the next run
	//    after it is clean too.
	nextReplay := startHil(t, nil, "replay", "dns", "--netns", ns, "--speed", "top")
	<-nextReplay.done
	out := nextReplay.out.String()
	for _, want := range []string{"hil: removed " + stale[0] + ", left behind", "hil: removed veth " + staleVeth + ", left behind", "created veth pair"} {
		if !strings.Contains(out, want) {
			t.Errorf("next replay: output lacks %q:\n%s", want, out)
		}
	}
	if nextReplay.code != 0 || strings.Contains(out, "created veth pair "+staleVeth) {
		t.Errorf("next replay: exit %d (want 0), reusing %s?\n%s", nextReplay.code, staleVeth, out)
	}
	next := startHil(t, nil, "run", "--image", img, "--progress", "plain", quick)
	<-next.done
	if next.code != 0 || strings.Contains(next.out.String(), "hil: removed") {
		t.Errorf("next run: exit %d, want 0 with nothing left to remove:\n%s", next.code, next.out.String())
	}
	for _, p := range []*hilProc{killed, rk, next, nextReplay} {
		if left := leftovers(p.pid()); len(left) > 0 {
			t.Errorf("pid %d (%v) left: %v", p.pid(), p.cmd.Args[1:3], left)
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
	live.stop(syscall.SIGTERM)
	liveReplay.stop(syscall.SIGTERM)
	for _, p := range []*hilProc{live, liveReplay} {
		if left := waitGone(p.pid(), nil); len(left) > 0 {
			t.Errorf("pid %d left: %v", p.pid(), left)
		}
	}
}
