package image

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Every byte hil uses is checked here, for every source, before it is used
// or cached: go-containerregistry does not check what it reads from an OCI
// layout or a docker-save archive (a layout layer's diff_id is even
// computed from the very bytes it should pin), so nothing it returns is
// taken on trust.
//
//   - an index or manifest: its bytes against the digest and size of the
//     descriptor that named it (the parent index, the pin, index.json);
//   - the config: against the manifest's config descriptor, and against
//     what names it outside the manifest where the source has such a name
//     (a docker-save manifest.json entry, the Docker engine's image ID);
//   - each layer blob: against its manifest descriptor's digest and size
//     as it is read (never reading more than that size), and its
//     uncompressed stream against the config's diff_id.
//
// Streams are checked as they are read; the error comes instead of the
// final io.EOF. Flatten reads every layer to its end before anything it
// wrote is committed to the cache, so a refused layer leaves nothing.

// IntegrityError is a blob whose content is not what pins it. Nothing from
// such a blob is used or cached.
type IntegrityError struct {
	// Source is where the blob came from: "oci layout DIR",
	// "docker-archive FILE", "docker-daemon NAME", "registry HOST/REPO".
	Source string
	// Kind is "index", "manifest", "config" or "layer".
	Kind string
	// Digest is the blob's digest as its descriptor (or name) gives it.
	Digest v1.Hash
	// Expected and Found say what was checked: content digest and size,
	// or the uncompressed content against the config's diff_id.
	Expected, Found string
}

func (e *IntegrityError) Error() string {
	return fmt.Sprintf("%s %s from %s: expected %s, found %s: the blob is corrupt or was tampered with, so hil refuses to use it (rebuild the image, or push or fetch it again from a copy you trust)",
		e.Kind, e.Digest, e.Source, e.Expected, e.Found)
}

// origin is where an artifact's bytes come from and what pins them besides
// the manifest.
type origin struct {
	kind, where string
	// tarLayers: the layers are stored as uncompressed tar streams (what
	// `docker save` writes) and read through go-containerregistry's
	// Uncompressed; they are checked against the config's diff_ids, which
	// is also their content digest.
	tarLayers bool
	// configName is the digest that names the config outside the manifest
	// (a docker-save manifest.json entry, the engine's image ID); zero when
	// there is none.
	configName v1.Hash
	// layerNames are, per layer, the digest a docker-save archive's file
	// name gives it (blobs/sha256/HEX, HEX.tar.gz); zero where it gives
	// none.
	layerNames []v1.Hash
}

func (o origin) String() string { return o.kind + " " + o.where }

func newHash(alg string) (hash.Hash, bool) {
	switch alg {
	case "sha256":
		return sha256.New(), true
	case "sha512":
		return sha512.New(), true
	}
	return nil, false
}

func hashBytes(alg string, b []byte) (v1.Hash, bool) {
	h, ok := newHash(alg)
	if !ok {
		return v1.Hash{}, false
	}
	h.Write(b)
	return v1.Hash{Algorithm: alg, Hex: hex.EncodeToString(h.Sum(nil))}, true
}

func describeContent(d v1.Hash, n int64) string {
	return fmt.Sprintf("content %s (%d bytes)", d, n)
}

// checkBlob checks bytes read whole (an index, a manifest, a config)
// against the descriptor that names them: digest and size (a size < 0
// means there is none to check, as for a name that is only a digest).
func checkBlob(b []byte, d v1.Descriptor, kind string, src origin) error {
	got, ok := hashBytes(d.Digest.Algorithm, b)
	if !ok {
		return &IntegrityError{Source: src.String(), Kind: kind, Digest: d.Digest,
			Expected: "a sha256 or sha512 digest hil can check", Found: fmt.Sprintf("digest algorithm %q", d.Digest.Algorithm)}
	}
	n := int64(len(b))
	if got != d.Digest || (d.Size >= 0 && n != d.Size) {
		exp := fmt.Sprintf("content %s", d.Digest)
		if d.Size >= 0 {
			exp = describeContent(d.Digest, d.Size)
		}
		return &IntegrityError{Source: src.String(), Kind: kind, Digest: d.Digest,
			Expected: exp + " as its descriptor says", Found: describeContent(got, n)}
	}
	return nil
}

// checkedReader checks a stream as it is read: against a digest and, when
// size >= 0, a size, reading at most size+1 bytes from r. The check's
// verdict replaces the final io.EOF.
type checkedReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want v1.Hash
	size int64
	// fail makes the error for content that does not match.
	fail func(found string) error
	err  error
}

