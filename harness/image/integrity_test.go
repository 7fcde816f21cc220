package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/hilproject/hil/internal/tamper"
	"github.com/hilproject/hil/internal/testenv"
)

// These tests tamper with the bytes of an image the way an attacker with
// write access to a layout dir, an archive or a registry's storage would,
// and expect hil to refuse naming the blob, never to flatten and use it.

// The sample's arm/v7 manifest and its app layer (opt/pcapwatch): built
// reproducibly, so these digests are fixed by images/debs.lock and the
// builder.
func sampleArm(t testing.TB) tamper.Blobs {
	t.Helper()
	return tamper.BlobsOf(t, filepath.Join(testenv.ImagesDir(t), "pcapwatch"), "linux/arm/v7")
}

// addToLayer returns the gzip layer gz with extra appended to its tar: a
// valid layer that flattens fine, but not the one the digest names.
func addToLayer(t testing.TB, gz []byte, extra ent) []byte {
	t.Helper()
	h, body := tarEntry(extra)
	return tamper.AddToLayer(t, gz, h, body)
}

// appendToTar returns the tar b with one more entry.
func appendToTar(t testing.TB, b []byte, extra ent) []byte {
	t.Helper()
	h, body := tarEntry(extra)
	return tamper.AppendToTar(t, b, h, body)
}

func tarEntry(e ent) (*tar.Header, string) {
	return &tar.Header{Typeflag: e.typ, Name: e.name, Mode: e.mode, ModTime: testMtime}, e.body
}

