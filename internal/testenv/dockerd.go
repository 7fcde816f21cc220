package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

const dockerdBin = "/usr/sbin/dockerd"

// DockerEngine is a private Docker engine: its own data root, exec root and
// socket, no bridge and no iptables rules, so it can run beside another
// engine (or another test's) and touches nothing of the host's networking.
// Containers on it get network mode "none" unless told otherwise; hil moves
// a veth end into them.
type DockerEngine struct {
	// Host is the DOCKER_HOST value, "unix:///.../docker.sock".
	Host string

	dir    string
	cmd    *exec.Cmd
	waitCh chan error
	client *http.Client
}

// StartDockerd starts a private dockerd under dir and waits until it
// answers /_ping. dir should be short: unix socket paths are limited to 108
// bytes.
func StartDockerd(ctx context.Context, dir string) (*DockerEngine, error) {
	if _, err := os.Stat(dockerdBin); err != nil {
		return nil, fmt.Errorf("%s not found (Debian package docker.io): run `make deps`", dockerdBin)
	}
	e := &DockerEngine{dir: dir}
	sock := filepath.Join(dir, "docker.sock")
	e.Host = "unix://" + sock
	logPath := filepath.Join(dir, "dockerd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	e.cmd = exec.Command(dockerdBin,
		"--host", e.Host,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--bridge", "none",
		"--iptables=false",
		"--ip-masq=false",
	)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.SysProcAttr = serviceProcAttr()
	if err := e.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dockerd: %w", err)
	}
	e.waitCh = make(chan error, 1)
	go func() { e.waitCh <- e.cmd.Wait() }()

	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}, Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-e.waitCh:
			e.waitCh = nil
			return nil, fmt.Errorf("dockerd exited at start (%v): %s", err, tail(logPath))
		case <-ctx.Done():
			e.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get("http://docker/_ping")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			e.client = client
			return e, nil
		}
	}
	e.Stop()
	return nil, fmt.Errorf("dockerd did not answer on %s within 60s: %s", sock, tail(logPath))
}

// Stop stops the engine (SIGTERM, then SIGKILL after 15 s), which stops its
// containers, and unmounts whatever it left mounted under its dir.
func (e *DockerEngine) Stop() {
	if e.cmd == nil || e.waitCh == nil {
		return
	}
	// A stopped engine leaves the Linux bridges of its networks behind, and
	// enough of them exhaust Docker's address pools for every later engine.
	bridges := e.bridges()
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.waitCh:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		<-e.waitCh
	}
	e.waitCh = nil
	// The managed containerd runs in dockerd's process group; make sure it
	// is gone too.
	_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	unmountUnder(e.dir)
	for _, b := range bridges {
		if l, err := netlink.LinkByName(b); err == nil {
			_ = netlink.LinkDel(l)
		}
	}
}

// bridges names the Linux bridges of the engine's bridge networks.
func (e *DockerEngine) bridges() []string {
	if e.client == nil {
		return nil
	}
	resp, err := e.client.Get("http://docker/networks")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var nets []struct {
		ID      string
		Driver  string
		Options map[string]string
	}
	if err := json.NewDecoder(resp.Body).Decode(&nets); err != nil {
		return nil
	}
	var names []string
	for _, n := range nets {
		if n.Driver != "bridge" || len(n.ID) < 12 {
			continue
		}
		name := n.Options["com.docker.network.bridge.name"]
		if name == "" {
			name = "br-" + n.ID[:12]
		}
		names = append(names, name)
	}
	return names
}

// unmountUnder lazily unmounts every mount point below dir (overlay and
// shm mounts a killed engine may leave), deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		unmountDetached(points[i])
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Dockerd starts a private Docker engine for the test (root only) and stops
// it at cleanup. It returns the DOCKER_HOST value; it does not set the
// environment, so parallel tests can each have their own engine.
func Dockerd(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	dir, err := os.MkdirTemp("", "hil-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e, err := StartDockerd(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting dockerd: %v", err)
	}
	t.Cleanup(func() {
		e.Stop()
		os.RemoveAll(dir)
	})
	return e.Host
}
