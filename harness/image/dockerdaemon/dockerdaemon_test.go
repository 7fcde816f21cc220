package dockerdaemon_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hilproject/hil/harness/image"
	_ "github.com/hilproject/hil/harness/image/dockerdaemon"
	"github.com/hilproject/hil/internal/testenv"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// armImage is a one-layer linux/arm/v7 image whose /etc/platform names it.
func armImage(t *testing.T) v1.Image {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	body := "linux/arm/v7"
	tw.WriteHeader(&tar.Header{Name: "etc/platform", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.Close()
	layer, err := tarball.LayerFromReader(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = "linux", "arm", "v7"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestOpenWithoutDaemon(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	_, err := image.Open(ctxT(t), "docker-daemon:hil.local/app:1")
	if err == nil || !strings.Contains(err.Error(), "no Docker daemon answers") {
		t.Fatalf("expected a no-daemon error, found %v", err)
	}
}

// An image loaded into a real engine opens by its name, pinned by the
// engine's image ID (the config's digest), and flattens.
func TestOpen(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	testenv.RequireCommand(t, "/usr/sbin/dockerd", "docker.io")
	host := testenv.Dockerd(t)
	t.Setenv("DOCKER_HOST", host)
	img := armImage(t)
	tag, _ := name.NewTag("hil.local/app:1")
	archive := filepath.Join(t.TempDir(), "app.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("docker CLI not found (Debian package docker.io): %v", err)
	}
	if out, err := exec.CommandContext(ctxT(t), docker, "-H", host, "load", "-i", archive).CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v: %s", err, out)
	}

	a, err := image.Open(ctxT(t), "docker-daemon:hil.local/app:1")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if a.Kind != "docker-daemon" || len(a.Platforms()) != 1 || a.Platforms()[0].String() != "linux/arm/v7" {
		t.Errorf("expected a docker-daemon linux/arm/v7 artifact, found %s %v", a.Kind, a.Platforms())
	}
	pi, err := a.Image("linux/arm/v7")
	if err != nil {
		t.Fatal(err)
	}
	// The engine keeps the config as it was loaded: same config digest.
	want, _ := img.ConfigName()
	if got, _ := pi.Image.ConfigName(); got != want {
		t.Errorf("config digest: expected %s, found %s", want, got)
	}
	root, err := pi.RootFS(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/platform")); string(got) != "linux/arm/v7" {
		t.Errorf("expected the arm rootfs from the daemon, found %q", got)
	}
	if _, err := image.Open(ctxT(t), "docker-daemon:hil.local/absent:1"); err == nil || !strings.Contains(err.Error(), "has no image") {
		t.Errorf("expected a missing-image error, found %v", err)
	}
}
