package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hilproject/hil/internal/testenv"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return string(b)
}

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s: expected it not to exist, found it (err=%v)", path, err)
	}
}

func TestFlattenKeepsModesLinksAndContent(t *testing.T) {
	j := newJail(t)
	img := imageOf(t, layerOf(t, tarOf(t,
		dir("opt/", 0o755),
		file("opt/app", "#!/bin/sh\n", 0o755),
		file("etc/conf", "x=1\n", 0o600), // parent dir implied
		symlink("lib", "usr/lib"),
		dir("usr/lib/", 0o755),
		file("usr/lib/libfoo.so.1", "ELF", 0o644),
		symlink("usr/lib/libfoo.so", "/usr/lib/libfoo.so.1"), // absolute: kept verbatim
		hardlink("opt/app-link", "opt/app"),
		dir("ro/", 0o555),
		file("ro/inside", "in a read-only dir", 0o444),
		file("lib/via-symlink", "written through lib -> usr/lib", 0o644),
	)))
	rep, err := Flatten(ctxT(t), img, j.root)
	if err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	j.check(t)
	fi, err := os.Stat(filepath.Join(j.root, "opt/app"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("opt/app: expected mode 0755, found %v (%v)", fi.Mode(), err)
	}
	if fi, _ := os.Stat(filepath.Join(j.root, "etc/conf")); fi.Mode().Perm() != 0o600 {
		t.Errorf("etc/conf: expected 0600, found %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(j.root, "ro")); fi.Mode().Perm() != 0o755 {
		t.Errorf("ro/: expected 0555|u+rwx = 0755, found %v", fi.Mode())
	}
	if got, _ := os.Readlink(filepath.Join(j.root, "usr/lib/libfoo.so")); got != "/usr/lib/libfoo.so.1" {
		t.Errorf("absolute symlink: expected it kept verbatim, found %q", got)
	}
	if got := readFile(t, filepath.Join(j.root, "usr/lib/via-symlink")); !strings.HasPrefix(got, "written through") {
		t.Errorf("lib/via-symlink: expected it under usr/lib, found %q", got)
	}
	a, _ := os.Stat(filepath.Join(j.root, "opt/app"))
	b, _ := os.Stat(filepath.Join(j.root, "opt/app-link"))
	if !os.SameFile(a, b) {
		t.Errorf("opt/app-link: expected a hard link to opt/app")
	}
	if fi.ModTime().UTC() != testMtime {
		t.Errorf("opt/app: expected mtime %v, found %v", testMtime, fi.ModTime())
	}
	if rep.Files != 5 || rep.HardLinks != 1 || rep.Symlinks != 2 {
		t.Errorf("report: expected 5 files, 1 hard link, 2 symlinks, found %+v", rep)
	}
}

func TestFlattenWhiteoutsAndOpaqueDirs(t *testing.T) {
	j := newJail(t)
	lower := layerOf(t, tarOf(t,
		file("a/x", "x", 0o644),
		file("a/y", "y", 0o644),
		file("b/z", "z", 0o644),
		file("c/old", "old", 0o644),
		file("c/sub/deep", "deep", 0o644),
		file("d/old", "old", 0o644),
		file("e", "file that becomes a dir", 0o644),
		dir("f/", 0o755),
		file("f/inner", "dir that becomes a file", 0o644),
	))
	upper := layerOf(t, tarOf(t,
		file("a/.wh.x", "", 0o644),
		file(".wh.b", "", 0o644),
		dir("c/", 0o755),
		file("c/.wh..wh..opq", "", 0o644),
		file("c/new", "new", 0o644),
		file("d/new-before-marker", "kept", 0o644), // same layer, before the marker
		file("d/.wh..wh..opq", "", 0o644),
		file("a/.wh.never-existed", "", 0o644),
		file("nodir/.wh.x", "", 0o644),
		dir("e/", 0o755),
		file("f", "now a file", 0o644),
	))
	if _, err := Flatten(ctxT(t), imageOf(t, lower, upper), j.root); err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	j.check(t)
	mustNotExist(t, filepath.Join(j.root, "a/x"))
	mustNotExist(t, filepath.Join(j.root, "a/.wh.x"))
	mustNotExist(t, filepath.Join(j.root, "b"))
	mustNotExist(t, filepath.Join(j.root, "c/old"))
	mustNotExist(t, filepath.Join(j.root, "c/sub"))
	mustNotExist(t, filepath.Join(j.root, "c/.wh..wh..opq"))
	mustNotExist(t, filepath.Join(j.root, "d/old"))
	mustNotExist(t, filepath.Join(j.root, "nodir"))
	if readFile(t, filepath.Join(j.root, "a/y")) != "y" {
		t.Error("a/y: expected it kept")
	}
	if readFile(t, filepath.Join(j.root, "c/new")) != "new" {
		t.Error("c/new: expected it")
	}
	if readFile(t, filepath.Join(j.root, "d/new-before-marker")) != "kept" {
		t.Error("d/new-before-marker: an opaque marker must not hide its own layer's entries")
	}
	if fi, err := os.Lstat(filepath.Join(j.root, "e")); err != nil || !fi.IsDir() {
		t.Errorf("e: expected a dir replacing the file, found %v %v", fi, err)
	}
	if readFile(t, filepath.Join(j.root, "f")) != "now a file" {
		t.Error("f: expected a file replacing the dir")
	}
}

// TestFlattenRefusesEscapes builds hostile layers by hand; each must be
// refused with the layer digest and the entry named, and nothing may
// appear outside the root.
func TestFlattenRefusesEscapes(t *testing.T) {
	cases := []struct {
		name  string
		ents  func(j *jail) []ent
		entry string // the entry the error must name
	}{
		{"dotdot name", func(*jail) []ent { return []ent{file("../outside/pwned", "x", 0o644)} }, "../outside/pwned"},
		{"dotdot inside name", func(*jail) []ent { return []ent{file("a/../../outside/pwned", "x", 0o644)} }, "a/../../outside/pwned"},
		{"dotdot dir", func(*jail) []ent { return []ent{dir("../outside/newdir/", 0o755)} }, "../outside/newdir/"},
		{"relative symlink escape", func(*jail) []ent {
			return []ent{symlink("esc", "../outside"), file("esc/pwned", "x", 0o644)}
		}, "esc/pwned"},
		{"symlink parent to ..", func(*jail) []ent {
			return []ent{dir("a/", 0o755), symlink("a/up", "../.."), file("a/up/outside/pwned", "x", 0o644)}
		}, "a/up/outside/pwned"},
		{"chained symlinks escape", func(*jail) []ent {
			return []ent{symlink("s1", "s2/.."), symlink("s2", "."), symlink("s3", "s1/../outside"), file("s3/pwned", "x", 0o644)}
		}, "s3/pwned"},
		{"symlink loop", func(*jail) []ent {
			return []ent{symlink("loop1", "loop2"), symlink("loop2", "loop1"), file("loop1/x", "x", 0o644)}
		}, "loop1/x"},
		{"hard link out of tree", func(*jail) []ent { return []ent{hardlink("h", "../outside/sentinel")} }, "h"},
		{"hard link through escaping symlink", func(*jail) []ent {
			return []ent{symlink("up", ".."), hardlink("h", "up/outside/sentinel")}
		}, "h"},
		{"hard link to host absolute path", func(j *jail) []ent {
			return []ent{hardlink("h", filepath.Join(j.outside, "sentinel"))}
		}, "h"},
		{"hard link to a directory", func(*jail) []ent { return []ent{dir("d/", 0o755), hardlink("h", "d")} }, "h"},
		{"whiteout of dotdot", func(*jail) []ent { return []ent{dir("a/", 0o755), file("a/.wh..", "", 0o644)} }, "a/.wh.."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := newJail(t)
			l := layerOf(t, tarOf(t, c.ents(j)...))
			_, err := Flatten(ctxT(t), imageOf(t, l), j.root)
			t.Log(err)
			var esc *EscapeError
			if !errors.As(err, &esc) {
				t.Fatalf("expected an EscapeError, found %v", err)
			}
			if esc.Layer != digestOf(t, l) || esc.Path != c.entry {
				t.Errorf("expected layer %s entry %q named, found %s %q", digestOf(t, l), c.entry, esc.Layer, esc.Path)
			}
			if !strings.Contains(err.Error(), digestOf(t, l).String()) || !strings.Contains(err.Error(), c.entry) {
				t.Errorf("error text must name the layer digest and the path: %v", err)
			}
			j.check(t)
		})
	}
}

// Absolute symlinks mean the image root at run time: writing through one
// lands inside the root, never on the host path of the same name.
func TestFlattenAbsoluteSymlinksStayInRoot(t *testing.T) {
	j := newJail(t)
	img := imageOf(t, layerOf(t, tarOf(t,
		symlink("abs", j.outside),
		file("abs/pwned", "inside", 0o644),
		symlink("sentinel-link", filepath.Join(j.outside, "sentinel")),
		file("sentinel-link", "replaces the link, not its target", 0o644),
		symlink("hl-target", filepath.Join(j.outside, "sentinel")),
		hardlink("hl", "hl-target"), // links the symlink itself
		symlink("etc", "/outside-of-root-abs"),
		file("etc/passwd", "in the root", 0o644),
	)))
	if _, err := Flatten(ctxT(t), img, j.root); err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	j.check(t)
	if got := readFile(t, filepath.Join(j.root, j.outside, "pwned")); got != "inside" {
		t.Errorf("abs/pwned: expected it at root%s/pwned, found %q", j.outside, got)
	}
	if fi, _ := os.Lstat(filepath.Join(j.root, "sentinel-link")); !fi.Mode().IsRegular() {
		t.Errorf("sentinel-link: expected a regular file replacing the symlink, found %v", fi.Mode())
	}
	if fi, _ := os.Lstat(filepath.Join(j.root, "hl")); fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("hl: expected a hard link to the symlink itself, found %v", fi.Mode())
	}
	if readFile(t, filepath.Join(j.root, "outside-of-root-abs/passwd")) != "in the root" {
		t.Errorf("etc/passwd: expected it under root/outside-of-root-abs")
	}
}