// tamperedSampleLayout is a copy of the sample layout whose arm/v7 app
// layer blob holds one more file than its digest and diff_id pin.
func tamperedSampleLayout(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pcapwatch")
	tamper.CopyTree(t, filepath.Join(testenv.ImagesDir(t), "pcapwatch"), dir)
	p := tamper.BlobPath(dir, sampleArm(t).Top())
	gz, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, addToLayer(t, gz, file("etc/tampered", "not in the image\n", 0o644)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// wantRefusal fails the test unless err is an integrity refusal naming the
// blob: its kind, its digest and where it came from.
func wantRefusal(t testing.TB, err error, kind, digest, source string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected a refusal naming the %s %s from %s, found none: the tampered bytes were used", kind, digest, source)
	}
	t.Logf("refused: %v", err)
	var ie *IntegrityError
	if !errors.As(err, &ie) {
		t.Fatalf("expected an *IntegrityError for the %s %s, found %T: %v", kind, digest, err, err)
	}
	if ie.Kind != kind || ie.Digest.String() != digest {
		t.Errorf("expected the %s %s named, found %s %s: %v", kind, digest, ie.Kind, ie.Digest, err)
	}
	msg := err.Error()
	for _, s := range []string{kind, digest, source, "expected", "found"} {
		if !strings.Contains(msg, s) {
			t.Errorf("the error lacks %q: %v", s, err)
		}
	}
}

// cacheLeftovers lists what is in the rootfs cache dir besides nothing.
func cacheLeftovers(t testing.TB, cacheDir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(cacheDir, "rootfs"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestTamperedLayerInOCILayoutIsRefused(t *testing.T) {
	cacheDir := t.TempDir()
	t.Setenv("HIL_CACHE", cacheDir)
	dir := tamperedSampleLayout(t)
	a, err := Open(ctxT(t), "oci:"+dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := a.Image("linux/arm/v7")
	if err != nil {
		t.Fatal(err)
	}
	_, err = img.RootFS(ctxT(t))
	wantRefusal(t, err, "layer", sampleArm(t).Top(), dir)
	if left := cacheLeftovers(t, cacheDir); len(left) > 0 {
		t.Errorf("a refused flatten left %v in the cache", left)
	}
	// Flatten itself (no cache) refuses too: the check is not the cache's.
	_, err = Flatten(ctxT(t), img.Image, filepath.Join(t.TempDir(), "root"))
	wantRefusal(t, err, "layer", sampleArm(t).Top(), dir)
}

// rewriteArchive copies a docker-save tarball, replacing the content of
// the entries replace names.
func rewriteArchive(t testing.TB, src, dst string, replace map[string]func([]byte) []byte) {
	t.Helper()
	tamper.RewriteArchive(t, src, dst, func(name string, b []byte) []byte {
		if f := replace[name]; f != nil {
			return f(b)
		}
		return b
	})
}

func TestTamperedLayerInDockerArchiveIsRefused(t *testing.T) {
	cacheDir := t.TempDir()
	t.Setenv("HIL_CACHE", cacheDir)
	archive := filepath.Join(t.TempDir(), "pcapwatch.tar")
	hx := strings.TrimPrefix(sampleArm(t).Top(), "sha256:")
	tamperLayer := func(b []byte) []byte { return addToLayer(t, b, file("etc/tampered", "x\n", 0o644)) }
	rewriteArchive(t, filepath.Join(testenv.ImagesDir(t), "pcapwatch.tar"), archive, map[string]func([]byte) []byte{hx + ".tar.gz": tamperLayer})

	a, err := Open(ctxT(t), "docker-archive:"+archive+":hil.local/pcapwatch:arm-v7")
	if err == nil {
		var img *Image
		if img, err = a.Image(""); err == nil {
			_, err = img.RootFS(ctxT(t))
		}
	}
	wantRefusal(t, err, "layer", sampleArm(t).Top(), archive)
	if left := cacheLeftovers(t, cacheDir); len(left) > 0 {
		t.Errorf("a refused flatten left %v in the cache", left)
	}

	// A config that is not what manifest.json names it.
	cfgName := sampleArm(t).Config
	archiveCfg := filepath.Join(t.TempDir(), "config.tar")
	rewriteArchive(t, filepath.Join(testenv.ImagesDir(t), "pcapwatch.tar"), archiveCfg, map[string]func([]byte) []byte{
		cfgName: func(b []byte) []byte { return bytes.Replace(b, []byte("/opt/pcapwatch"), []byte("/opt/pcapwatcH"), 1) },
	})
	_, err = Open(ctxT(t), "docker-archive:"+archiveCfg+":hil.local/pcapwatch:arm-v7")
	wantRefusal(t, err, "config", cfgName, archiveCfg)

	// The same layer in an archive whose file names do not pin digests
	// (as the Docker engine writes them): the config's diff_id still does.
	archive2 := filepath.Join(t.TempDir(), "renamed.tar")
	rewriteArchive(t, archive, archive2, nil)
	tamper.RenameArchiveEntry(t, archive2, hx+".tar.gz", "layer1/layer.tar.gz")
	a, err = Open(ctxT(t), "docker-archive:"+archive2+":hil.local/pcapwatch:arm-v7")
	if err != nil {
		t.Fatal(err)
	}
	img, err := a.Image("")
	if err != nil {
		t.Fatal(err)
	}
	_, err = img.RootFS(ctxT(t))
	var ie *IntegrityError
	if !errors.As(err, &ie) || ie.Kind != "layer" || !strings.Contains(err.Error(), "diff_id") || !strings.Contains(err.Error(), archive2) {
		t.Fatalf("expected a diff_id refusal naming the layer and %s, found %v", archive2, err)
	}
}

// handLayout writes OCI layouts from hand-made JSON, so descriptors can
// say anything: a digest that is right and a size that lies, a blob whose
// content does not match its name.
type handLayout struct {
	t   testing.TB
	dir string
}

func newHandLayout(t testing.TB) *handLayout {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return &handLayout{t: t, dir: dir}
}

// blob stores b under its digest and returns its descriptor.
func (l *handLayout) blob(mt types.MediaType, b []byte) v1.Descriptor {
	s := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
	if err := os.WriteFile(tamper.BlobPath(l.dir, h.String()), b, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(b))}
}

func (l *handLayout) json(mt types.MediaType, v any) v1.Descriptor {
	b, err := json.Marshal(v)
	if err != nil {
		l.t.Fatal(err)
	}
	return l.blob(mt, b)
}

func (l *handLayout) index(ds ...v1.Descriptor) {
	l.json("", v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ds})
	b, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ds})
	if err := os.WriteFile(filepath.Join(l.dir, "index.json"), b, 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// overwrite replaces a blob's content, keeping its name.
func (l *handLayout) overwrite(d v1.Descriptor, b []byte) {
	if err := os.WriteFile(tamper.BlobPath(l.dir, d.Digest.String()), b, 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// handImage is the parts of a small arm/v7 image, each editable before
// writeImage stores the manifest.
type handImage struct {
	layer, config v1.Descriptor
	layerTar      []byte
}

func (l *handLayout) parts() handImage {
	tb := tarOf(l.t, file("opt/app", "genuine\n", 0o755))
	gzl := layerOf(l.t, tb)
	layer := l.blob(types.OCILayer, gzl.gz)
	cfg := v1.ConfigFile{OS: "linux", Architecture: "arm", Variant: "v7",
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{gzl.diffID}}, Config: v1.Config{Entrypoint: []string{"/opt/app"}}}
	config := l.json(types.OCIConfigJSON, cfg)
	return handImage{layer: layer, config: config, layerTar: tb}
}

func (l *handLayout) manifest(p handImage) v1.Descriptor {
	d := l.json(types.OCIManifestSchema1, v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: p.config, Layers: []v1.Descriptor{p.layer}})
	d.Platform = &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	return d
}

// openAndFlatten goes as far as it can: open, pick the arm/v7 image,
// flatten it into the cache.
func openAndFlatten(t testing.TB, ref string) (string, error) {
	t.Helper()
	a, err := Open(ctxT(t), ref)
	if err != nil {
		return "", err
	}
	img, err := a.Image("linux/arm/v7")
	if err != nil {
		return "", err
	}
	return img.RootFS(ctxT(t))
}

// Every kind of blob whose content or size is not what names it, in a
// layout: each must be refused naming the blob, and nothing cached.
func TestTamperedBlobsInOCILayoutAreRefused(t *testing.T) {
	cases := []struct {
		name string
		// build writes the layout and returns the blob that must be named.
		build func(l *handLayout) (kind string, d v1.Descriptor)
	}{
		{"manifest content does not match its name", func(l *handLayout) (string, v1.Descriptor) {
			p := l.parts()
			m := l.manifest(p)
			l.index(m)
			raw, _ := os.ReadFile(tamper.BlobPath(l.dir, m.Digest.String()))
			l.overwrite(m, bytes.Replace(raw, []byte(`"schemaVersion":2`), []byte(`"schemaVersion": 2`), 1))
			return "manifest", m
		}},
		{"manifest bigger than its descriptor says", func(l *handLayout) (string, v1.Descriptor) {
			m := l.manifest(l.parts())
			m.Size--
			l.index(m)
			return "manifest", m
		}},
		{"manifest smaller than its descriptor says", func(l *handLayout) (string, v1.Descriptor) {
			m := l.manifest(l.parts())
			m.Size++
			l.index(m)
			return "manifest", m
		}},
		{"config content does not match its digest", func(l *handLayout) (string, v1.Descriptor) {
			p := l.parts()
			l.index(l.manifest(p))
			raw, _ := os.ReadFile(tamper.BlobPath(l.dir, p.config.Digest.String()))
			l.overwrite(p.config, bytes.Replace(raw, []byte("/opt/app"), []byte("/opt/bad"), 1))
			return "config", p.config
		}},
		{"config size lies (bigger)", func(l *handLayout) (string, v1.Descriptor) {
			p := l.parts()
			p.config.Size--
			l.index(l.manifest(p))
			return "config", p.config
		}},
		{"config size lies (smaller)", func(l *handLayout) (string, v1.Descriptor) {
			p := l.parts()
			p.config.Size++
			l.index(l.manifest(p))
			return "config", p.config
		}},
		{"layer content does not match its digest", func(l *handLayout) (string, v1.Descriptor) {
			p := l.parts()
			l.index(l.manifest(p))
			other := layerOf(l.t, tarOf(l.t, file("opt/app", "tampered\n", 0o755)))
			l.overwrite(p.layer, other.gz)
			return "layer", p.layer
		}},
		{"layer bigger than its descriptor says", func(l *handLayout) (string, v1.Descriptor) {
			p := l.parts()
			p.layer.Size--
			l.index(l.manifest(p))
			return "layer", p.layer
		}},
		{"layer smaller than its descriptor says", func(l *handLayout) (string, v1.Descriptor) {
			p := l.parts()
			p.layer.Size++
			l.index(l.manifest(p))
			return "layer", p.layer
		}},
		{"layer matches its digest but not the config's diff_id", func(l *handLayout) (string, v1.Descriptor) {
			p := l.parts()
			other := layerOf(l.t, tarOf(l.t, file("opt/app", "other\n", 0o755)))
			p.layer = l.blob(types.OCILayer, other.gz)
			l.index(l.manifest(p))
			return "layer", p.layer
		}},
		{"index content does not match its name", func(l *handLayout) (string, v1.Descriptor) {
			m := l.manifest(l.parts())
			idx := l.json(types.OCIImageIndex, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{m}})
			l.index(idx)
			raw, _ := os.ReadFile(tamper.BlobPath(l.dir, idx.Digest.String()))
			l.overwrite(idx, append(raw, ' '))
			return "index", idx
		}},
		{"index size lies", func(l *handLayout) (string, v1.Descriptor) {
			m := l.manifest(l.parts())
			idx := l.json(types.OCIImageIndex, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{m}})
			idx.Size += 10
			l.index(idx)
			return "index", idx
		}},
		{"manifest in a nested index does not match its name", func(l *handLayout) (string, v1.Descriptor) {
			m := l.manifest(l.parts())
			l.index(l.json(types.OCIImageIndex, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{m}}))
			raw, _ := os.ReadFile(tamper.BlobPath(l.dir, m.Digest.String()))
			l.overwrite(m, append(raw, '\n'))
			return "manifest", m
		}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			cacheDir := t.TempDir()
			t.Setenv("HIL_CACHE", cacheDir)
			l := newHandLayout(t)
			kind, d := c.build(l)
			_, err := openAndFlatten(t, "oci:"+l.dir)
			wantRefusal(t, err, kind, d.Digest.String(), l.dir)
			if left := cacheLeftovers(t, cacheDir); len(left) > 0 {
				t.Errorf("a refused image left %v in the cache", left)
			}
		})
	}

	// The genuine hand-made image flattens: the refusals above are the
	// tampering's, not the hand-made layout's.
	t.Setenv("HIL_CACHE", t.TempDir())
	l := newHandLayout(t)
	l.index(l.manifest(l.parts()))
	root, err := openAndFlatten(t, "oci:"+l.dir)
	if err != nil {
		t.Fatalf("the genuine hand-made layout: %v", err)
	}
	if got := readFile(t, filepath.Join(root, "opt/app")); got != "genuine\n" {
		t.Errorf("opt/app: expected the genuine content, found %q", got)
	}
}

