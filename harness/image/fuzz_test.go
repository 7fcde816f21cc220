package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fuzzSeeds are the committed seed corpus (testdata/fuzz/FuzzFlatten),
// regenerated with HIL_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds.
//
// Spec format: one entry per line, "TYPE NAME [ARG]"; "---" starts the
// next layer. TYPE: f file (ARG = content, "#!" makes it 0755), d dir,
// l symlink (ARG = target), h hard link (ARG = target), c char device,
// p fifo, s setuid file, b big file (ARG = size). $OUT in a name or ARG is
// replaced by the absolute path of a dir beside the root that must stay
// untouched.
var fuzzSeeds = map[string]string{
	"basic":            "d opt\nf opt/app #!/bin/sh\nl bin opt\nh opt/app2 opt/app\nf etc/conf x=1",
	"whiteout":         "f a/x 1\nf a/y 2\nd c\nf c/old o\n---\nf a/.wh.x\nf c/.wh..wh..opq\nf c/new n\nf .wh.a",
	"dotdot":           "f ../escape x\nf a/../../escape x",
	"symlink-escape":   "l esc ../outside\nf esc/pwned x",
	"symlink-abs-out":  "l esc $OUT\nf esc/pwned x\nl s $OUT/sentinel\nf s over",
	"symlink-parent":   "d a\nl a/up ../..\nf a/up/x x\nd a/up/newdir",
	"symlink-chain":    "l s1 s2/..\nl s2 .\nl s3 s1/../outside\nf s3/pwned x",
	"symlink-loop":     "l l1 l2\nl l2 l1\nf l1/x x",
	"hardlink-escape":  "h h ../outside/sentinel\nh h2 $OUT/sentinel\nl up ..\nh h3 up/outside/sentinel",
	"hardlink-symlink": "l l $OUT/sentinel\nh h l\nf h overwrite",
	"devices":          "c dev/null\np run/fifo\ns bin/su ELF",
	"replace-kinds":    "f e file\nd f\nf f/in x\n---\nd e\nf f now-file\nl g $OUT\n---\nd g\nf g/x x",
	"bomb":             "b big 5000000",
	"opaque-symlink":   "l d $OUT\n---\nf d/.wh..wh..opq\nf d/.wh.sentinel",
	"whiteout-escape":  "f .wh..\nf a/.wh...\nf .wh..wh.plnk",
	"deep":             "f a/b/c/d/e/f/g/h/i/j/k file\nl a/b/c/x ../../../../../..\nf a/b/c/x/y z",
}

type fuzzEntry struct {
	typ       byte
	name, arg string
	mode      int64
	size      int64
}

func parseSpec(spec, out string) [][]fuzzEntry {
	var layers [][]fuzzEntry
	var cur []fuzzEntry
	for _, line := range strings.Split(spec, "\n") {
		if line == "---" {
			layers = append(layers, cur)
			cur = nil
			continue
		}
		fields := strings.SplitN(line, " ", 3)
		if len(fields) < 2 || len(fields[0]) != 1 {
			continue
		}
		e := fuzzEntry{name: strings.ReplaceAll(fields[1], "$OUT", out), mode: 0o644}
		if len(fields) == 3 {
			e.arg = strings.ReplaceAll(fields[2], "$OUT", out)
		}
		switch fields[0][0] {
		case 'f':
			e.typ = tar.TypeReg
			if strings.HasPrefix(e.arg, "#!") {
				e.mode = 0o755
			}
		case 's':
			e.typ, e.mode = tar.TypeReg, 0o4755
		case 'b':
			e.typ = tar.TypeReg
			e.size, _ = strconv.ParseInt(e.arg, 10, 64)
			if e.size < 0 || e.size > 8<<20 {
				e.size = 8 << 20
			}
		case 'd':
			e.typ, e.mode = tar.TypeDir, 0o755
		case 'l':
			e.typ = tar.TypeSymlink
		case 'h':
			e.typ = tar.TypeLink
		case 'c':
			e.typ = tar.TypeChar
		case 'p':
			e.typ = tar.TypeFifo
		default:
			continue
		}
		cur = append(cur, e)
	}
	return append(layers, cur)
}

func specTar(ents []fuzzEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Mode: e.mode, Format: tar.FormatPAX}
		var body []byte
		switch e.typ {
		case tar.TypeReg:
			if e.size > 0 {
				body = make([]byte, e.size)
			} else {
				body = []byte(e.arg)
			}
			h.Size = int64(len(body))
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = e.arg
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// flattenTars runs the flattener over uncompressed layer tars (no gzip,
// no image: the fuzzer spends its time in the path logic).
func flattenTars(ctx context.Context, dir string, tars [][]byte, opts ...Option) (*Report, error) {
	f, err := newFlattener(dir, makeOptions(opts))
	if err != nil {
		return nil, err
	}
	defer f.close()
	for i, t := range tars {
		d := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", sha256.Sum256(append([]byte{byte(i)}, t...)))}
		if err := f.applyLayer(ctx, d, bytes.NewReader(t)); err != nil {
			return nil, err
		}
	}
	return &f.report, f.finish()
}

// FuzzFlatten feeds arbitrary layer specs to the flattener. Whatever the
// input, nothing may be created or changed outside the root (checked
// against a sentinel dir beside it that symlinks in the spec can name
// with $OUT), no device node or fifo may appear, no setuid bit, and the
// flattener must not panic. Errors are fine; only the kinds listed are.
func FuzzFlatten(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		if len(spec) > 4096 {
			return
		}
		j := newJail(t)
		var tars [][]byte
		for _, l := range parseSpec(spec, j.outside) {
			b, err := specTar(l)
			if err != nil {
				return // archive/tar refused to write it: not our input
			}
			tars = append(tars, b)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := flattenTars(ctx, j.root, tars, WithMaxRootFSBytes(4<<20), WithMaxFileBytes(1<<20))
		j.check(t)
		var esc *EscapeError
		var se *SizeLimitError
		if err != nil && !errors.As(err, &esc) && !errors.As(err, &se) && !isOrdinaryLayerError(err) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		filepath.Walk(j.root, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi == nil {
				return nil
			}
			if fi.Mode()&(os.ModeDevice|os.ModeNamedPipe|os.ModeSocket|os.ModeSetuid|os.ModeSetgid) != 0 && !fi.IsDir() {
				t.Fatalf("%s: unexpected mode %v in the rootfs", p, fi.Mode())
			}
			return nil
		})
	})
}

// isOrdinaryLayerError accepts the errors a malformed but harmless layer
// may get: a file where a dir is needed, an invalid name for the kernel.
func isOrdinaryLayerError(err error) bool {
	s := err.Error()
	for _, ok := range []string{"expected a directory", "creating", "replacing", "invalid argument", "file name too long", "reading the tar stream"} {
		if strings.Contains(s, ok) {
			return true
		}
	}
	return false
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("HIL_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set HIL_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzFlatten")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzFlatten")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range fuzzSeeds {
		data := "go test fuzz v1\nstring(" + strconv.Quote(s) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
