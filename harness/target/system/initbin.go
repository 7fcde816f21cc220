package system

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/hilproject/hil/harness/activity"
	"github.com/hilproject/hil/harness/target/system/guestwire"

	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/ethtool"
)

// The guest init is built from its embedded source on first use and cached
// by source hash, target architecture and Go version. Building on demand
// (rather than committing a binary) keeps it reviewable and lets it follow
// the toolchain; it needs only the Go toolchain, no network, because the
// init uses nothing outside the standard library and hil's stdlib-only
// internal/ethtool and guestwire, built beside it as part of a one-off
// module of hil's name.
//
//go:embed hilinit/*.go
var initSource embed.FS

// initFiles are the init's sources: the path in the build module and the
// bytes, in a fixed order.
func initFiles() (paths []string, data [][]byte) {
	for _, src := range []struct {
		fsys fs.FS
		glob string
		dir  string // in the build module
	}{
		{initSource, "hilinit/*.go", ""},
		{ethtool.Source, "*.go", "internal/ethtool/"},
		{guestwire.Source, "*.go", "harness/target/system/guestwire/"},
	} {
		files, _ := fs.Glob(src.fsys, src.glob)
		for _, f := range files {
			// Tests are not the init: editing one must not change its
			// hash, which keys every snapshot.
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, _ := fs.ReadFile(src.fsys, f)
			paths, data = append(paths, src.dir+f), append(data, b)
		}
	}
	return paths, data
}

var initMu sync.Mutex

// goarchOf maps a Debian architecture to GOARCH/GOARM.
func goarchOf(debArch string) (goarch, goarm string, err error) {
	switch debArch {
	case "armhf", "arm":
		return "arm", "7", nil
	case "arm64":
		return "arm64", "", nil
	}
	return "", "", fmt.Errorf("no guest init for architecture %q (want armhf or arm64)", debArch)
}

// initBinary returns the path of hil-init for debArch, building it if needed,
// and the hash that identifies it (part of snapshot keys).
func initBinary(ctx context.Context, debArch string) (path, hash string, err error) {
	goarch, goarm, err := goarchOf(debArch)
	if err != nil {
		return "", "", err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, serr := os.Stat(goTool); serr != nil {
			return "", "", fmt.Errorf("building the guest init needs the Go toolchain: no 'go' in PATH nor in %s", runtime.GOROOT())
		}
	}
	goVersion, err := exec.CommandContext(ctx, goTool, "env", "GOVERSION").Output()
	if err != nil {
		return "", "", fmt.Errorf("asking %s for its version: %w", goTool, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s %s\n", strings.TrimSpace(string(goVersion)), goarch, goarm)
	paths, data := initFiles()
	for i, f := range paths {
		fmt.Fprintf(h, "%s %d\n", f, len(data[i]))
		h.Write(data[i])
	}
	hash = hex.EncodeToString(h.Sum(nil))[:16]
	dir, err := cache.Dir("init", hash)
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "hil-init")
	initMu.Lock()
	defer initMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path, hash, nil
	}
	src, err := os.MkdirTemp("", "hil-init-src-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(src)
	for i, f := range paths {
		dst := filepath.Join(src, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(dst, data[i], 0o644); err != nil {
			return "", "", err
		}
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module github.com/hilproject/hil\n\ngo 1.22\n"), 0o644); err != nil {
		return "", "", err
	}
	tmp := path + fmt.Sprintf(".%d.tmp", os.Getpid())
	activity.Report(ctx, "building the guest init (hil-init, GOARCH=%s; once, cached after)", goarch)
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, "./hilinit")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm, "CGO_ENABLED=0",
		"GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", "", fmt.Errorf("building the guest init (GOARCH=%s): %w\n%s", goarch, err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", "", err
	}
	return path, hash, nil
}
