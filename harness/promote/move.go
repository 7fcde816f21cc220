package promote

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hilproject/hil/harness/registry"
)

// MovedError is Move's refusal: the tag no longer points where the caller
// last saw it, so someone else moved it and the caller's decision is about
// a state that is gone.
type MovedError struct {
	Tag      string
	Expected string // "" when the tag was expected not to exist
	Found    string // "" when it does not exist
}

func (e *MovedError) Error() string {
	return fmt.Sprintf("refused: %s moved meanwhile: it was %s, it is %s now; nothing was written", e.Tag, orNone(e.Expected), orNone(e.Found))
}

// Move points tag at digest with the gate's guards: the digest's manifest
// must hash to its name, the tag must still point at expect (the digest the
// caller decided from; "" for a tag that must not exist yet), and after the
// write the tag is read back and must name exactly that digest and media
// type. It returns what the tag points at afterwards (on error too, as far
// as the registry can say). A tag that moved meanwhile is a *MovedError and
// nothing is written. Across repositories the blobs are copied first.
func Move(ctx context.Context, reg *Registry, digest name.Digest, tag name.Tag, expect string) (string, error) {
	if reg == nil {
		reg = registry.New()
	}
	desc, err := remote.Get(digest, reg.Remote(ctx)...)
	if err != nil {
		return "", fmt.Errorf("fetching %s to point %s at it (the tag was not touched): %w", digest, tag, registry.Explain(err))
	}
	if err := checkDigest(desc); err != nil {
		return "", fmt.Errorf("fetching %s (the tag was not touched): %w", digest, err)
	}
	cur, err := currentDigest(ctx, reg, tag)
	if err != nil {
		return "", fmt.Errorf("reading the current %s before writing it (the tag was not touched): %w", tag, registry.Explain(err))
	}
	if cur != expect {
		return cur, &MovedError{Tag: tag.String(), Expected: expect, Found: cur}
	}
	if cur == desc.Digest.String() {
		return cur, nil
	}
	return writeAndVerify(ctx, reg, desc, digest.Context(), tag, cur)
}

// Current is the digest tag points at ("" when it does not exist).
func Current(ctx context.Context, reg *Registry, tag name.Tag) (string, error) {
	if reg == nil {
		reg = registry.New()
	}
	d, err := currentDigest(ctx, reg, tag)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", tag, registry.Explain(err))
	}
	return d, nil
}
