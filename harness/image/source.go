package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	pathpkg "path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hilproject/hil/harness/registry"
)

// Open resolves ref (see the package doc for the forms) to a digest and
// returns the pinned artifact. Nothing is downloaded beyond manifests and
// configs; layers are read by RootFS/Flatten.
func Open(ctx context.Context, ref string, opts ...Option) (*Artifact, error) {
	o := makeOptions(opts)
	kind, rest := splitRef(ref)
	var a *Artifact
	var err error
	switch kind {
	case "oci":
		a, err = openLayout(ctx, ref, rest)
	case "docker-archive":
		a, err = openArchive(ctx, ref, rest)
	case "docker-daemon":
		a, err = openEngine(ctx, ref, kind, rest)
	case "registry":
		a, err = openRemote(ctx, ref, rest, o.registry)
	default:
		err = fmt.Errorf("image %s: unknown source kind %q", ref, kind)
	}
	if err != nil {
		return nil, err
	}
	a.Ref, a.Kind, a.opts = ref, kind, o
	return a, nil
}

// splitRef finds the source kind. A bare path that exists is a layout dir
// (it has an oci-layout file) or an archive (a regular file).
func splitRef(ref string) (kind, rest string) {
	for _, k := range []string{"oci", "docker-archive", "docker-daemon", "registry"} {
		if strings.HasPrefix(ref, k+":") {
			return k, ref[len(k)+1:]
		}
	}
	if st, err := os.Stat(ref); err == nil {
		if st.IsDir() {
			return "oci", ref
		}
		return "docker-archive", ref
	}
	return "registry", ref
}

func openLayout(ctx context.Context, ref, rest string) (*Artifact, error) {
	dir, want := rest, ""
	if i := strings.LastIndex(rest, "@"); i >= 0 && strings.HasPrefix(rest[i+1:], "sha256:") {
		dir, want = rest[:i], rest[i+1:]
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return nil, fmt.Errorf("image %s: expected an OCI layout dir (with an oci-layout file) at %s: %w", ref, dir, err)
	}
	src := origin{kind: "oci layout", where: dir}
	// index.json is the root: nothing names it, so it pins everything
	// below it (unless the ref pins one of its entries by digest).
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("image %s: reading %s/index.json: %w", ref, dir, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("image %s: parsing %s/index.json: %w", ref, dir, err)
	}
	var pick *v1.Descriptor
	switch {
	case want != "":
		h, err := v1.NewHash(want)
		if err != nil {
			return nil, fmt.Errorf("image %s: digest %q: %w", ref, want, err)
		}
		for i := range im.Manifests {
			if im.Manifests[i].Digest == h {
				pick = &im.Manifests[i]
			}
		}
		if pick == nil {
			// A platform manifest's digest (as `hil image inspect --rootfs`
			// prints it) pins that one image of a nested index.
			img, d, err := findNestedImage(top, im.Manifests, h, src)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", ref, err)
			}
			if img != nil {
				plats, _, err := singlePlatform(img, d, src)
				if err != nil {
					return nil, fmt.Errorf("image %s: %w", ref, err)
				}
				return &Artifact{Digest: d.Digest, plats: plats, src: src}, nil
			}
			return nil, fmt.Errorf("image %s: index.json has no entry %s; it has %s", ref, h, describeDescs(im.Manifests))
		}
	case len(im.Manifests) == 1:
		pick = &im.Manifests[0]
	case len(im.Manifests) == 0:
		return nil, fmt.Errorf("image %s: %s/index.json lists no images", ref, dir)
	default:
		// Several entries: either index.json is itself the multi-platform
		// index (every entry an image with a platform), or it holds several
		// unrelated images and the user must pick one.
		for _, d := range im.Manifests {
			if !d.MediaType.IsImage() || d.Platform == nil {
				return nil, fmt.Errorf("image %s: %s/index.json holds %d images (%s); pick one with oci:%s@DIGEST", ref, dir, len(im.Manifests), describeDescs(im.Manifests), dir)
			}
		}
		h, err := top.Digest()
		if err != nil {
			return nil, fmt.Errorf("image %s: hashing index.json: %w", ref, err)
		}
		plats, err := platformsOfIndex(ctx, top, src)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		return &Artifact{Digest: h, index: top, plats: plats, src: src}, nil
	}
	switch {
	case pick.MediaType.IsIndex():
		idx, err := openIndex(top, *pick, src)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		plats, err := platformsOfIndex(ctx, idx, src)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		return &Artifact{Digest: pick.Digest, index: idx, plats: plats, src: src}, nil
	case pick.MediaType.IsImage():
		img, err := top.Image(pick.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: opening manifest %s: %w", ref, pick.Digest, err)
		}
		plats, _, err := singlePlatform(img, *pick, src)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		return &Artifact{Digest: pick.Digest, plats: plats, src: src}, nil
	default:
		return nil, fmt.Errorf("image %s: entry %s has media type %s, expected an image or an index", ref, pick.Digest, pick.MediaType)
	}
}