func TestFlattenSkipsDevicesAndSetuid(t *testing.T) {
	j := newJail(t)
	img := imageOf(t, layerOf(t, tarOf(t,
		ent{typ: tar.TypeChar, name: "dev/null", mode: 0o666},
		ent{typ: tar.TypeBlock, name: "dev/sda", mode: 0o660},
		ent{typ: tar.TypeFifo, name: "run/fifo", mode: 0o600},
		file("bin/su", "ELF", 0o4755),
	)))
	rep, err := Flatten(ctxT(t), img, j.root)
	if err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	j.check(t)
	mustNotExist(t, filepath.Join(j.root, "dev/null"))
	mustNotExist(t, filepath.Join(j.root, "run/fifo"))
	var got []string
	for _, s := range rep.Skipped {
		got = append(got, s.Path+": "+s.Reason)
	}
	want := []string{"dev/null: device node", "dev/sda: device node", "run/fifo: fifo", "bin/su: setuid"}
	if len(got) != len(want) {
		t.Fatalf("skipped: expected %d notes, found %q", len(want), got)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("skipped[%d]: expected %q..., found %q", i, want[i], got[i])
		}
	}
	fi, _ := os.Stat(filepath.Join(j.root, "bin/su"))
	if fi.Mode()&os.ModeSetuid != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/su: expected 0755 without setuid, found %v", fi.Mode())
	}
}

