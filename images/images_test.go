// Tests of the built sample images (make images): what the binaries are,
// what each image and broken variant holds, that the amd64 pcapwatch really
// captures in a network namespace, and that the builder honours its lock
// and does nothing when nothing changed.
package images_test

import (
	"archive/tar"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hilproject/hil/images"
	"github.com/hilproject/hil/internal/testenv"
)

type builtImage = images.Built

func built(t *testing.T) (string, map[string]builtImage) {
	t.Helper()
	dir := testenv.ImagesDir(t)
	list, err := images.ReadRecord(filepath.Join(dir, "images.json"))
	if err != nil {
		t.Fatalf("images.json: %v: run make images", err)
	}
	m := map[string]builtImage{}
	for _, bi := range list {
		// The record holds the paths of the machine that built it; the
		// layout may have been moved with $HIL_IMAGES.
		bi.Layout = filepath.Join(dir, bi.Name)
		bi.Tarball = filepath.Join(dir, bi.Name+".tar")
		for p, bin := range bi.Binaries {
			bi.Binaries[p] = filepath.Join(dir, "bin", filepath.Base(bin))
		}
		m[bi.Name] = *bi
	}
	return dir, m
}

// platformImage opens one platform's image from an image's OCI layout.
func platformImage(t *testing.T, layoutDir, platform string) v1.Image {
	t.Helper()
	p, err := layout.FromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) == 1 && im.Manifests[0].MediaType.IsImage() {
		// A single-manifest image (pcapwatch-armhf, armv8-only).
		d := im.Manifests[0]
		if d.Platform == nil || d.Platform.String() != platform {
			t.Fatalf("%s: the image is for %v, not %s", layoutDir, d.Platform, platform)
		}
		img, err := top.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	if len(im.Manifests) != 1 || !im.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("%s/index.json: expected one entry pointing at an image index, found %+v", layoutDir, im.Manifests)
	}
	idx, err := top.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, d := range inner.Manifests {
		if d.Platform == nil {
			t.Fatalf("%s: manifest %s has no platform", layoutDir, d.Digest)
		}
		have = append(have, d.Platform.String())
		if d.Platform.String() == platform {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("%s has no %s image; platforms present: %v", layoutDir, platform, have)
	return nil
}

// files lists the flattened image's entries (path → header) and returns
// the content of the ones asked for.
func files(t *testing.T, img v1.Image, want ...string) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdrs := map[string]*tar.Header{}
	data := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n := "/" + strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		hdrs[n] = h
		if slices.Contains(want, n) {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			data[n] = b
		}
	}
	return hdrs, data
}

