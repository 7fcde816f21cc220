// Package hilproc runs the real hil binary as a separate process in tests,
// sends it signals at chosen points, and says what a hil process left on
// the host: the QEMU processes, hil-vm-* dirs, veth pairs and namespaces it
// made, all recorded under its pid (internal/owner). cmd/hil's process
// tests and the fault-injection suite (internal/faultinject) share it.
package hilproc

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

	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/owner"
	"github.com/hilproject/hil/internal/testenv"
)

// binDirPrefix names the temp dir the binary is built in; QEMUsOf leaves
// out processes whose command line names it (hil itself).
const binDirPrefix = "hil-proc-bin-"

var bin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Build builds cmd/hil once per test binary and returns its path. Call
// Cleanup from TestMain to remove it.
func Build(t testing.TB) string {
	t.Helper()
	root := testenv.RepoRoot(t)
	bin.once.Do(func() {
		if bin.dir, bin.err = os.MkdirTemp("", binDirPrefix); bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "hil")
		cmd := exec.Command("go", "build", "-o", bin.path, "./cmd/hil")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			bin.err = fmt.Errorf("go build ./cmd/hil: %v\n%s", err, out)
		}
	})
	if bin.err != nil {
		t.Fatal(bin.err)
	}
	return bin.path
}

// Cleanup removes the binary Build made (call it from TestMain after m.Run).
func Cleanup() {
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
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

// Proc is a hil process a test started.
type Proc struct {
	t    testing.TB
	Cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
	code int
	end  time.Time
}

// Start starts the hil binary (Build) with args, env added to the test's
// environment, stdout and stderr combined. The test's cleanup kills it if
// it still runs.
func Start(t testing.TB, env []string, args ...string) *Proc {
	t.Helper()
	return StartBinary(t, Build(t), env, args...)
}

// StartBinary is Start for a binary of the caller's.
func StartBinary(t testing.TB, path string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, done: make(chan struct{})}
	p.Cmd = exec.Command(path, args...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = &p.out, &p.out
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.Cmd.Wait()
		p.end = time.Now()
		p.code = p.Cmd.ProcessState.ExitCode()
		if ws, ok := p.Cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = 128 + int(ws.Signal())
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.Cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Pid is the process's pid.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Out is what the process printed so far (stdout and stderr).
func (p *Proc) Out() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Code is the exit code (128+N for signal N); valid once Done is closed.
func (p *Proc) Code() int { return p.code }

// Wait waits for the process to exit and returns its exit code.
func (p *Proc) Wait() int {
	<-p.done
	return p.code
}

// Until polls cond until it holds, failing the test when the process ends
// first or limit passes.
func (p *Proc) Until(what string, limit time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		select {
		case <-p.done:
			p.t.Fatalf("hil ended (exit %d) before %s:\n%s", p.code, what, p.Out())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %s within %s:\n%s", what, limit, p.Out())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop sends sig and waits for the process; it returns how long it took
// to exit. limit only catches a hang.
func (p *Proc) Stop(sig syscall.Signal, limit time.Duration) time.Duration {
	p.t.Helper()
	sent := time.Now()
	p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.t.Fatalf("hil still runs %s after %s:\n%s", time.Since(sent), sig, p.Out())
	}
	return p.end.Sub(sent)
}

// VMDirs are the system target's per-boot dirs owned by pid.
func VMDirs(pid int) []string {
	m, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("hil-vm-%d.*", pid)))
	return m
}

// QEMUsOf lists the live processes whose command line names a socket in
// one of pid's hil-vm dirs: its QEMUs.
func QEMUsOf(pid int) []int {
	var out []int
	for _, p := range ProcsWith(fmt.Sprintf("hil-vm-%d.", pid)) {
		if b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "cmdline")); !bytes.Contains(b, []byte(binDirPrefix)) {
			out = append(out, p)
		}
	}
	return out
}

// ProcsWith lists the live processes (zombies left out) whose command line
// holds every one of args.
func ProcsWith(args ...string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		all := true
		for _, a := range args {
			all = all && bytes.Contains(b, []byte(a))
		}
		if st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); all && !bytes.Contains(st, []byte(") Z ")) {
			out = append(out, n)
		}
	}
	return out
}

// ClaimsOf lists the owner records (veth pairs, namespaces) of pid.
func ClaimsOf(pid int) []string {
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

// Leftovers says what pid left: QEMUs, dirs, owner records, and the veth
// pairs and namespaces they name.
func Leftovers(pid int) []string {
	var out []string
	for _, q := range QEMUsOf(pid) {
		out = append(out, fmt.Sprintf("qemu pid %d", q))
	}
	out = append(out, VMDirs(pid)...)
	for _, c := range ClaimsOf(pid) {
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

// WaitGone waits (briefly) for what a killed process's children do on
// their own (QEMU dies of PR_SET_PDEATHSIG) and returns what remains,
// except what keep says to leave for later.
func WaitGone(pid int, keep func(string) bool) []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []string
		for _, l := range Leftovers(pid) {
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

// RootFSLeftovers lists what a flatten can leave in a HIL_CACHE's rootfs
// dir: lock files and temp dirs.
func RootFSLeftovers(cacheDir string) []string {
	dir := filepath.Join(cacheDir, "rootfs")
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, ".tmp-") || strings.HasSuffix(n, ".lock") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out
}

// FreshRootfsCache is a HIL_CACHE that shares everything with the user's
// cache except the rootfs cache, so that the image is flattened anew.
func FreshRootfsCache(t testing.TB) string {
	t.Helper()
	shared, err := cache.Root() // absolute: the links must resolve from anywhere
	if err != nil {
		t.Fatal(err)
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

// WriteFile writes content to dir/name and returns the path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