// The sequence of issue 12: a tampered layout of the sample flattened
// first must be refused and leave nothing behind; the genuine image, with
// the same manifest digest, from a real registry must then get the genuine
// rootfs, not one made from the tampered bytes.
func TestCachePoisoningSequence(t *testing.T) {
	cacheDir := t.TempDir()
	t.Setenv("HIL_CACHE", cacheDir)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	dir := tamperedSampleLayout(t)
	_, err := openAndFlatten(t, "oci:"+dir)
	if err == nil {
		t.Errorf("the tampered layout was flattened: expected a refusal naming layer %s", sampleArm(t).Top())
	}
	if left := cacheLeftovers(t, cacheDir); len(left) > 0 && err != nil {
		t.Errorf("a refused flatten left %v in the cache", left)
	}

	genuine, err := Open(ctxT(t), "oci:"+filepath.Join(testenv.ImagesDir(t), "pcapwatch"))
	if err != nil {
		t.Fatal(err)
	}
	reg := testenv.Registry(t)
	pushIndex(t, reg.Host+"/hil/pcapwatch:1", genuine.Index())
	a, err := Open(ctxT(t), reg.Host+"/hil/pcapwatch:1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := a.Image("linux/arm/v7")
	if err != nil {
		t.Fatal(err)
	}
	if img.ManifestDigest.String() != sampleArm(t).Manifest {
		t.Fatalf("the registry's arm/v7 manifest: expected %s (the same as the tampered layout's), found %s", sampleArm(t).Manifest, img.ManifestDigest)
	}
	root, err := img.RootFS(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/tampered")); err == nil {
		t.Fatalf("the genuine image got the rootfs flattened from the tampered layout (%s has etc/tampered)", root)
	}
	if fi, err := os.Stat(filepath.Join(root, "opt/pcapwatch")); err != nil || fi.Size() != 3268672 {
		t.Fatalf("expected the genuine opt/pcapwatch (3268672 bytes), found %v %v", fi, err)
	}
}

// Neither a failed nor a successful flatten leaves a lock file behind.
func TestRootFSLeavesNoLockFiles(t *testing.T) {
	cacheDir := t.TempDir()
	t.Setenv("HIL_CACHE", cacheDir)
	bomb := imageOf(t, bombLayer(t, 8<<20, false))
	bd, _ := bomb.Digest()
	bi := &Image{Ref: "bomb", ManifestDigest: bd, Image: bomb, opts: makeOptions([]Option{WithMaxRootFSBytes(1 << 20)})}
	if _, err := bi.RootFS(ctxT(t)); err == nil {
		t.Fatal("expected the bomb to fail")
	}
	if left := cacheLeftovers(t, cacheDir); len(left) > 0 {
		t.Errorf("a failed flatten left %v in the cache", left)
	}
	img := imageOf(t, layerOf(t, tarOf(t, file("a", "a", 0o644))))
	d, _ := img.Digest()
	ok := &Image{Ref: "ok", ManifestDigest: d, Image: img, opts: makeOptions(nil)}
	root, err := ok.RootFS(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	left := cacheLeftovers(t, cacheDir)
	if len(left) != 1 || !strings.HasPrefix(root, filepath.Join(cacheDir, "rootfs", left[0])) {
		t.Errorf("expected only the rootfs entry of %s in the cache, found %v", root, left)
	}
}

// A registry that serves bytes other than those it was given (a
// compromised registry or its storage): each kind of blob is refused by
// name. The fault is real: the registry's own storage is overwritten.
func TestTamperedBlobsInRegistryAreRefused(t *testing.T) {
	arm := testPlatformImage(t, armv7)
	cfgName, _ := arm.ConfigName()
	layers, _ := arm.Layers()
	cases := map[string]struct {
		digest v1.Hash
		tamper func([]byte) []byte
	}{
		"manifest": {mustDigest(t, arm), func(b []byte) []byte { return append(b, ' ') }},
		"config":   {cfgName, func(b []byte) []byte { return bytes.Replace(b, []byte("/opt/app"), []byte("/opt/bad"), 1) }},
		"layer": {digestOf(t, layers[0]), func([]byte) []byte {
			return layerOf(t, tarOf(t, file("etc/platform", "tampered", 0o644), file("opt/app", "#!/bin/sh\n", 0o755))).gz
		}},
		// Same size: only the hashing reader can tell, as the stream ends.
		"layer same size": {digestOf(t, layers[0]), func(b []byte) []byte {
			b = append([]byte(nil), b...)
			b[len(b)-12] ^= 0xff
			return b
		}},
	}
	for kind, c := range cases {
		t.Run(strings.ReplaceAll(kind, " ", "_"), func(t *testing.T) {
			cacheDir := t.TempDir()
			t.Setenv("HIL_CACHE", cacheDir)
			t.Setenv("DOCKER_CONFIG", t.TempDir())
			reg := testenv.Registry(t)
			pushIndex(t, reg.Host+"/hil/app:1", testIndex(t))
			p := reg.BlobPath(c.digest.String())
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("the registry does not store %s where expected: %v", c.digest, err)
			}
			if err := os.WriteFile(p, c.tamper(b), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = openAndFlatten(t, reg.Host+"/hil/app:1")
			wantRefusal(t, err, strings.Fields(kind)[0], c.digest.String(), "registry "+reg.Host+"/hil/app")
			if left := cacheLeftovers(t, cacheDir); len(left) > 0 {
				t.Errorf("a refused image left %v in the cache", left)
			}
		})
	}
}

// A cache entry is used only when its record names exactly the diff_ids
// of the image asked for: an entry planted under the right key, or left
// without a record (by an older hil), is replaced by a fresh flatten.
func TestRootFSIgnoresCacheEntriesNotBoundToTheLayers(t *testing.T) {
	img := imageOf(t, layerOf(t, tarOf(t, file("opt/app", "genuine\n", 0o755))))
	vi, err := verifiedOf(img)
	if err != nil {
		t.Fatal(err)
	}
	genuine := vi.diffIDs()[0].String()
	other := "sha256:" + strings.Repeat("0", 64)
	for name, record := range map[string]string{
		"record of other layers":       `{"diff_ids":["` + other + `"]}`,
		"record of one layer too many": `{"diff_ids":["` + genuine + `","` + other + `"]}`,
		"no record":                    "",
		"record that is not JSON":      `{"diff_ids":`,
	} {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			cacheDir := t.TempDir()
			t.Setenv("HIL_CACHE", cacheDir)
			entry := filepath.Join(cacheDir, "rootfs", chainKey(vi.diffIDs()))
			if err := os.MkdirAll(filepath.Join(entry, "rootfs", "opt"), 0o755); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(entry, "rootfs", "opt", "app"), []byte("planted\n"), 0o755)
			os.WriteFile(filepath.Join(entry, "report.json"), []byte(`{"files":1}`), 0o644)
			if record != "" {
				os.WriteFile(filepath.Join(entry, recordFile), []byte(record), 0o644)
			}
			im := &Image{Ref: "genuine", Image: img, opts: makeOptions(nil)}
			root, err := im.RootFS(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(root, "opt", "app")); got != "genuine\n" {
				t.Fatalf("the planted entry was used: opt/app is %q", got)
			}
			if left := cacheLeftovers(t, cacheDir); len(left) != 1 || left[0] != filepath.Base(entry) {
				t.Errorf("expected only the fresh entry %s in the cache, found %v", filepath.Base(entry), left)
			}
			// And the fresh entry is used from then on.
			again := &Image{Ref: "genuine", Image: img, opts: makeOptions(nil)}
			if root2, err := again.RootFS(ctxT(t)); err != nil || root2 != root {
				t.Errorf("the fresh entry was not reused: %s, %v", root2, err)
			}
		})
	}
}

