// Package tamper changes the bytes of images on disk the way an attacker
// with write access to an OCI layout dir, a docker-save archive or a
// registry's storage would, for tests that expect hil to refuse them: a
// blob whose content no longer matches its name, a descriptor whose size
// lies, a layer that is not the one the config's diff_id pins. It imports
// nothing of hil's, so harness/image's own tests can use it.
package tamper

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CopyTree copies a directory (an OCI layout) so a test can modify it:
// files 0644, dirs 0755, whatever the source's modes.
func CopyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}

// BlobPath is where an OCI layout dir keeps the blob digest (sha256:HEX).
func BlobPath(dir, digest string) string {
	alg, hx, _ := strings.Cut(digest, ":")
	return filepath.Join(dir, "blobs", alg, hx)
}

// AddToLayer returns the gzip layer gz with one more entry (h, body) at
// the end of its tar: a valid layer that flattens fine, but not the one
// its digest and diff_id name.
func AddToLayer(t testing.TB, gz []byte, h *tar.Header, body string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(AppendToTar(t, plain, h, body))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// File is the header of a regular file of body's size.
func File(name, body string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}
}

// AppendToTar returns the tar b with one more entry (h, body).
func AppendToTar(t testing.TB, b []byte, h *tar.Header, body string) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	h.Size = int64(len(body))
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	io.WriteString(tw, body)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// RewriteArchive copies a tarball (a docker-save archive) through f, which
// may change any regular entry's content; the entry's size follows.
func RewriteArchive(t testing.TB, src, dst string, f func(name string, b []byte) []byte) {
	t.Helper()
	rewrite(t, src, dst, func(h *tar.Header, b []byte) []byte {
		if h.Typeflag == tar.TypeReg && f != nil {
			return f(h.Name, b)
		}
		return b
	})
}

