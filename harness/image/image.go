// Package image opens an OCI image from any source hil supports, pins it by
// digest, picks one platform and flattens its layers safely into a rootfs.
package image

import (
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
}
