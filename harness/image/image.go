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
// digest, so what gets tested is exactly what Digest names.
package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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
	// Image gives access to the layers and raw manifest.
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

	index  v1.ImageIndex // nil for a single manifest
	single v1.Image      // set when index is nil
	plats  []platformImage
	opts   options
}

type platformImage struct {
	platform v1.Platform
	digest   v1.Hash
	load     func() (v1.Image, error)
}

// Option configures Open, RootFS and Flatten.
type Option func(*options)

type options struct {
	keychain  authn.Keychain
	insecure  bool
	maxRootFS int64
	maxFile   int64
	transport http.RoundTripper
}

func makeOptions(opts []Option) options {
	o := options{keychain: authn.DefaultKeychain, maxRootFS: DefaultMaxRootFSBytes, maxFile: DefaultMaxFileBytes}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithKeychain sets where registry credentials come from. The default is
// authn.DefaultKeychain: the user's Docker config ($DOCKER_CONFIG or
// ~/.docker/config.json, including credential helpers).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithInsecure talks plain HTTP to the registry. Meant for registries on
// loopback (tests, a local mirror); never use it across a network.
func WithInsecure() Option { return func(o *options) { o.insecure = true } }

// WithMaxRootFSBytes caps the uncompressed bytes read from all layers when
// flattening (default DefaultMaxRootFSBytes; n <= 0 means the default).
func WithMaxRootFSBytes(n int64) Option { return func(o *options) { o.maxRootFS = n } }

// WithMaxFileBytes caps the size of any single file in the rootfs (default
// DefaultMaxFileBytes; n <= 0 means the default).
func WithMaxFileBytes(n int64) Option { return func(o *options) { o.maxFile = n } }

// WithTransport sets the HTTP transport for registry access (retries are
// still added on top).
func WithTransport(t http.RoundTripper) Option { return func(o *options) { o.transport = t } }

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
		return nil, fmt.Errorf("image %s: loading the %s manifest %s: %w", a.Ref, pick.platform, pick.digest, err)
	}
	if err := verifyImage(img, pick.digest); err != nil {
		return nil, fmt.Errorf("image %s (%s): %w", a.Ref, pick.platform, err)
	}
	cf, err := rawConfig(img)
	if err != nil {
		return nil, fmt.Errorf("image %s (%s): reading its config: %w", a.Ref, pick.platform, err)
	}
	return &Image{
		Ref:            a.Ref,
		Digest:         a.Digest,
		ManifestDigest: pick.digest,
		Platform:       pick.platform,
		Config:         cf.Config,
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

// verifyImage checks that the manifest bytes hash to the digest that named
// them and the config to what the manifest names: sources read from disk
// (a layout dir, an archive) are not verified by go-containerregistry.
func verifyImage(img v1.Image, want v1.Hash) error {
	raw, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("reading the manifest: %w", err)
	}
	if want.Algorithm == "sha256" {
		if got := sha256Hex(raw); got != want.Hex {
			return fmt.Errorf("manifest content is sha256:%s, expected %s (corrupt or tampered)", got, want)
		}
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("parsing the manifest: %w", err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("reading the config: %w", err)
	}
	if m.Config.Digest.Algorithm == "sha256" {
		if got := sha256Hex(rawCfg); got != m.Config.Digest.Hex {
			return fmt.Errorf("config content is sha256:%s, expected %s (corrupt or tampered)", got, m.Config.Digest)
		}
	}
	return nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// platformsOfIndex lists the image manifests of an index (nested indexes
// are followed) with their platforms; a descriptor without a platform gets
// it from the image config.
func platformsOfIndex(ctx context.Context, idx v1.ImageIndex) ([]platformImage, error) {
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
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("opening nested index %s: %w", d.Digest, err)
			}
			sub, err := platformsOfIndex(ctx, child)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case d.MediaType.IsImage():
			load := func() (v1.Image, error) { return idx.Image(d.Digest) }
			var p v1.Platform
			if d.Platform != nil {
				p = *d.Platform
			} else {
				img, err := load()
				if err != nil {
					return nil, fmt.Errorf("opening manifest %s: %w", d.Digest, err)
				}
				cf, err := rawConfig(img)
				if err != nil {
					return nil, fmt.Errorf("reading the config of manifest %s: %w", d.Digest, err)
				}
				p = configPlatform(cf)
			}
			if p.OS == "unknown" || p.Architecture == "unknown" {
				continue // buildx attestations
			}
			out = append(out, platformImage{platform: p, digest: d.Digest, load: load})
		}
	}
	return out, nil
}

// rawConfig parses the config bytes themselves: the daemon source's
// ConfigFile() is rebuilt from `docker inspect` and loses the variant.
func rawConfig(img v1.Image) (*v1.ConfigFile, error) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	return v1.ParseConfigFile(bytes.NewReader(raw))
}

func configPlatform(cf *v1.ConfigFile) v1.Platform {
	if p := cf.Platform(); p != nil {
		return *p
	}
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
}

// singlePlatform describes a single-manifest artifact.
func singlePlatform(img v1.Image) ([]platformImage, v1.Hash, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("computing the manifest digest: %w", err)
	}
	cf, err := rawConfig(img)
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("reading the config: %w", err)
	}
	return []platformImage{{platform: configPlatform(cf), digest: d, load: func() (v1.Image, error) { return img, nil }}}, d, nil
}
