package board

import (
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// NoManifestError is a board whose engine finds nothing to pull in an
// index: Docker says "no matching manifest for linux/arm/v6 in the
// manifest list entries".
type NoManifestError struct {
	Board Board
	// Accepts is what the engine would take, in its order of preference.
	Accepts []string
	// Index is what the index has, in index order.
	Index []string
}

func (e *NoManifestError) Error() string {
	have := "nothing"
	if len(e.Index) > 0 {
		have = strings.Join(e.Index, ", ")
	}
	return fmt.Sprintf("%s asks for %s and the index has no manifest it accepts (it would take %s); the index has %s",
		e.Board.Describe(), e.Board.Platform(), strings.Join(e.Accepts, ", "), have)
}

// Pick chooses the manifest the board's container engine pulls from an
// index whose manifests are for these platforms (index order), the way
// containerd (and Docker with it) does: platforms.Only(board platform)
// accepts the platform and its fallbacks (arm/v7 also takes v6 and v5;
// arm64 also takes arm/v8 … v5, since a 64-bit Pi runs 32-bit code too),
// and the most preferred match wins. An index with nothing the board
// accepts gives a *NoManifestError listing what the index has.
func (b Board) Pick(index []v1.Platform) (v1.Platform, error) {
	want, err := platforms.Parse(b.Platform())
	if err != nil {
		return v1.Platform{}, fmt.Errorf("board %s: its platform %q: %w", b, b.Platform(), err)
	}
	m := platforms.Only(want)
	type cand struct {
		p    v1.Platform
		spec specs.Platform
	}
	var match []cand
	var have []string
	for _, p := range index {
		s := toSpec(p)
		have = append(have, p.String())
		if m.Match(s) {
			match = append(match, cand{p, s})
		}
	}
	if len(match) == 0 {
		return v1.Platform{}, &NoManifestError{Board: b, Accepts: b.Accepts(), Index: have}
	}
	// containerd sorts the matches with the comparer and takes the first;
	// stable, so equal ones stay in index order.
	sort.SliceStable(match, func(i, j int) bool { return m.Less(match[i].spec, match[j].spec) })
	return match[0].p, nil
}

// Accepts lists the platforms the board's engine takes, most preferred
// first (containerd's fallback vector for the board's platform).
func (b Board) Accepts() []string {
	want, err := platforms.Parse(b.Platform())
	if err != nil {
		return []string{b.Platform()}
	}
	// platforms.Only is built from this same vector; containerd does not
	// export it, so walk the candidates it would accept.
	m := platforms.Only(want)
	var out []string
	for _, c := range []string{
		"linux/arm64/v8", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5",
		"linux/amd64", "linux/386",
	} {
		s, err := platforms.Parse(c)
		if err == nil && m.Match(s) {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return m.Less(platforms.MustParse(out[i]), platforms.MustParse(out[j]))
	})
	return out
}

func toSpec(p v1.Platform) specs.Platform {
	return specs.Platform{
		OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
		OSVersion: p.OSVersion, OSFeatures: p.OSFeatures,
	}
}

// Pulled is what a board's engine pulls from an image: the platform of
// the manifest, and a note when that is worth knowing (a single-manifest
// image pulled whatever the board asked for).
type Pulled struct {
	Platform v1.Platform
	Note     string
}

// Pull is what the board's engine pulls from an image whose manifests are
// for these platforms: from an index (single false), the manifest Pick
// chooses (or a *NoManifestError); a single-manifest image is pulled
// whatever its platform, as Docker does (it only warns when the platforms
// differ), and the static check and the targets then say whether it runs.
func (b Board) Pull(platforms []v1.Platform, single bool) (Pulled, error) {
	if single && len(platforms) == 1 {
		p := platforms[0]
		note := "a single-platform image: the engine pulls it whatever it asks for"
		if _, err := b.Pick(platforms); err != nil {
			note += fmt.Sprintf(" (%s asks for %s; Docker warns that the platforms differ)", b, b.Platform())
		}
		return Pulled{Platform: p, Note: note}, nil
	}
	p, err := b.Pick(platforms)
	if err != nil {
		return Pulled{}, err
	}
	return Pulled{Platform: p}, nil
}
