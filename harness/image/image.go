// Package image opens an OCI image from any source hil supports, pins it by
// digest, picks one platform and flattens its layers safely into a rootfs.
//
// Sources (the ref given to Open):
//
//	oci:DIR[@sha256:...]          an OCI image layout directory
//	docker-archive:FILE[:TAG]     a `docker save` tarball
//	docker-daemon:NAME[:TAG]      an image in the Docker engine at $DOCKER_HOST
//	[registry:]HOST/REPO:TAG      a registry (also HOST/REPO@sha256:...)
//	PATH                          an existing OCI layout dir or docker archive
//
// Open resolves the ref to a digest once; everything after it reads by
// digest, so what gets tested is exactly what Digest names. No byte is
// taken on trust, from any source: indexes, manifests and configs are
// checked against the descriptors that name them, layer blobs against
// their digest and size as they are read and their content against the
// config's diff_ids; a mismatch is an *IntegrityError naming the blob.
// Registries are reached through harness/registry (WithRegistry).
package image

import (
	"context"
	"fmt"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/registry"
)

// Image is one platform's image of an artifact pinned by digest.
type Image struct {
	// Ref is the reference the user gave (a tag, a path, ...).
	Ref string
	// Digest is what Ref resolved to when it was opened: the index digest
	// for a multi-platform artifact, else the manifest digest. It is the
	// digest a gate promotes.
	Digest v1.Hash
	// ManifestDigest is the digest of this platform's manifest.
	ManifestDigest v1.Hash
	Platform       v1.Platform
	// Config is the image's runtime config (entrypoint, cmd, env, ...).
	Config v1.Config
	// Image gives access to the layers and raw manifest. Its manifest and
	// config were checked against their digests when the Image was made;
	// its layers are checked as they are read (a mismatch is an
	// *IntegrityError instead of the final io.EOF).
	Image v1.Image

	// Report is what the last RootFS call left out (device nodes, setuid
	// bits, ...); nil before RootFS.
	Report *Report

	opts options
}

// Artifact is an image reference resolved and pinned to one digest. It may
// hold several platforms (an index) or one (a single manifest).
type Artifact struct {
	// Ref is the reference as the user gave it.
	Ref string
	// Kind is the source kind: "oci", "docker-archive", "docker-daemon" or
	// "registry".
	Kind string
	// Digest is the index digest, or the manifest digest when the artifact
	// is a single-platform image.
	Digest v1.Hash

	index v1.ImageIndex // nil for a single manifest
	plats []platformImage
	src   origin
	opts  options
}

// platformImage is one platform's manifest as the index (or the pin) names
// it; load returns it verified against desc.
type platformImage struct {
	platform v1.Platform
	desc     v1.Descriptor
	load     func() (*verifiedImage, error)
}

// Option configures Open, RootFS and Flatten.
type Option func(*options)

type options struct {
	registry  *registry.Client
	maxRootFS int64
	maxFile   int64
}

func makeOptions(opts []Option) options {
	o := options{maxRootFS: DefaultMaxRootFSBytes, maxFile: DefaultMaxFileBytes}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithRegistry sets how registries are reached: credentials, plain HTTP
// for loopback registries (registry.WithInsecure), transport and retries.
// The default is registry.New(): the Docker keychain, HTTPS.
func WithRegistry(c *registry.Client) Option { return func(o *options) { o.registry = c } }

// WithMaxRootFSBytes caps the uncompressed bytes read from all layers when
// flattening (default DefaultMaxRootFSBytes; n <= 0 means the default).
func WithMaxRootFSBytes(n int64) Option { return func(o *options) { o.maxRootFS = n } }

// WithMaxFileBytes caps the size of any single file in the rootfs (default
// DefaultMaxFileBytes; n <= 0 means the default).
func WithMaxFileBytes(n int64) Option { return func(o *options) { o.maxFile = n } }

// Platforms lists the platforms the artifact has, in index order
// (attestation entries such as unknown/unknown are left out).
func (a *Artifact) Platforms() []v1.Platform {
	out := make([]v1.Platform, len(a.plats))
	for i, p := range a.plats {
		out[i] = p.platform
	}
	return out
}

// Index returns the image index, or nil for a single-manifest artifact.
// It is the source's own: images read through it are not verified (use
// Image for that).
func (a *Artifact) Index() v1.ImageIndex { return a.index }

// Image returns the image for one platform, e.g. "linux/arm/v7". The
// os/arch/variant must match exactly, after one normalisation borrowed
// from containerd: an arm platform without a variant means v7 and an
// arm64 one without a variant means v8, so "linux/arm" and "linux/arm/v7"
// name the same thing on both sides, while "linux/arm/v6" never matches
// v7. An empty platform picks the only one there is.
func (a *Artifact) Image(platform string) (*Image, error) {
	var pick *platformImage
	if platform == "" {
		if len(a.plats) != 1 {
			return nil, fmt.Errorf("image %s has %d platforms (%s): say which one", a.Ref, len(a.plats), a.platformList())
		}
		pick = &a.plats[0]
	} else {
		want, err := v1.ParsePlatform(platform)
		if err != nil {
			return nil, fmt.Errorf("platform %q: expected os/arch[/variant]: %w", platform, err)
		}
		for i := range a.plats {
			if platformMatches(*want, a.plats[i].platform) {
				pick = &a.plats[i]
				break
			}
		}
		if pick == nil {
			return nil, fmt.Errorf("image %s has no %s manifest; it has %s", a.Ref, platform, a.platformList())
		}
	}
	img, err := pick.load()
	if err != nil {
		return nil, fmt.Errorf("image %s: loading the %s manifest %s: %w", a.Ref, pick.platform, pick.desc.Digest, err)
	}
	return &Image{
		Ref:            a.Ref,
		Digest:         a.Digest,
		ManifestDigest: pick.desc.Digest,
		Platform:       pick.platform,
		Config:         img.config.Config,
		Image:          img,
		opts:           a.opts,
	}, nil
}

func (a *Artifact) platformList() string {
	if len(a.plats) == 0 {
		return "no platforms"
	}
	s := make([]string, len(a.plats))
	for i, p := range a.plats {
		s[i] = p.platform.String()
	}
	return strings.Join(s, ", ")
}

func normalizeVariant(p v1.Platform) string {
	switch {
	case p.Architecture == "arm" && p.Variant == "":
		return "v7"
	case p.Architecture == "arm64" && p.Variant == "":
		return "v8"
	}
	return p.Variant
}

func platformMatches(want, have v1.Platform) bool {
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return false
	}
	if normalizeVariant(want) != normalizeVariant(have) {
		return false
	}
	return want.OSVersion == "" || want.OSVersion == have.OSVersion
}