func newCheckedReader(r io.Reader, want v1.Hash, size int64, fail func(found string) error) (*checkedReader, error) {
	h, ok := newHash(want.Algorithm)
	if !ok {
		return nil, fail(fmt.Sprintf("digest algorithm %q, which hil cannot check", want.Algorithm))
	}
	return &checkedReader{r: r, h: h, want: want, size: size, fail: fail}, nil
}

func (c *checkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.size >= 0 {
		if room := c.size - c.n + 1; int64(len(p)) > room {
			p = p[:room]
		}
	}
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	switch {
	case c.size >= 0 && c.n > c.size:
		c.err = c.fail(fmt.Sprintf("more than %d bytes", c.size))
		return 0, c.err
	case err == io.EOF:
		got := v1.Hash{Algorithm: c.want.Algorithm, Hex: hex.EncodeToString(c.h.Sum(nil))}
		if got != c.want || (c.size >= 0 && c.n != c.size) {
			c.err = c.fail(describeContent(got, c.n))
		} else {
			c.err = io.EOF
		}
		return n, c.err
	case err != nil && isLowerCheck(err):
		// go-containerregistry checks what a registry sends too, and its
		// verdict comes first; ours, over the same bytes, names the blob.
		got := v1.Hash{Algorithm: c.want.Algorithm, Hex: hex.EncodeToString(c.h.Sum(nil))}
		c.err = c.fail(describeContent(got, c.n))
		return n, c.err
	case err != nil:
		c.err = err
	}
	return n, err
}

// isLowerCheck tells go-containerregistry's own verification failures
// (remote fetches check digests and sizes) from other read errors. Its
// error types are internal, so this goes by their text; another failure
// still refuses, it only reads less clearly.
func isLowerCheck(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "error verifying") || strings.Contains(msg, "manifest digest:") ||
		strings.Contains(msg, "does not match expected size")
}

// fromLowerCheck turns go-containerregistry's verification failure of a
// blob read whole into an IntegrityError naming the blob.
func fromLowerCheck(err error, kind string, d v1.Descriptor, src origin) error {
	if err == nil || !isLowerCheck(err) {
		return err
	}
	return &IntegrityError{Source: src.String(), Kind: kind, Digest: d.Digest,
		Expected: fmt.Sprintf("%s as its descriptor says", describeContent(d.Digest, d.Size)), Found: "other content (" + err.Error() + ")"}
}

// verdict reads what is left (up to the size bound) so the check can
// conclude, and returns its integrity error, or nil when the content
// matched or the check could not conclude for another reason.
func (c *checkedReader) verdict() error {
	if c.err == nil {
		io.Copy(io.Discard, c)
	}
	var ie *IntegrityError
	if errors.As(c.err, &ie) {
		return c.err
	}
	return nil
}

// verifiedImage is a v1.Image whose manifest and config were checked when
// it was made and whose layers are checked as they are read. Everything
// hil does with an image goes through one: flattening, loading it into
// Docker for the container and device targets.
type verifiedImage struct {
	under       v1.Image
	src         origin
	desc        v1.Descriptor // the manifest, as pinned
	rawManifest []byte
	manifest    *v1.Manifest
	rawConfig   []byte
	config      *v1.ConfigFile
	layers      []*verifiedLayer
}

var _ v1.Image = (*verifiedImage)(nil)