// bombLayer is a gzip layer holding one file of n zero bytes (or, when
// trailing, a small tar followed by n zero bytes after its end): tiny
// compressed, huge uncompressed. It is built from one compressed 1 MiB
// block of zeros repeated as concatenated gzip members (a valid gzip
// stream), so a multi-GiB bomb costs the test nothing to make. Its diff_id
// is a lie, as a hostile layer's would be: the cap must fire first.
func bombLayer(t testing.TB, n int64, trailing bool) *rawLayer {
	t.Helper()
	member := func(b []byte) []byte {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	if trailing {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "small", Size: 1, Mode: 0o644})
		tw.Write([]byte{1})
		tw.Close()
	} else {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bomb", Size: n, Mode: 0o644})
		tw.Flush()
	}
	const block = 1 << 20
	zeros := member(make([]byte, block))
	gz := member(head.Bytes())
	for left := n; left > 0; left -= block {
		gz = append(gz, zeros...)
	}
	if !trailing {
		gz = append(gz, member(make([]byte, 1024))...) // end-of-archive blocks
	}
	return &rawLayer{gz: gz, diffID: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}} // never reached: the cap stops it first
}

func TestFlattenStopsGzipBombs(t *testing.T) {
	const huge = 4 << 30 // uncompressed; ~4 MiB compressed
	for _, trailing := range []bool{false, true} {
		name := "one huge file"
		if trailing {
			name = "zeros after the tar end"
		}
		t.Run(name, func(t *testing.T) {
			l := bombLayer(t, huge, trailing)
			if len(l.gz) > 8<<20 {
				t.Fatalf("test bug: the bomb is %d bytes compressed, expected a tiny one", len(l.gz))
			}
			j := newJail(t)
			const limit = 64 << 20
			_, err := Flatten(ctxT(t), imageOf(t, l), j.root, WithMaxRootFSBytes(limit),
				WithMaxFileBytes(huge)) // the per-file cap would fire first; test the stream cap
			var se *SizeLimitError
			if !errors.As(err, &se) {
				t.Fatalf("expected a SizeLimitError for %d compressed bytes expanding to %d, found %v", len(l.gz), huge, err)
			}
			if se.Layer != digestOf(t, l) || se.What != "rootfs" || se.Limit != limit {
				t.Errorf("expected the rootfs cap and layer %s named, found %+v", digestOf(t, l), se)
			}
			if !strings.Contains(err.Error(), digestOf(t, l).String()) {
				t.Errorf("error must name the layer: %v", err)
			}
			var written int64
			filepath.Walk(j.root, func(_ string, fi os.FileInfo, _ error) error {
				if fi != nil && fi.Mode().IsRegular() {
					written += fi.Size()
				}
				return nil
			})
			if written > limit {
				t.Errorf("expected at most %d bytes written, found %d", limit, written)
			}
			j.check(t)
		})
	}
}