// platformsOfIndex lists the image manifests of an index (nested indexes
// are followed, each checked against its descriptor) with their platforms;
// a descriptor without a platform gets it from the image config.
func platformsOfIndex(ctx context.Context, idx v1.ImageIndex, src origin) ([]platformImage, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading the index manifest: %w", err)
	}
	var out []platformImage
	for _, d := range im.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d := d
		switch {
		case d.MediaType.IsIndex():
			child, err := openIndex(idx, d, src)
			if err != nil {
				return nil, err
			}
			sub, err := platformsOfIndex(ctx, child, src)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case d.MediaType.IsImage():
			load := func() (*verifiedImage, error) {
				img, err := idx.Image(d.Digest)
				if err != nil {
					if ie := fromLowerCheck(err, "manifest", d, src); ie != err {
						return nil, ie
					}
					return nil, fmt.Errorf("opening manifest %s from %s: %w", d.Digest, src, err)
				}
				return verify(img, d, src)
			}
			var p v1.Platform
			if d.Platform != nil {
				p = *d.Platform
			} else {
				img, err := load()
				if err != nil {
					return nil, err
				}
				p = configPlatform(img.config)
			}
			if p.OS == "unknown" || p.Architecture == "unknown" {
				continue // buildx attestations
			}
			out = append(out, platformImage{platform: p, desc: d, load: onceImage(load)})
		}
	}
	return out, nil
}

// openIndex opens the child index d of idx and checks its bytes against d.
func openIndex(idx v1.ImageIndex, d v1.Descriptor, src origin) (v1.ImageIndex, error) {
	child, err := idx.ImageIndex(d.Digest)
	if err != nil {
		if ie := fromLowerCheck(err, "index", d, src); ie != err {
			return nil, ie
		}
		return nil, fmt.Errorf("opening index %s from %s: %w", d.Digest, src, err)
	}
	raw, err := child.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading index %s from %s: %w", d.Digest, src, err)
	}
	if err := checkBlob(raw, d, "index", src); err != nil {
		return nil, err
	}
	return child, nil
}

// onceImage verifies an image once however often it is asked for.
func onceImage(load func() (*verifiedImage, error)) func() (*verifiedImage, error) {
	var (
		once sync.Once
		img  *verifiedImage
		err  error
	)
	return func() (*verifiedImage, error) {
		once.Do(func() { img, err = load() })
		return img, err
	}
}

func configPlatform(cf *v1.ConfigFile) v1.Platform {
	if p := cf.Platform(); p != nil {
		return *p
	}
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
}

// selfPin is the descriptor of img's manifest as its own bytes give it:
// for sources whose manifest nothing else names (go-containerregistry
// makes it up for docker-save archives) and for images built in memory.
func selfPin(img v1.Image) (v1.Descriptor, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("reading the manifest: %w", err)
	}
	h, _ := hashBytes("sha256", raw)
	mt, _ := img.MediaType()
	return v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(raw))}, nil
}

// singlePlatform verifies a single-manifest artifact against pin and
// describes it.
func singlePlatform(img v1.Image, pin v1.Descriptor, src origin) ([]platformImage, *verifiedImage, error) {
	vi, err := verify(img, pin, src)
	if err != nil {
		return nil, nil, err
	}
	load := func() (*verifiedImage, error) { return vi, nil }
	return []platformImage{{platform: configPlatform(vi.config), desc: pin, load: load}}, vi, nil
}