// The same layers from different sources are the same rootfs: the cache
// key is the chain of diff_ids, so a layout and the docker-save archive of
// the same image share one entry (and any difference in any layer, or in
// their order, is another key).
func TestChainKey(t *testing.T) {
	a := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	b := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	if chainKey([]v1.Hash{a}) != "chain-sha256-"+a.Hex {
		t.Errorf("one layer: expected its diff_id as the chain, found %s", chainKey([]v1.Hash{a}))
	}
	keys := map[string]bool{}
	for _, c := range [][]v1.Hash{nil, {a}, {b}, {a, b}, {b, a}, {a, a}} {
		keys[chainKey(c)] = true
	}
	if len(keys) != 6 {
		t.Errorf("expected 6 distinct keys, found %d", len(keys))
	}

	t.Setenv("HIL_CACHE", t.TempDir())
	images := testenv.ImagesDir(t)
	root, err := openAndFlatten(t, "oci:"+filepath.Join(images, "pcapwatch"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := Open(ctxT(t), "docker-archive:"+filepath.Join(images, "pcapwatch.tar")+":hil.local/pcapwatch:arm-v7")
	if err != nil {
		t.Fatal(err)
	}
	img, err := a2.Image("")
	if err != nil {
		t.Fatal(err)
	}
	if root2, err := img.RootFS(ctxT(t)); err != nil || root2 != root {
		t.Errorf("expected the archive of the same image to share the layout's rootfs %s, found %s (%v)", root, root2, err)
	}
}

// Layers stored gzip-, zstd- or un-compressed are all decompressed and
// verified by hil itself (by their magic bytes, as engines do).
func TestLayerCompressionsAreVerified(t *testing.T) {
	tb := tarOf(t, file("opt/app", "genuine\n", 0o755))
	var zs bytes.Buffer
	zw, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(tb)
	zw.Close()
	for name, c := range map[string]struct {
		mt   types.MediaType
		blob []byte
	}{
		"gzip": {types.OCILayer, layerOf(t, tb).gz},
		"zstd": {types.OCILayerZStd, zs.Bytes()},
		"none": {types.OCIUncompressedLayer, tb},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("HIL_CACHE", t.TempDir())
			l := newHandLayout(t)
			p := l.parts()
			p.layer = l.blob(c.mt, c.blob)
			l.index(l.manifest(p))
			root, err := openAndFlatten(t, "oci:"+l.dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(root, "opt/app")); got != "genuine\n" {
				t.Errorf("opt/app: expected the genuine content, found %q", got)
			}
			// The same blob with one byte changed is refused by name.
			t.Setenv("HIL_CACHE", t.TempDir())
			bad := append([]byte(nil), c.blob...)
			bad[len(bad)/2] ^= 0x01
			l.overwrite(p.layer, bad)
			_, err = openAndFlatten(t, "oci:"+l.dir)
			wantRefusal(t, err, "layer", p.layer.Digest.String(), l.dir)
		})
	}
}