// verify checks img's manifest against pin, its config against the
// manifest (and src.configName), and lines up every layer descriptor with
// its diff_id; the layers themselves are checked when read.
func verify(img v1.Image, pin v1.Descriptor, src origin) (*verifiedImage, error) {
	if vi, ok := img.(*verifiedImage); ok {
		return vi, nil
	}
	raw, err := img.RawManifest()
	if err != nil {
		if ie := fromLowerCheck(err, "manifest", pin, src); ie != err {
			return nil, ie
		}
		return nil, fmt.Errorf("reading manifest %s from %s: %w", pin.Digest, src, err)
	}
	if err := checkBlob(raw, pin, "manifest", src); err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest %s from %s: expected an image manifest (JSON): %w", pin.Digest, src, err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		if ie := fromLowerCheck(err, "config", m.Config, src); ie != err {
			return nil, ie
		}
		return nil, fmt.Errorf("reading config %s from %s: %w", m.Config.Digest, src, err)
	}
	if err := checkBlob(rawCfg, m.Config, "config", src); err != nil {
		return nil, err
	}
	if src.configName.Hex != "" {
		if err := checkBlob(rawCfg, v1.Descriptor{Digest: src.configName, Size: -1}, "config", src); err != nil {
			var ie *IntegrityError
			if errors.As(err, &ie) {
				ie.Expected = fmt.Sprintf("content %s as its name in the source says", src.configName)
			}
			return nil, err
		}
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("config %s from %s: expected an image config (JSON): %w", m.Config.Digest, src, err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s from %s: expected one config diff_id per manifest layer, found %d diff_ids for %d layers (a broken image: rebuild it)",
			pin.Digest, src, len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	vi := &verifiedImage{under: img, src: src, desc: pin, rawManifest: raw, manifest: m, rawConfig: rawCfg, config: cf}
	for i, d := range m.Layers {
		l := &verifiedLayer{img: vi, desc: d, diffID: cf.RootFS.DiffIDs[i], tar: src.tarLayers}
		if i < len(src.layerNames) && src.layerNames[i].Hex != "" {
			name := src.layerNames[i]
			want := d.Digest
			if l.tar {
				want = l.diffID
			}
			if name != want {
				return nil, &IntegrityError{Source: src.String(), Kind: "layer", Digest: name,
					Expected: fmt.Sprintf("content %s as its file name says", name), Found: fmt.Sprintf("content %s", want)}
			}
		}
		vi.layers = append(vi.layers, l)
	}
	return vi, nil
}

// diffIDs are the config's diff_ids: what the rootfs is made of.
func (vi *verifiedImage) diffIDs() []v1.Hash { return vi.config.RootFS.DiffIDs }

func (vi *verifiedImage) Layers() ([]v1.Layer, error) {
	out := make([]v1.Layer, len(vi.layers))
	for i, l := range vi.layers {
		out[i] = l
	}
	return out, nil
}

func (vi *verifiedImage) MediaType() (types.MediaType, error) {
	if vi.manifest.MediaType != "" {
		return vi.manifest.MediaType, nil
	}
	return vi.under.MediaType()
}

func (vi *verifiedImage) Size() (int64, error)                { return int64(len(vi.rawManifest)), nil }
func (vi *verifiedImage) ConfigName() (v1.Hash, error)        { return vi.manifest.Config.Digest, nil }
func (vi *verifiedImage) ConfigFile() (*v1.ConfigFile, error) { return vi.config.DeepCopy(), nil }
func (vi *verifiedImage) RawConfigFile() ([]byte, error)      { return vi.rawConfig, nil }
func (vi *verifiedImage) Digest() (v1.Hash, error)            { return vi.desc.Digest, nil }
func (vi *verifiedImage) Manifest() (*v1.Manifest, error)     { return vi.manifest.DeepCopy(), nil }
func (vi *verifiedImage) RawManifest() ([]byte, error)        { return vi.rawManifest, nil }

func (vi *verifiedImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	for _, l := range vi.layers {
		if l.desc.Digest == h {
			return l, nil
		}
	}
	if h == vi.manifest.Config.Digest {
		return configLayer{vi}, nil
	}
	return nil, fmt.Errorf("image %s from %s has no layer %s", vi.desc.Digest, vi.src, h)
}

func (vi *verifiedImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for _, l := range vi.layers {
		if l.diffID == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("image %s from %s has no layer with diff_id %s", vi.desc.Digest, vi.src, h)
}

// configLayer is the config blob as a layer (remote.Write asks for it by
// digest); its bytes are the verified ones.
type configLayer struct{ vi *verifiedImage }

func (c configLayer) Digest() (v1.Hash, error) { return c.vi.manifest.Config.Digest, nil }
func (c configLayer) DiffID() (v1.Hash, error) { return c.vi.manifest.Config.Digest, nil }
func (c configLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(c.vi.rawConfig)), nil
}
func (c configLayer) Uncompressed() (io.ReadCloser, error) { return c.Compressed() }
func (c configLayer) Size() (int64, error)                 { return int64(len(c.vi.rawConfig)), nil }
func (c configLayer) MediaType() (types.MediaType, error)  { return c.vi.manifest.Config.MediaType, nil }

// verifiedLayer is one layer of a verifiedImage: its streams are checked
// as they are read.
type verifiedLayer struct {
	img    *verifiedImage
	desc   v1.Descriptor
	diffID v1.Hash
	tar    bool
}

var _ v1.Layer = (*verifiedLayer)(nil)

func (l *verifiedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *verifiedLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *verifiedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *verifiedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

func (l *verifiedLayer) fail(expected string) func(string) error {
	return func(found string) error {
		return &IntegrityError{Source: l.img.src.String(), Kind: "layer", Digest: l.desc.Digest, Expected: expected, Found: found}
	}
}

func (l *verifiedLayer) storedCheck() func(string) error {
	return l.fail(fmt.Sprintf("%s as the manifest says", describeContent(l.desc.Digest, l.desc.Size)))
}

func (l *verifiedLayer) diffIDCheck() func(string) error {
	return l.fail(fmt.Sprintf("uncompressed content %s (the config's diff_id)", l.diffID))
}

// Compressed is the blob as stored, checked against the manifest's digest
// and size. For docker-save tar layers it is go-containerregistry's own
// gzip of the tar, checked against the manifest it made of them when the
// archive was opened (the tar itself is checked by Uncompressed).
func (l *verifiedLayer) Compressed() (io.ReadCloser, error) {
	under, err := l.img.under.LayerByDigest(l.desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("layer %s from %s: %w", l.desc.Digest, l.img.src, err)
	}
	rc, err := under.Compressed()
	if err != nil {
		if ie := fromLowerCheck(err, "layer", l.desc, l.img.src); ie != err {
			return nil, ie
		}
		return nil, fmt.Errorf("layer %s from %s: opening it: %w", l.desc.Digest, l.img.src, err)
	}
	cr, err := newCheckedReader(rc, l.desc.Digest, l.desc.Size, l.storedCheck())
	if err != nil {
		rc.Close()
		return nil, err
	}
	return readCloser{cr, rc.Close}, nil
}

// Uncompressed is the layer's tar stream, checked against the config's
// diff_id; for a stored blob, the blob is checked against the manifest too
// (that verdict comes first: it says which bytes are wrong).
func (l *verifiedLayer) Uncompressed() (io.ReadCloser, error) {
	if l.tar {
		under, err := l.img.under.LayerByDiffID(l.diffID)
		if err != nil {
			return nil, fmt.Errorf("layer %s from %s: %w", l.desc.Digest, l.img.src, err)
		}
		rc, err := under.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("layer %s from %s: opening it: %w", l.desc.Digest, l.img.src, err)
		}
		ur, err := newCheckedReader(rc, l.diffID, -1, l.diffIDCheck())
		if err != nil {
			rc.Close()
			return nil, err
		}
		return readCloser{ur, rc.Close}, nil
	}
	stored, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	sc := stored.(readCloser)
	cr := sc.Reader.(*checkedReader)
	br := bufio.NewReaderSize(cr, 64<<10)
	dec, closeDec, err := decompress(br)
	if err != nil {
		if verr := cr.verdict(); verr != nil {
			err = verr
		}
		stored.Close()
		return nil, fmt.Errorf("layer %s from %s: decompressing it: %w", l.desc.Digest, l.img.src, err)
	}
	ur, err := newCheckedReader(dec, l.diffID, -1, l.diffIDCheck())
	if err != nil {
		closeDec()
		stored.Close()
		return nil, err
	}
	return &layerStream{l: l, ur: ur, stored: cr, rest: br, closers: []func() error{closeDec, stored.Close}}, nil
}

// layerStream is a layer's uncompressed stream over its checked stored
// blob. When the uncompressed stream ends (or breaks), the stored blob is
// read to its end and judged first.
type layerStream struct {
	l       *verifiedLayer
	ur      *checkedReader
	stored  *checkedReader
	rest    io.Reader // what the decompressor may not have consumed
	closers []func() error
}

func (s *layerStream) Read(p []byte) (int, error) {
	n, err := s.ur.Read(p)
	if err == nil {
		return n, nil
	}
	io.Copy(io.Discard, s.rest)
	if verr := s.stored.verdict(); verr != nil {
		return n, verr
	}
	var ie *IntegrityError
	if err != io.EOF && !errors.As(err, &ie) {
		err = fmt.Errorf("layer %s from %s: decompressing it: %w", s.l.desc.Digest, s.l.img.src, err)
	}
	return n, err
}

func (s *layerStream) Close() error {
	var first error
	for _, c := range s.closers {
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress picks the decompressor by the stream's magic bytes, as
// container engines do (media types are often wrong about it): gzip,
// zstd, or none (a plain tar).
func decompress(br *bufio.Reader) (io.Reader, func() error, error) {
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return zr, func() error { zr.Close(); return nil }, nil
	}
	return br, func() error { return nil }, nil
}