func TestFlattenPerFileCap(t *testing.T) {
	j := newJail(t)
	l := layerOf(t, tarOf(t, file("small", "ok", 0o644), file("big", strings.Repeat("x", 4096), 0o644)))
	_, err := Flatten(ctxT(t), imageOf(t, l), j.root, WithMaxFileBytes(1024))
	var se *SizeLimitError
	if !errors.As(err, &se) || se.What != "file" || se.Path != "big" || se.Found != 4096 {
		t.Fatalf("expected a per-file SizeLimitError for big (4096 > 1024), found %v", err)
	}
}

func TestFlattenRefusesTamperedLayer(t *testing.T) {
	j := newJail(t)
	l := layerOf(t, tarOf(t, file("a", "a", 0o644)))
	l.diffID = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	_, err := Flatten(ctxT(t), imageOf(t, l), j.root)
	if err == nil || !strings.Contains(err.Error(), "diff_id") {
		t.Fatalf("expected a diff_id mismatch error, found %v", err)
	}
}

func TestFlattenWantsEmptyDir(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "junk"), nil, 0o644)
	_, err := Flatten(ctxT(t), imageOf(t, layerOf(t, tarOf(t, file("a", "a", 0o644)))), d)
	if err == nil || !strings.Contains(err.Error(), "expected an empty dir") {
		t.Fatalf("expected an empty-dir error, found %v", err)
	}
}

