package device

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/crypto/ssh"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/testenv"
)

// labBoard is a "board" on this machine: a real sshd on loopback whose
// sessions talk to a private Docker engine.
type labBoard struct {
	Machine
	dockerHost string
	sshd       *testenv.SSHServer
}

// labEngine is one private Docker engine for the package's tests (they run
// one after another and each leaves it clean): starting one costs seconds.
var labEngine struct {
	once sync.Once
	e    *testenv.DockerEngine
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if labEngine.e != nil {
		labEngine.e.Stop()
		os.RemoveAll(labEngine.dir)
	}
	os.Exit(code)
}

func newLabBoard(t *testing.T, opts ...testenv.SSHDOption) labBoard {
	t.Helper()
	testenv.RequireRoot(t)
	labEngine.once.Do(func() {
		labEngine.dir, labEngine.err = os.MkdirTemp("", "hil-dockerd-")
		if labEngine.err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			labEngine.e, labEngine.err = testenv.StartDockerd(ctx, labEngine.dir)
		}
	})
	if labEngine.err != nil {
		t.Fatalf("starting the board's dockerd: %v", labEngine.err)
	}
	host := labEngine.e.Host
	s := testenv.SSHD(t, append([]testenv.SSHDOption{testenv.WithSessionEnv("DOCKER_HOST=" + host)}, opts...)...)
	h, p, _ := strings.Cut(s.Addr, ":")
	port, _ := strconv.Atoi(p)
	return labBoard{Machine: Machine{Name: "lab-1", Host: h, Port: port, User: s.User, Key: s.ClientKey, KnownHosts: s.KnownHosts}, dockerHost: host, sshd: s}
}

// docker runs the docker CLI against the board's engine directly, to look
// at what the target left behind.
func (b labBoard) docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", append([]string{"-H", b.dockerHost}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (b labBoard) assertClean(t *testing.T) {
	t.Helper()
	if ps := b.docker(t, "ps", "-aq"); ps != "" {
		t.Errorf("containers left on the board: %s", ps)
	}
	if imgs := b.docker(t, "images", "--format", "{{.Repository}}:{{.Tag}}"); strings.Contains(imgs, "hil.local") {
		t.Errorf("images hil loaded are left on the board: %s", imgs)
	}
}

// busyboxImage is a one-binary amd64 image running a shell script: enough
// to exercise the whole device path without the sample app.
func busyboxImage(t *testing.T) *image.Image {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static: %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))})
	tw.Write(bb)
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	script := `echo ready iface=eth0; cat /sys/class/net/eth0/operstate; echo oops >&2; trap 'echo summary; exit 0' TERM; while :; do sleep 0.05; done`
	cfg := v1.Config{Entrypoint: []string{"/bin/sh", "-c", script}}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: cfg, RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return &image.Image{Ref: "test/busybox", Digest: d, ManifestDigest: d, Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Config: cfg, Image: img}
}

func runConfig(img *image.Image) target.RunConfig {
	return target.RunConfig{Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd, Env: img.Config.Env, Iface: "eth0"}
}

func waitLine(t *testing.T, out <-chan target.Line, want string) []target.Line {
	t.Helper()
	var seen []target.Line
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-out:
			if !ok {
				t.Fatalf("output ended before %q; saw %v", want, seen)
			}
			seen = append(seen, l)
			if strings.Contains(l.Text, want) {
				return seen
			}
		case <-timeout:
			t.Fatalf("no %q within 30s; saw %v", want, seen)
		}
	}
}

