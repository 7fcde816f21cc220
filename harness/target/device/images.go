package device

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hilproject/hil/internal/cache"
)

// boardPlatform maps `uname -m` to the image platform the board runs
// natively.
func boardPlatform(machine string) (v1.Platform, error) {
	switch strings.TrimSpace(machine) {
	case "aarch64", "arm64":
		return v1.Platform{OS: "linux", Architecture: "arm64"}, nil
	case "armv7l", "armv8l":
		return v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, nil
	case "armv6l":
		return v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, nil
	case "x86_64":
		return v1.Platform{OS: "linux", Architecture: "amd64"}, nil
	}
	return v1.Platform{}, fmt.Errorf("unknown board architecture %q (uname -m): expected aarch64, armv7l, armv6l or x86_64", machine)
}

var agentBuilds sync.Map // platform string → *agentBuild

type agentBuild struct {
	once sync.Once
	path string
	err  error
}

// agentBinary builds hil-agent for p (static, no cgo) once per process.
// The Go build cache makes a rebuild after a restart cheap. The binary is
// kept under a name of its own content: hil processes of other builds (or
// other checkouts) share the cache directory and must not swap one
// another's agent.
func agentBinary(ctx context.Context, p v1.Platform) (string, error) {
	v, _ := agentBuilds.LoadOrStore(p.String(), &agentBuild{})
	b := v.(*agentBuild)
	b.once.Do(func() {
		dir, err := cache.Dir("agent", strings.ReplaceAll(p.String(), "/", "-"))
		if err != nil {
			b.err = err
			return
		}
		tmp := filepath.Join(dir, fmt.Sprintf("hil-agent.%d.tmp", os.Getpid()))
		defer os.Remove(tmp)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", tmp,
			"github.com/hilproject/hil/harness/target/device/hilagent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+p.Architecture)
		if p.Architecture == "arm" {
			cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
		}
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building hil-agent for %s (needs the Go toolchain and the hil module): %w: %s", p, err, msg)
			return
		}
		data, err := os.ReadFile(tmp)
		if err != nil {
			b.err = err
			return
		}
		sum := sha256.Sum256(data)
		out := filepath.Join(dir, "hil-agent-"+hex.EncodeToString(sum[:])[:16])
		b.path, b.err = out, os.Rename(tmp, out)
	})
	return b.path, b.err
}

// agentImage wraps the agent binary as a one-file image for the board's
// platform: it runs as the network-holder container and as `docker exec`
// relay, so the board needs nothing but Docker.
func agentImage(bin string, p v1.Platform) (v1.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "hil-agent", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	tw.Write(data)
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
		Config: v1.Config{Entrypoint: []string{"/hil-agent", "pause"}},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(img, layer)
}

// localTag is the tag an image gets on the board: derived from its digest,
// so the same content is found again and a different one never collides.
func localTag(repo string, img v1.Image) (name.Tag, error) {
	d, err := img.Digest()
	if err != nil {
		return name.Tag{}, err
	}
	return name.NewTag(fmt.Sprintf("hil.local/%s:%s", repo, d.Hex[:16]))
}

// ensureImage makes img available on the board as tag, streaming it over
// the SSH channel into `docker load` unless it is already there. It reports
// whether it loaded it (then Close removes it again).
func (c *conn) ensureImage(ctx context.Context, tag name.Tag, img v1.Image) (bool, error) {
	cfg, err := img.ConfigName()
	if err != nil {
		return false, err
	}
	id, err := c.run(ctx, nil, "docker image inspect --format '{{.Id}}' "+quote(tag.String()))
	if err == nil && strings.TrimSpace(id) == cfg.String() {
		return false, nil
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(tag, img, &countingWriter{w: pw})) }()
	out, err := c.run(ctx, pr, "docker load")
	pr.Close()
	if err != nil {
		// A half-streamed load leaves nothing: docker load commits only
		// complete archives. Remove the tag in case it did complete.
		cleanCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_, _ = c.run(cleanCtx, nil, "docker rmi "+quote(tag.String())+" 2>/dev/null || true")
		return false, fmt.Errorf("loading %s on board %s: %w", tag, c.board.Name, err)
	}
	if !strings.Contains(out, tag.String()) {
		return true, fmt.Errorf("loading %s on board %s: docker load said %q", tag, c.board.Name, strings.TrimSpace(out))
	}
	return true, nil
}

// loadProgress, when set (by tests), sees the bytes streamed to docker load
// so far.
var loadProgress func(n int64)

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if loadProgress != nil {
		loadProgress(c.n)
	}
	return n, err
}