// checkArmhfBinary is the `file` check: ELF32 little-endian ARM, EABI5,
// hard-float, the armhf loader, libpcap.so.0.8 needed.
func checkArmhfBinary(t *testing.T, what string, r io.ReaderAt) {
	t.Helper()
	f, err := elf.NewFile(r)
	if err != nil {
		t.Fatalf("%s: not an ELF file: %v", what, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS32 || f.Data != elf.ELFDATA2LSB || f.Machine != elf.EM_ARM {
		t.Errorf("%s: expected ELF32 LSB ARM, found %v %v %v", what, f.Class, f.Data, f.Machine)
	}
	flags := elfFlags(t, r)
	const eabiMask, eabi5, hardFloat = 0xff000000, 0x05000000, 0x400
	if flags&eabiMask != eabi5 {
		t.Errorf("%s: expected EABI version 5, e_flags=%#x", what, flags)
	}
	if flags&hardFloat == 0 {
		t.Errorf("%s: expected the hard-float ABI flag (EF_ARM_ABI_FLOAT_HARD), e_flags=%#x", what, flags)
	}
	interp := ""
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, _ := io.ReadAll(p.Open())
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if interp != "/lib/ld-linux-armhf.so.3" {
		t.Errorf("%s: expected interpreter /lib/ld-linux-armhf.so.3, found %q", what, interp)
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(libs, "libpcap.so.0.8") {
		t.Errorf("%s: expected DT_NEEDED libpcap.so.0.8, found %v", what, libs)
	}
	// The old-glibc variant relies on this: glibc 2.34 moved
	// __libc_start_main and pthread_* to a new version.
	syms, _ := f.ImportedSymbols()
	var needs234 bool
	for _, s := range syms {
		if s.Version == "GLIBC_2.34" {
			needs234 = true
		}
	}
	if !needs234 {
		t.Errorf("%s: expected symbols versioned GLIBC_2.34 (built against bookworm's glibc 2.36)", what)
	}
}

func elfFlags(t *testing.T, r io.ReaderAt) uint32 {
	var hdr elf.Header32
	b := make([]byte, 52)
	if _, err := r.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	hdr.Flags = uint32(b[36]) | uint32(b[37])<<8 | uint32(b[38])<<16 | uint32(b[39])<<24
	return hdr.Flags
}

func TestArmV7PcapwatchIsEABI5HardFloatAndNeedsLibpcap(t *testing.T) {
	_, imgs := built(t)
	pw := imgs["pcapwatch"]
	f, err := os.Open(pw.Binaries["linux/arm/v7"])
	if err != nil {
		t.Fatalf("%v: run make images", err)
	}
	defer f.Close()
	checkArmhfBinary(t, "bin/"+filepath.Base(f.Name()), f)

	img := platformImage(t, pw.Layout, "linux/arm/v7")
	_, data := files(t, img, "/opt/pcapwatch")
	checkArmhfBinary(t, "/opt/pcapwatch in the arm/v7 image", strings.NewReader(string(data["/opt/pcapwatch"])))
}

func TestImagesAndVariants(t *testing.T) {
	_, imgs := built(t)
	both := []string{"linux/arm/v7", "linux/amd64"}
	fleet := []string{"linux/arm/v7", "linux/amd64", "linux/arm/v5", "linux/arm64"}
	arm := []string{"linux/arm/v7"}
	cases := []struct {
		name      string
		platforms []string
		check     func(t *testing.T, platform string, hdrs map[string]*tar.Header, data map[string][]byte)
	}{
		{"pcapwatch", fleet, func(t *testing.T, p string, h map[string]*tar.Header, d map[string][]byte) {
			mustHave(t, h, loader(p), libDir(p)+"/libc.so.6", libpcapPath(h, p))
			// Each build is the ABI of its platform: armel soft-float for
			// arm/v5 (what a Pi Zero runs), AArch64 for arm64.
			f, err := elf.NewFile(strings.NewReader(string(d["/opt/pcapwatch"])))
			if err != nil {
				t.Fatal(err)
			}
			switch p {
			case "linux/arm/v5":
				// EF_ARM_ABI_FLOAT_SOFT (0x200), not _HARD (0x400).
				if flags := elfFlags(t, strings.NewReader(string(d["/opt/pcapwatch"]))); f.Machine != elf.EM_ARM || flags&0x600 != 0x200 {
					t.Errorf("arm/v5: want a soft-float ARM program, found %v (flags %#x)", f.Machine, flags)
				}
			case "linux/arm64":
				if f.Machine != elf.EM_AARCH64 {
					t.Errorf("arm64: want an AArch64 program, found %v", f.Machine)
				}
			}
		}},
		{"pcapwatch-armhf", arm, func(t *testing.T, p string, _ map[string]*tar.Header, _ map[string][]byte) {
			// The same manifest as the index's arm/v7, alone.
			if imgs["pcapwatch-armhf"].Digest != imgs["pcapwatch"].Manifests[p] {
				t.Errorf("pcapwatch-armhf is %s, want pcapwatch's arm/v7 manifest %s", imgs["pcapwatch-armhf"].Digest, imgs["pcapwatch"].Manifests[p])
			}
		}},
		{"armv8-only", arm, func(t *testing.T, p string, _ map[string]*tar.Header, d map[string][]byte) {
			f, err := elf.NewFile(strings.NewReader(string(d["/opt/pcapwatch"])))
			if err != nil {
				t.Fatal(err)
			}
			sec := f.Section(".ARM.attributes")
			if sec == nil {
				t.Fatal("no .ARM.attributes")
			}
			b, _ := sec.Data()
			// Tag_CPU_arch (6) = 14, v8-A: the helper's attributes reach
			// the program.
			if !strings.Contains(string(b), "\x06\x0e") {
				t.Errorf("armv8-only's program does not say Tag_CPU_arch v8: %q", b)
			}
		}},
		{"no-libpcap", both, func(t *testing.T, p string, h map[string]*tar.Header, _ map[string][]byte) {
			mustHave(t, h, loader(p), libDir(p)+"/libc.so.6")
			for n := range h {
				if strings.Contains(n, "libpcap.so") {
					t.Errorf("%s: expected no libpcap.so.0.8, found %s", p, n)
				}
			}
		}},
		{"old-glibc", arm, func(t *testing.T, p string, h map[string]*tar.Header, _ map[string][]byte) {
			mustHave(t, h, "/lib/ld-linux-armhf.so.3", "/lib/arm-linux-gnueabihf/libc-2.31.so")
		}},
		{"wrong-arch", arm, func(t *testing.T, p string, _ map[string]*tar.Header, d map[string][]byte) {
			f, err := elf.NewFile(strings.NewReader(string(d["/opt/pcapwatch"])))
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
				t.Errorf("expected an ELF64 aarch64 app in the arm/v7 image, found %v %v", f.Class, f.Machine)
			}
		}},
		{"no-loader", arm, func(t *testing.T, p string, h map[string]*tar.Header, _ map[string][]byte) {
			mustHave(t, h, "/lib/arm-linux-gnueabihf/libc.so.6")
			for n := range h {
				if strings.HasSuffix(n, "/ld-linux-armhf.so.3") {
					t.Errorf("expected no loader, found %s", n)
				}
			}
		}},
		{"crash-on-start", both, nil},
		{"slow-start", both, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bi, ok := imgs[c.name]
			if !ok {
				t.Fatalf("images.json has no %s: run make images", c.name)
			}
			if !slices.Equal(bi.Platforms, c.platforms) {
				t.Errorf("expected platforms %v, found %v", c.platforms, bi.Platforms)
			}
			for _, p := range c.platforms {
				img := platformImage(t, bi.Layout, p)
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(cf.Config.Entrypoint, []string{"/opt/pcapwatch"}) {
					t.Errorf("%s: entrypoint %v", p, cf.Config.Entrypoint)
				}
				if cf.Platform().String() != p {
					t.Errorf("config platform %s, index says %s", cf.Platform(), p)
				}
				if d, _ := img.Digest(); d.String() != bi.Manifests[p] {
					t.Errorf("%s manifest digest %s, images.json says %s", p, d, bi.Manifests[p])
				}
				h, data := files(t, img, "/opt/pcapwatch")
				if hdr := h["/opt/pcapwatch"]; hdr == nil || hdr.Mode&0o111 == 0 {
					t.Fatalf("%s: /opt/pcapwatch missing or not executable", p)
				}
				if c.check != nil {
					c.check(t, p, h, data)
				}
			}
		})
	}
}

func loader(platform string) string {
	switch platform {
	case "linux/amd64":
		return "/lib64/ld-linux-x86-64.so.2"
	case "linux/arm64":
		return "/lib/ld-linux-aarch64.so.1"
	case "linux/arm/v5":
		return "/lib/ld-linux.so.3"
	}
	return "/lib/ld-linux-armhf.so.3"
}

func libDir(platform string) string {
	switch platform {
	case "linux/amd64":
		return "/lib/x86_64-linux-gnu"
	case "linux/arm64":
		return "/lib/aarch64-linux-gnu"
	case "linux/arm/v5":
		return "/lib/arm-linux-gnueabi"
	}
	return "/lib/arm-linux-gnueabihf"
}

func libpcapPath(h map[string]*tar.Header, platform string) string {
	for _, d := range []string{"/usr" + libDir(platform), libDir(platform)} {
		if _, ok := h[d+"/libpcap.so.0.8"]; ok {
			return d + "/libpcap.so.0.8"
		}
	}
	return "libpcap.so.0.8 (in /lib or /usr/lib)"
}

func mustHave(t *testing.T, h map[string]*tar.Header, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, ok := h[p]; !ok {
			t.Errorf("expected %s in the image", p)
		}
	}
}

// The docker-save tarball holds the same manifests as the layout, one tag
// per platform.
func TestDockerArchiveMatchesLayout(t *testing.T) {
	_, imgs := built(t)
	for _, bi := range imgs {
		for p, tagStr := range bi.Tags {
			tag, err := name.NewTag(tagStr)
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(bi.Tarball, &tag)
			if err != nil {
				t.Fatalf("%s: %v", bi.Tarball, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Platform().String() != p {
				t.Errorf("%s %s: config says %s", bi.Tarball, tag, cf.Platform())
			}
			// docker save manifests are re-encoded by docker load; the
			// config (and so the image ID) must match the layout's.
			want := platformImage(t, bi.Layout, p)
			wn, _ := want.ConfigName()
			gn, _ := img.ConfigName()
			if wn != gn {
				t.Errorf("%s %s: config %s, layout has %s", bi.Tarball, tag, gn, wn)
			}
		}
	}
}