// The cache lock removes its file when released, and waiters check they
// still hold the file the path names: never two holders at once, and no
// lock file left when everyone is done.
func TestLockFileExcludesAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "entry.lock")
	var inside, most, entered int32
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				unlock, err := lockFile(ctxT(t), path)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				entered++
				if inside > most {
					most = inside
				}
				mu.Unlock()
				time.Sleep(100 * time.Microsecond)
				mu.Lock()
				inside--
				mu.Unlock()
				unlock()
			}
		}()
	}
	wg.Wait()
	if most != 1 || entered != 200 {
		t.Errorf("expected 200 entries one at a time, found %d entries and up to %d holders at once", entered, most)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("expected no lock file left, found %d entries", len(ents))
	}
}

// The temp dir of a flatten whose hil was SIGKILLed (a half-written
// rootfs) is removed by the next hil's start, whatever its age; a live
// flatten's, whose lock is held, is not. It used to stay for 6 hours.
func TestRemoveStaleFlattens(t *testing.T) {
	cacheDir := t.TempDir()
	t.Setenv("HIL_CACHE", cacheDir)
	base := filepath.Join(cacheDir, "rootfs")
	dead := filepath.Join(base, ".tmp-chain-sha256-"+strings.Repeat("a", 64)+"-123")
	discarded := filepath.Join(base, ".tmp-chain-sha256-"+strings.Repeat("a", 64)+"-discarded-456")
	live := filepath.Join(base, ".tmp-chain-sha256-"+strings.Repeat("b", 64)+"-789")
	for _, d := range []string{dead, discarded, live} {
		if err := os.MkdirAll(filepath.Join(d, "rootfs", "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(d, "rootfs", "etc"), 0o555) // as an image's dirs may be
	}
	unlock, err := lockFile(ctxT(t), filepath.Join(base, "chain-sha256-"+strings.Repeat("b", 64)+".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	removed, err := RemoveStaleFlattens()
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("removed %v; want the two dirs of the dead flatten", removed)
	}
	left := cacheLeftovers(t, cacheDir)
	if len(left) != 2 || left[0] != filepath.Base(live) || !strings.HasSuffix(left[1], ".lock") {
		t.Errorf("left %v; want only the live flatten's dir and lock", left)
	}
}
