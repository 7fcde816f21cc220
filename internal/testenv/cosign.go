package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/internal/cache"
)

// CosignVersion is the cosign CLI the acceptance tests run. v3.1.3 is the
// newest release that builds with Go 1.26 (its go.mod asks for 1.26.0).
const CosignVersion = "v3.1.3"

const cosignModule = "github.com/sigstore/cosign/v3/cmd/cosign"

// Cosign returns the path of the real cosign CLI, built from its Go module
// with "go install" into hil's cache (tools/cosign-VERSION) the first time
// and reused after. The first build downloads cosign's modules through the
// Go module proxy and compiles them: about 4 minutes on two cores; later
// calls cost a stat. Concurrent test binaries wait for one build (a lock
// file beside it).
func Cosign(t testing.TB) string {
	t.Helper()
	dir, err := cache.Dir("tools", "cosign-"+CosignVersion)
	if err != nil {
		t.Fatalf("cosign: %v", err)
	}
	bin := filepath.Join(dir, "cosign")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	lock, err := os.OpenFile(filepath.Join(dir, "build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("cosign: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("cosign: locking %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin // another test binary built it while this one waited
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		t.Fatalf("cosign: %v", err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building cosign needs the Go toolchain: %v", err)
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, goTool, "install", "-trimpath", "-ldflags=-s -w", cosignModule+"@"+CosignVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("building cosign %s (go install %s@%s): %v\n%s", CosignVersion, cosignModule, CosignVersion, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "cosign"), bin); err != nil {
		t.Fatalf("cosign: %v", err)
	}
	t.Logf("built cosign %s in %s (cached at %s)", CosignVersion, time.Since(start).Round(time.Second), bin)
	return bin
}

// CosignCmd runs cosign with a private HOME, TUF root and Docker config
// under dir, so that it neither reads nor writes the user's, and returns
// its combined output and exit code (-1 when it could not run).
func CosignCmd(ctx context.Context, bin, dir string, env []string, args ...string) (string, int) {
	home := filepath.Join(dir, "cosign-home")
	for _, d := range []string{home, filepath.Join(home, "docker")} {
		_ = os.MkdirAll(d, 0o700)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home, "TUF_ROOT="+filepath.Join(home, "tuf"), "DOCKER_CONFIG="+filepath.Join(home, "docker"), "SIGSTORE_NO_CACHE=true")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return fmt.Sprintf("%s\nrunning cosign: %v", out, err), -1
	}
	return string(out), 0
}