// RenameArchiveEntry renames one entry of a docker-save tarball and the
// reference to it in manifest.json.
func RenameArchiveEntry(t testing.TB, path, from, to string) {
	t.Helper()
	tmp := path + ".new"
	rewrite(t, path, tmp, func(h *tar.Header, b []byte) []byte {
		if h.Name == from {
			h.Name = to
		}
		if h.Name == "manifest.json" {
			b = bytes.ReplaceAll(b, []byte(`"`+from+`"`), []byte(`"`+to+`"`))
		}
		return b
	})
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// rewrite copies the tarball src to dst through f, which may change an
// entry's header and content.
func rewrite(t testing.TB, src, dst string, f func(h *tar.Header, b []byte) []byte) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tr := tar.NewReader(in)
	tw := tar.NewWriter(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		b = f(h, b)
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(b))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// Layout is a copy of an OCI layout whose blobs and descriptors a test
// changes. Its index.json names one index blob (as hil's image builder
// writes them), which names one manifest per platform.
type Layout struct {
	t   testing.TB
	Dir string
}

// CopyLayout copies the layout src into a temp dir of the test.
func CopyLayout(t testing.TB, src string) *Layout {
	t.Helper()
	dir := filepath.Join(t.TempDir(), filepath.Base(src))
	CopyTree(t, src, dir)
	return &Layout{t: t, Dir: dir}
}

// Read returns a blob's content.
func (l *Layout) Read(digest string) []byte {
	l.t.Helper()
	b, err := os.ReadFile(BlobPath(l.Dir, digest))
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

// Overwrite replaces a blob's content, keeping its name.
func (l *Layout) Overwrite(digest string, b []byte) {
	l.t.Helper()
	if err := os.WriteFile(BlobPath(l.Dir, digest), b, 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// Put stores b under its own digest and returns the digest and size.
func (l *Layout) Put(b []byte) (v1.Hash, int64) {
	l.t.Helper()
	s := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
	if err := os.WriteFile(BlobPath(l.Dir, h.String()), b, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return h, int64(len(b))
}

// TopIndex is the descriptor of the index blob index.json names.
func (l *Layout) TopIndex() v1.Descriptor {
	l.t.Helper()
	var top v1.IndexManifest
	l.readJSON(filepath.Join(l.Dir, "index.json"), &top)
	if len(top.Manifests) != 1 {
		l.t.Fatalf("%s/index.json names %d entries; expected one index", l.Dir, len(top.Manifests))
	}
	return top.Manifests[0]
}

// ManifestOf is the descriptor, in the index, of the platform's manifest
// ("linux/arm/v7").
func (l *Layout) ManifestOf(platform string) v1.Descriptor {
	l.t.Helper()
	var idx v1.IndexManifest
	l.readJSON(BlobPath(l.Dir, l.TopIndex().Digest.String()), &idx)
	for _, d := range idx.Manifests {
		if d.Platform != nil && d.Platform.String() == platform {
			return d
		}
	}
	l.t.Fatalf("%s has no manifest for %s", l.Dir, platform)
	return v1.Descriptor{}
}

// EditManifest rewrites the platform's manifest through edit, stores it as
// a new blob and points the index (a new blob too) and index.json at it:
// every blob is then what its name says, only the descriptors edit changed
// can lie. It returns the new manifest's descriptor.
func (l *Layout) EditManifest(platform string, edit func(m *v1.Manifest)) v1.Descriptor {
	l.t.Helper()
	old := l.ManifestOf(platform)
	var m v1.Manifest
	if err := json.Unmarshal(l.Read(old.Digest.String()), &m); err != nil {
		l.t.Fatal(err)
	}
	edit(&m)
	nd := old
	nd.Digest, nd.Size = l.Put(l.marshal(m))
	l.EditIndex(func(idx *v1.IndexManifest) {
		for i, d := range idx.Manifests {
			if d.Digest == old.Digest {
				idx.Manifests[i] = nd
			}
		}
	})
	return nd
}

// EditIndex rewrites the index blob through edit, stores it as a new blob
// and points index.json at it. It returns the new index's descriptor.
func (l *Layout) EditIndex(edit func(idx *v1.IndexManifest)) v1.Descriptor {
	l.t.Helper()
	old := l.TopIndex()
	var idx v1.IndexManifest
	if err := json.Unmarshal(l.Read(old.Digest.String()), &idx); err != nil {
		l.t.Fatal(err)
	}
	edit(&idx)
	nd := old
	nd.Digest, nd.Size = l.Put(l.marshal(idx))
	top := v1.IndexManifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json", Manifests: []v1.Descriptor{nd}}
	if err := os.WriteFile(filepath.Join(l.Dir, "index.json"), l.marshal(top), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return nd
}

func (l *Layout) readJSON(path string, v any) {
	l.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		l.t.Fatalf("%s: %v", path, err)
	}
}

func (l *Layout) marshal(v any) []byte {
	l.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

// Blobs names one platform's blobs in a layout, read from the layout
// itself: tests must not pin digests that any change to the sample app
// moves.
type Blobs struct {
	Index    string   // the index index.json names
	Manifest string   // the platform's manifest
	Config   string   // its config
	Layers   []string // its layers, base first (the sample: runtime, then app)
}

// BlobsOf reads the blobs of the platform's image in the layout dir
// (without copying it).
func BlobsOf(t testing.TB, dir, platform string) Blobs {
	t.Helper()
	l := &Layout{t: t, Dir: dir}
	b := Blobs{Index: l.TopIndex().Digest.String(), Manifest: l.ManifestOf(platform).Digest.String()}
	var m v1.Manifest
	l.readJSON(BlobPath(dir, b.Manifest), &m)
	b.Config = m.Config.Digest.String()
	for _, d := range m.Layers {
		b.Layers = append(b.Layers, d.Digest.String())
	}
	return b
}

// Top is the last layer (the sample's app layer).
func (b Blobs) Top() string { return b.Layers[len(b.Layers)-1] }