// findNestedImage finds the image manifest h in an index that index.json
// names, with its descriptor there; each index on the way is checked.
func findNestedImage(top v1.ImageIndex, ds []v1.Descriptor, h v1.Hash, src origin) (v1.Image, v1.Descriptor, error) {
	for _, d := range ds {
		if !d.MediaType.IsIndex() {
			continue
		}
		idx, err := openIndex(top, d, src)
		if err != nil {
			return nil, v1.Descriptor{}, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("parsing index %s from %s: %w", d.Digest, src, err)
		}
		for _, c := range im.Manifests {
			if c.Digest == h && c.MediaType.IsImage() {
				img, err := idx.Image(h)
				if err != nil {
					return nil, v1.Descriptor{}, fmt.Errorf("opening manifest %s from %s: %w", h, src, err)
				}
				return img, c, nil
			}
		}
	}
	return nil, v1.Descriptor{}, nil
}

func describeDescs(ds []v1.Descriptor) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Digest.String()
		if n := d.Annotations["org.opencontainers.image.ref.name"]; n != "" {
			s[i] += " (" + n + ")"
		}
		if d.Platform != nil {
			s[i] += " " + d.Platform.String()
		}
	}
	return strings.Join(s, ", ")
}

// openArchive opens a `docker save` tarball. A tag may follow the path
// after a colon (FILE:TAG, the tag itself may hold a colon); it is needed
// when the archive holds several images.
func openArchive(_ context.Context, ref, rest string) (*Artifact, error) {
	path, tag := rest, ""
	if _, err := os.Stat(rest); err != nil {
		found := false
		for i := 0; i < len(rest); i++ {
			if rest[i] != ':' {
				continue
			}
			if st, err := os.Stat(rest[:i]); err == nil && !st.IsDir() {
				path, tag, found = rest[:i], rest[i+1:], true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("image %s: expected a docker save tarball at %s: %w", ref, rest, err)
		}
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return nil, fmt.Errorf("image %s: reading manifest.json of %s (expected a docker save tarball): %w", ref, path, err)
	}
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	var t *name.Tag
	entry := -1
	switch {
	case tag != "":
		parsed, err := name.NewTag(tag)
		if err != nil {
			return nil, fmt.Errorf("image %s: tag %q: %w", ref, tag, err)
		}
		for i, d := range m {
			for _, rt := range d.RepoTags {
				if p, err := name.NewTag(rt); err == nil && p.Name() == parsed.Name() && entry < 0 {
					entry = i
				}
			}
		}
		if entry < 0 {
			return nil, fmt.Errorf("image %s: %s has no image tagged %s; it has %s", ref, path, tag, listOrNone(tags))
		}
		t = &parsed
	case len(m) == 0:
		return nil, fmt.Errorf("image %s: %s holds no images", ref, path)
	case len(m) > 1:
		return nil, fmt.Errorf("image %s: %s holds %d images; pick one with docker-archive:%s:TAG, tags: %s", ref, path, len(m), path, listOrNone(tags))
	default:
		entry = 0
	}
	src, err := archiveOrigin(path, m[entry])
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	img, err := tarball.ImageFromPath(path, t)
	if err != nil {
		return nil, fmt.Errorf("image %s: opening the image in %s: %w", ref, path, err)
	}
	// A docker-save archive holds no manifest: go-containerregistry makes
	// one up from the content, so it pins nothing by itself. What pins the
	// image is the config's name in manifest.json (its digest) and, through
	// the config, the layers' diff_ids.
	pin, err := selfPin(img)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	plats, _, err := singlePlatform(img, pin, src)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	return &Artifact{Digest: pin.Digest, plats: plats, src: src}, nil
}

// archiveOrigin reads what a docker-save manifest.json entry pins: the
// config's digest and the layers' digests where their file names are
// content addresses (sha256:HEX, HEX.json, blobs/sha256/HEX, HEX.tar.gz),
// and whether the layers are stored as plain tars (the engine's own
// `docker save`) or compressed (archives written by go-containerregistry).
func archiveOrigin(path string, d tarball.Descriptor) (origin, error) {
	src := origin{kind: "docker-archive", where: path}
	src.configName = nameDigest(d.Config)
	if src.configName.Hex == "" {
		return src, fmt.Errorf("%s: manifest.json names the config %q, expected its digest (sha256:HEX, HEX.json or blobs/sha256/HEX): without it nothing pins the image", path, d.Config)
	}
	for _, l := range d.Layers {
		src.layerNames = append(src.layerNames, nameDigest(l))
	}
	if len(d.Layers) > 0 {
		compressed, err := archiveEntryCompressed(path, d.Layers[0])
		if err != nil {
			return src, err
		}
		// The same choice go-containerregistry makes from the first layer.
		src.tarLayers = !compressed
	}
	return src, nil
}

// Compiled on first use, not at package init, which every hil process pays for.
var hexDigest = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{64}$`) })

// nameDigest is the sha256 digest an archive entry's name gives, or zero.
func nameDigest(name string) v1.Hash {
	n := strings.TrimPrefix(name, "sha256:")
	n = strings.TrimPrefix(n, "blobs/sha256/")
	for _, ext := range []string{".json", ".tar.gz"} {
		n = strings.TrimSuffix(n, ext)
	}
	if !hexDigest().MatchString(n) {
		return v1.Hash{}
	}
	return v1.Hash{Algorithm: "sha256", Hex: n}
}

// archiveEntryCompressed reports whether the archive entry name (a layer)
// starts with gzip or zstd magic. Links inside the archive are followed a
// few times, as the engine writes them for docker-save compatibility.
func archiveEntryCompressed(path, name string) (bool, error) {
	for hops := 0; hops < 8; hops++ {
		f, err := os.Open(path)
		if err != nil {
			return false, err
		}
		tr := tar.NewReader(f)
		var link string
		found := false
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return false, fmt.Errorf("%s: reading the archive: %w", path, err)
			}
			if pathpkg.Clean(h.Name) != pathpkg.Clean(name) {
				continue
			}
			found = true
			if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
				link = h.Linkname
				if h.Typeflag == tar.TypeSymlink {
					link = pathpkg.Join(pathpkg.Dir(name), link)
				}
				break
			}
			head := make([]byte, 4)
			n, _ := io.ReadFull(tr, head)
			f.Close()
			head = head[:n]
			return bytes.HasPrefix(head, gzipMagic) || bytes.HasPrefix(head, zstdMagic), nil
		}
		f.Close()
		if !found {
			return false, fmt.Errorf("%s: manifest.json names layer %s, but the archive has no such entry", path, name)
		}
		name = link
	}
	return false, fmt.Errorf("%s: layer entry %s: too many links", path, name)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "no tags"
	}
	return strings.Join(s, ", ")
}

// EngineSource reads the image called name from a container engine (its
// own image store, not a registry). It returns the image, which the
// engine's image ID (its config's digest) pins, and the image's name as
// the engine knows it, for messages. The layers it serves must be plain
// tars, as `docker save` writes them.
type EngineSource func(ctx context.Context, name string) (img v1.Image, where string, err error)

var (
	enginesMu sync.RWMutex
	engines   = map[string]EngineSource{}
)

// RegisterEngine makes KIND:NAME references read images from an engine,
// the way image decoders register: harness/image/dockerdaemon registers
// "docker-daemon" when it is imported, so that the core of the library
// links no Docker client. It panics when kind is taken.
func RegisterEngine(kind string, open EngineSource) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if _, dup := engines[kind]; dup || open == nil {
		panic("image: RegisterEngine called twice for " + kind + ", or with nil")
	}
	engines[kind] = open
}

// enginePackages are hil's own engine sources, for the error that names
// the import a program is missing.
var enginePackages = map[string]string{"docker-daemon": "github.com/hilproject/hil/harness/image/dockerdaemon"}

// openEngine reads an image from an engine registered for kind. The
// engine's image ID is the config's digest: it pins the config, and the
// config pins the layers.
func openEngine(ctx context.Context, ref, kind, rest string) (*Artifact, error) {
	enginesMu.RLock()
	open, ok := engines[kind]
	enginesMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("image %s: %s images are read through a package this program does not link: import _ %q", ref, kind, enginePackages[kind])
	}
	img, where, err := open(ctx, rest)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	id, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("image %s: asking the %s source for the image ID of %s: %w", ref, kind, where, err)
	}
	src := origin{kind: kind, where: where, tarLayers: true, configName: id}
	pin, err := selfPin(img)
	if err != nil {
		return nil, fmt.Errorf("image %s: reading it from the %s source: %w", ref, kind, err)
	}
	plats, _, err := singlePlatform(img, pin, src)
	if err != nil {
		return nil, fmt.Errorf("image %s: reading it from the %s source: %w", ref, kind, err)
	}
	return &Artifact{Digest: pin.Digest, plats: plats, src: src}, nil
}

func openRemote(ctx context.Context, ref, rest string, reg *registry.Client) (*Artifact, error) {
	// The plain-HTTP rule is applied here, before anything is sent.
	r, err := reg.ParseReference(rest)
	if err != nil {
		var perr *registry.PlainHTTPError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		return nil, fmt.Errorf("image %s: expected a registry reference HOST/REPO:TAG or HOST/REPO@sha256:..., or oci:DIR, docker-archive:FILE, docker-daemon:NAME: %w", ref, err)
	}
	src := origin{kind: "registry", where: r.Context().Name()}
	desc, err := remote.Get(r, reg.Remote(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("image %s: resolving it at registry %s: %w", ref, r.Context().RegistryStr(), registry.Explain(err))
	}
	// go-containerregistry checks what the registry sent against the
	// digest it asked for or the one the registry claimed; so do we, with
	// the size, before anything of it is used.
	if err := checkBlob(desc.Manifest, desc.Descriptor, manifestKind(desc.MediaType), src); err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	// From here on everything is fetched by digest.
	pinned := r.Context().Digest(desc.Digest.String())
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("image %s: reading index %s: %w", ref, pinned, registry.Explain(err))
		}
		plats, err := platformsOfIndex(ctx, idx, src)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, registry.Explain(err))
		}
		return &Artifact{Digest: desc.Digest, index: idx, plats: plats, src: src}, nil
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("image %s: reading manifest %s: %w", ref, pinned, registry.Explain(err))
		}
		plats, _, err := singlePlatform(img, desc.Descriptor, src)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, registry.Explain(err))
		}
		return &Artifact{Digest: desc.Digest, plats: plats, src: src}, nil
	default:
		return nil, fmt.Errorf("image %s: %s has media type %s, expected an image or an index", ref, pinned, desc.MediaType)
	}
}

func manifestKind(mt types.MediaType) string {
	if mt.IsIndex() {
		return "index"
	}
	return "manifest"
}
