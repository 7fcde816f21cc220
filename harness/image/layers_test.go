package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ent is one hand-made tar entry.
type ent struct {
	typ  byte
	name string
	link string
	mode int64
	body string
}

func file(name, body string, mode int64) ent {
	return ent{typ: tar.TypeReg, name: name, body: body, mode: mode}
}
func dir(name string, mode int64) ent { return ent{typ: tar.TypeDir, name: name, mode: mode} }
func symlink(name, target string) ent {
	return ent{typ: tar.TypeSymlink, name: name, link: target, mode: 0o777}
}
func hardlink(name, target string) ent {
	return ent{typ: tar.TypeLink, name: name, link: target, mode: 0o644}
}

var testMtime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func tarOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: e.mode, ModTime: testMtime, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeChar || e.typ == tar.TypeBlock {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if h.Size > 0 {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawLayer is a gzip layer with a given diff_id: tests can make layers
// whose content does not match (tampering) or bombs whose diff_id was
// computed while generating them.
type rawLayer struct {
	gz     []byte
	diffID v1.Hash
}

func (l *rawLayer) Digest() (v1.Hash, error) {
	s := sha256.Sum256(l.gz)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}, nil
}
func (l *rawLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *rawLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}
func (l *rawLayer) Uncompressed() (io.ReadCloser, error) {
	return gzip.NewReader(bytes.NewReader(l.gz))
}
func (l *rawLayer) Size() (int64, error)                { return int64(len(l.gz)), nil }
func (l *rawLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }

func layerOf(t testing.TB, tarBytes []byte) *rawLayer {
	t.Helper()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBytes)
	zw.Close()
	s := sha256.Sum256(tarBytes)
	return &rawLayer{gz: gz.Bytes(), diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}}
}

func imageOf(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatalf("building test image: %v", err)
	}
	return img
}

func digestOf(t testing.TB, l v1.Layer) v1.Hash {
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// jail is a temp dir holding the root to flatten into and, beside it, an
// "outside" dir with a sentinel file; check fails the test if anything
// beside the root appeared or the outside dir changed.
type jail struct {
	dir, root, outside string
}

func newJail(t testing.TB) *jail {
	t.Helper()
	d := t.TempDir()
	j := &jail{dir: d, root: filepath.Join(d, "root"), outside: filepath.Join(d, "outside")}
	if err := os.Mkdir(j.outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(j.outside, "sentinel"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	return j
}

func (j *jail) check(t testing.TB) {
	t.Helper()
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "outside,root" && strings.Join(names, ",") != "outside" {
		t.Fatalf("something was written beside the root: %v", names)
	}
	ents, err = os.ReadDir(j.outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "sentinel" {
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		t.Fatalf("the dir outside the root changed: %v", n)
	}
	fi, err := os.Lstat(filepath.Join(j.outside, "sentinel"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("sentinel outside the root was replaced: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(j.outside, "sentinel")); string(b) != "untouched" {
		t.Fatalf("sentinel outside the root was written: %q", b)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
