package system

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/target"
)

// capcountRootFS builds a minimal armhf rootfs: the cross toolchain's glibc
// and loader plus testdata/capcount.c compiled for armhf. It lets the
// target's own tests run without the sample images.
func capcountRootFS(t testing.TB) (string, *image.Image) {
	return capcountRootFSFor(t, "armhf")
}

// capcountRootFSFor does the same for a Debian architecture (armhf, arm64).
func capcountRootFSFor(t testing.TB, arch string) (string, *image.Image) {
	return cRootFS(t, arch, "capcount")
}

// cRootFS builds a minimal rootfs for a Debian architecture (armhf,
// arm64): the cross toolchain's glibc and loader plus testdata/NAME.c
// compiled as /bin/NAME, the image's entrypoint.
func cRootFS(t testing.TB, arch, prog string) (string, *image.Image) {
	t.Helper()
	triplet, loader, platform := "arm-linux-gnueabihf", "ld-linux-armhf.so.3", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	if arch == "arm64" {
		triplet, loader, platform = "aarch64-linux-gnu", "ld-linux-aarch64.so.1", v1.Platform{OS: "linux", Architecture: "arm64"}
	}
	gcc, err := exec.LookPath(triplet + "-gcc")
	if err != nil {
		t.Skipf("%s-gcc not installed (scripts/apt-packages.txt)", triplet)
	}
	dir := t.TempDir()
	for _, d := range []string{"lib", "bin", "etc"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	sys := "/usr/" + triplet + "/lib"
	for _, f := range []string{loader, "libc.so.6"} {
		b, err := os.ReadFile(filepath.Join(sys, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "lib", f), b, 0o755)
	}
	out := filepath.Join(dir, "bin", prog)
	if b, err := exec.Command(gcc, "-O2", "-o", out, "testdata/"+prog+".c").CombinedOutput(); err != nil {
		t.Fatalf("compiling %s: %v\n%s", prog, err, b)
	}
	b, _ := os.ReadFile(out)
	sum := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	img := &image.Image{
		Ref: "test:" + prog + "-" + arch, Digest: h, ManifestDigest: h,
		Platform: platform,
		Config:   v1.Config{Entrypoint: []string{"/bin/" + prog}},
	}
	return dir, img
}

func readyLine(l target.Line) bool {
	return l.Stream == target.Stdout && strings.HasPrefix(l.Text, "ready")
}

// waitLine reads Output until match or the deadline; it returns every app
// line seen.
func waitLine(t testing.TB, d target.App, timeout time.Duration, match func(target.Line) bool) (target.Line, []target.Line, bool) {
	t.Helper()
	var seen []target.Line
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-d.Output():
			if !ok {
				return target.Line{}, seen, false
			}
			if l.Stream != target.Console {
				seen = append(seen, l)
			}
			if match(l) {
				return l, seen, true
			}
		case <-deadline:
			return target.Line{}, seen, false
		}
	}
}

// noLeftovers checks that a closed device left no QEMU process, socket or
// temp dir behind.
func noLeftovers(t testing.TB, d target.App) {
	t.Helper()
	dev := d.(*VM)
	if _, err := os.Stat(dev.tmp); !os.IsNotExist(err) {
		t.Errorf("temp dir %s left behind", dev.tmp)
	}
	if dev.cmd != nil && dev.cmd.Process != nil {
		if err := syscall.Kill(dev.cmd.Process.Pid, 0); err == nil {
			t.Errorf("QEMU pid %d still alive", dev.cmd.Process.Pid)
		}
	}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
