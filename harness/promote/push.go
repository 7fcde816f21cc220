package promote

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PushLayout pushes what an OCI layout dir holds to ref and returns the
// pushed digest: when index.json names exactly one manifest (an index or an
// image) that one, otherwise index.json itself as an index. Manifests are
// pushed as stored, so the digest is the layout's.
func PushLayout(ctx context.Context, r *Registry, dir string, ref name.Reference) (v1.Hash, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return v1.Hash{}, fmt.Errorf("%s is not an OCI layout (no index.json): %w", dir, err)
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading %s/index.json: %w", dir, err)
	}
	if len(im.Manifests) == 0 {
		return v1.Hash{}, errors.New(dir + "/index.json lists no manifest")
	}
	if len(im.Manifests) == 1 {
		d := im.Manifests[0]
		switch {
		case d.MediaType.IsIndex():
			idx, err := top.ImageIndex(d.Digest)
			if err != nil {
				return v1.Hash{}, fmt.Errorf("reading index %s in %s: %w", d.Digest, dir, err)
			}
			if err := remote.WriteIndex(ref, idx, r.Remote(ctx)...); err != nil {
				return v1.Hash{}, fmt.Errorf("pushing %s to %s: %w", dir, ref, err)
			}
			return d.Digest, nil
		case d.MediaType.IsImage():
			img, err := top.Image(d.Digest)
			if err != nil {
				return v1.Hash{}, fmt.Errorf("reading image %s in %s: %w", d.Digest, dir, err)
			}
			if err := remote.Write(ref, img, r.Remote(ctx)...); err != nil {
				return v1.Hash{}, fmt.Errorf("pushing %s to %s: %w", dir, ref, err)
			}
			return d.Digest, nil
		}
	}
	h, err := top.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.WriteIndex(ref, top, r.Remote(ctx)...); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s to %s: %w", dir, ref, err)
	}
	return h, nil
}