func TestRootFSCacheIsAtomicAndShared(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	img := imageOf(t, layerOf(t, tarOf(t, file("opt/app", "app", 0o755), ent{typ: tar.TypeChar, name: "dev/null", mode: 0o666})))
	d, _ := img.Digest()
	mk := func() *Image { return &Image{Ref: "test", ManifestDigest: d, Image: img, opts: makeOptions(nil)} }

	const n = 6
	var wg sync.WaitGroup
	dirs := make([]string, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			im := mk()
			dirs[i], errs[i] = im.RootFS(ctxT(t))
			if errs[i] == nil && readFile(t, filepath.Join(dirs[i], "opt/app")) != "app" {
				errs[i] = errors.New("saw an incomplete rootfs")
			}
			if errs[i] == nil && (im.Report == nil || len(im.Report.Skipped) != 1) {
				errs[i] = errors.New("expected the report with the skipped dev/null")
			}
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("caller %d: expected %s, found %s (%v)", i, dirs[0], dirs[i], errs[i])
		}
	}
	// One layer: its chain ID is its diff_id.
	cf, _ := img.ConfigFile()
	if want := "chain-sha256-" + cf.RootFS.DiffIDs[0].Hex; filepath.Base(filepath.Dir(dirs[0])) != want {
		t.Errorf("expected the cache dir keyed by the layers' chain ID %s, found %s", want, dirs[0])
	}
	// A failed flatten leaves nothing behind.
	bomb := imageOf(t, bombLayer(t, 8<<20, false))
	bd, _ := bomb.Digest()
	bi := &Image{Ref: "bomb", ManifestDigest: bd, Image: bomb, opts: makeOptions([]Option{WithMaxRootFSBytes(1 << 20)})}
	if _, err := bi.RootFS(ctxT(t)); err == nil {
		t.Fatal("expected the bomb to fail")
	}
	ents, _ := os.ReadDir(filepath.Dir(filepath.Dir(dirs[0])))
	for _, e := range ents {
		if strings.Contains(e.Name(), bd.Hex) && !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("a failed flatten left %s behind", e.Name())
		}
	}
}

// Nothing may be written through a host symlink, even one planted inside
// the root dir by someone else between layers (defence in depth: the
// kernel refuses because every open uses O_NOFOLLOW).
func TestFlattenNeverFollowsHostSymlinkParent(t *testing.T) {
	j := newJail(t)
	f, err := newFlattener(j.root, makeOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	if err := os.Mkdir(filepath.Join(j.root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := f.openDir([]string{"d"})
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	os.Remove(filepath.Join(j.root, "d"))
	os.Symlink(j.outside, filepath.Join(j.root, "d"))
	if _, err := f.openDir([]string{"d"}); err == nil {
		t.Fatal("openDir followed a symlink")
	}
	j.check(t)
}

func TestRootFSCancelledLeavesNothing(t *testing.T) {
	cacheDir := t.TempDir()
	t.Setenv("HIL_CACHE", cacheDir)
	img := imageOf(t, layerOf(t, tarOf(t, file("a", "a", 0o644))))
	d, _ := img.Digest()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	im := &Image{Ref: "cancelled", ManifestDigest: d, Image: img, opts: makeOptions(nil)}
	if _, err := im.RootFS(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("expected context.Canceled, found %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(cacheDir, "rootfs"))
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("a cancelled flatten left %s behind", e.Name())
		}
	}
}

// BenchmarkFlattenSample flattens the sample image's arm/v7 manifest (no
// cache): compare with `tar -xzf` of the same layer blobs.
func BenchmarkFlattenSample(b *testing.B) {
	a, err := Open(context.Background(), "oci:"+filepath.Join(testenv.ImagesDir(b), "pcapwatch"))
	if err != nil {
		b.Fatal(err)
	}
	img, err := a.Image("linux/arm/v7")
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for i := 0; i < b.N; i++ {
		dir := filepath.Join(b.TempDir(), "rootfs")
		rep, err := Flatten(context.Background(), img.Image, dir)
		if err != nil {
			b.Fatal(err)
		}
		bytes = rep.Read
	}
	b.SetBytes(bytes)
}