func TestBoardRunsAppWithInterfaceSignalAndCleanup(t *testing.T) {
	b := newLabBoard(t)
	img := busyboxImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	dev, err := New(b.Machine).Boot(ctx, img, runConfig(img))
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	defer dev.Close()
	// eth0 existed and was up before the app started; stderr arrives as
	// such.
	want := map[string]target.Stream{"ready iface=eth0": target.Stdout, "up": target.Stdout, "oops": target.Stderr}
	timeout := time.After(30 * time.Second)
	for len(want) > 0 {
		select {
		case l := <-dev.Output():
			if s, ok := want[l.Text]; ok {
				if s != l.Stream {
					t.Errorf("%q came on %s, want %s", l.Text, l.Stream, s)
				}
				delete(want, l.Text)
			}
		case <-timeout:
			t.Fatalf("lines never seen: %v", want)
		}
	}
	t.Logf("booted and ready after %s", time.Since(start))
	// A frame written on the link reaches the app's namespace: the agent
	// relays it onto the veth; count it on the holder's interface.
	frame := append(bytes.Repeat([]byte{0xff}, 6), append([]byte{2, 0, 0, 0, 0, 1, 0x88, 0xb5}, make([]byte, 46)...)...)
	for i := 0; i < 10; i++ {
		if err := dev.Link().WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
	}
	var rx int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rx, _ = strconv.Atoi(b.docker(t, "exec", dev.Info().String("container"), "/bin/busybox", "cat", "/sys/class/net/eth0/statistics/rx_packets"))
		if rx >= 10 {
			break
		}
	}
	if rx < 10 {
		t.Errorf("the app's eth0 received %d packets, want the 10 written on the link", rx)
	}
	if err := dev.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLine(t, dev.Output(), "summary")
	exit, err := dev.Wait(ctx)
	if err != nil || exit.Code != 0 {
		t.Fatalf("exit = %v, %v; want exit 0", exit, err)
	}
	if err := dev.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	b.assertClean(t)
}

func TestBoardFailuresAreInfraErrorsAndLeaveNothing(t *testing.T) {
	img := busyboxImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("wrong host key", func(t *testing.T) {
		b := newLabBoard(t)
		// Another server's key under this board's address.
		other := testenv.SSHD(t)
		line := fmt.Sprintf("[%s]:%d %s", b.Host, b.Port, ssh.MarshalAuthorizedKey(other.HostKey))
		if err := os.WriteFile(b.KnownHosts, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(b.Machine).Boot(ctx, img, runConfig(img))
		if !target.IsInfra(err) || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("got %v, want an infra error about the host key", err)
		}
		b.assertClean(t)
	})
	t.Run("unreachable", func(t *testing.T) {
		b := Machine{Name: "gone", Host: "127.0.0.1", Port: 1, User: "root", Key: newLabKey(t), KnownHosts: os.DevNull}
		_, err := New(b, WithDialTimeout(2*time.Second)).Boot(ctx, img, runConfig(img))
		if !target.IsInfra(err) || !strings.Contains(err.Error(), "does not answer") {
			t.Fatalf("got %v, want an infra error saying the board does not answer", err)
		}
	})
	t.Run("docker missing", func(t *testing.T) {
		b := newLabBoard(t, testenv.WithSessionPath("/nonexistent"))
		_, err := New(b.Machine).Boot(ctx, img, runConfig(img))
		if !target.IsInfra(err) || !strings.Contains(err.Error(), "no docker in PATH") {
			t.Fatalf("got %v, want an infra error saying docker is missing", err)
		}
	})
	t.Run("image copy interrupted", func(t *testing.T) {
		b := newLabBoard(t)
		short, stop := context.WithCancel(ctx)
		defer stop()
		// Cancel once half a megabyte of an image has gone over SSH.
		loadProgress = func(n int64) {
			if n > 512<<10 {
				stop()
			}
		}
		_, err := New(b.Machine).Boot(short, img, runConfig(img))
		loadProgress = nil
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("boot interrupted mid-load: got %v, want a cancellation error", err)
		}
		b.assertClean(t)
		// The next boot is whole.
		dev, err := New(b.Machine).Boot(ctx, img, runConfig(img))
		if err != nil {
			t.Fatalf("boot after an interrupted one: %v", err)
		}
		waitLine(t, dev.Output(), "ready")
		dev.Close()
		b.assertClean(t)
	})
}

func newLabKey(t *testing.T) string { return testenv.SSHD(t).ClientKey }
