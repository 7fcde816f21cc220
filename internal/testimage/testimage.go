// Package testimage builds small variants of the sample image for tests
// that need an image the sample builder does not make: the sample's
// linux/arm/v7 layers, plus one layer with Debian's armhf dash as /bin/sh
// and a C program that needs libgcc_s.so.1 (the way a Rust program does),
// optionally removing libgcc_s.so.1 with a whiteout, under an entrypoint of
// the test's choosing. The result is an OCI layout in the test's temp dir;
// its digest is the same on every run, so the rootfs cache is reused.
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/internal/debian"
	"github.com/hilproject/hil/internal/testenv"
)

// Spec says what the variant runs and lacks.
type Spec struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	// KeepLibgccS keeps libgcc_s.so.1, so /opt/program can start.
	KeepLibgccS bool
}

// Program is where the C program that needs libgcc_s.so.1 is.
const Program = "/opt/program"

// ShellImage builds the variant and returns its OCI layout dir. It needs
// the sample images (HIL_IMAGES), Debian's armhf dash through hil's private
// apt tree (root, as apt-get download is) and arm-linux-gnueabihf-gcc.
func ShellImage(t testing.TB, s Spec) string {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "/usr/bin/arm-linux-gnueabihf-gcc", "gcc-arm-linux-gnueabihf")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	art, err := image.Open(ctx, "oci:"+filepath.Join(testenv.ImagesDir(t), "pcapwatch"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := art.Image("linux/arm/v7")
	if err != nil {
		t.Fatal(err)
	}
	dash := debianFile(ctx, t, "dash", "bin/dash")
	prog := compileNeedsLibgccS(t)

	files := []tarEntry{
		{name: "bin/", dir: true},
		{name: "bin/dash", body: dash, mode: 0o755},
		{name: "bin/sh", link: "dash"},
		{name: "opt/program", body: prog, mode: 0o755},
	}
	if !s.KeepLibgccS {
		files = append(files, tarEntry{name: "lib/arm-linux-gnueabihf/.wh.libgcc_s.so.1"})
	}
	layer, err := tarball.LayerFromReader(bytes.NewReader(tarOf(t, files)))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Entrypoint, cfg.Cmd = s.Entrypoint, s.Cmd
	cfg.Env = append(append([]string{}, cfg.Env...), s.Env...)
	if img, err = mutate.Config(img, cfg); err != nil {
		t.Fatal(err)
	}
	// The sample's config has a build time; keep the digest stable.
	if img, err = mutate.CreatedAt(img, v1.Time{Time: time.Unix(0, 0).UTC()}); err != nil {
		t.Fatal(err)
	}
	p := base.Platform
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	dir := filepath.Join(t.TempDir(), "shell-image")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	return dir
}

// debianFile extracts one file of a Debian bookworm armhf package.
func debianFile(ctx context.Context, t testing.TB, pkg, file string) []byte {
	t.Helper()
	src := debian.Source{Suite: "bookworm", Arch: "armhf", Log: io.Discard}
	ps, err := src.Resolve(ctx, pkg)
	if err != nil {
		t.Fatalf("resolving %s:armhf: %v", pkg, err)
	}
	deb, err := src.Fetch(ctx, ps[0])
	if err != nil {
		t.Fatalf("fetching %s: %v", ps[0], err)
	}
	dir := t.TempDir()
	if err := debian.Extract(ctx, deb, dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatalf("%s in %s: %v", file, deb, err)
	}
	return b
}

// compileNeedsLibgccS builds an armhf program with libgcc_s.so.1 in its
// DT_NEEDED, as rustc's output has.
func compileNeedsLibgccS(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "program.c")
	if err := os.WriteFile(src, []byte("int main(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "program")
	cmd := exec.Command("arm-linux-gnueabihf-gcc", "-O2", "-s", "-Wl,--build-id=none", "-o", out, src, "-Wl,--no-as-needed", "-lgcc_s")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compiling the test program: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type tarEntry struct {
	name string
	body []byte
	link string
	dir  bool
	mode int64
}

func tarOf(t testing.TB, es []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		switch {
		case e.dir:
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		case h.Mode == 0:
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
