package attest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	testresult "github.com/in-toto/attestation/go/predicates/test_result/v0"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/registry"
)

// RolloutPredicateType is hil's predicate for what happened to a digest in
// the field after the gate: a rollback of a tag away from it, or a canary
// window it failed. Its subjects are the digest it withdraws (From) and,
// for a rollback, the digest the tag went back to (To); it is stored on
// both, so each digest's attestations tell its whole story.
const RolloutPredicateType = "https://hil.dev/rollout/v1"

// The kinds of rollout event.
const (
	// EventRollback: Tag was moved back from From to To.
	EventRollback = "rollback"
	// EventCanaryFailed: From failed the canary window; the tag the
	// fleet pulls was not moved to it.
	EventCanaryFailed = "canary-failed"
)

// RolloutEvent is the rollout predicate: a digest that passed the gate and
// failed in the field. A rollback never goes back to a digest that is the
// From of a rollout event.
type RolloutEvent struct {
	Kind string `json:"kind"`
	// Tag is the tag that moved (host/repo:tag).
	Tag string `json:"tag"`
	// From is the withdrawn digest (sha256:...); To the one Tag points at
	// afterwards ("" when the tag did not move).
	From string `json:"from"`
	To   string `json:"to,omitempty"`
	// Reason says why, with the board and what it showed.
	Reason string `json:"reason"`
	// Boards are the boards that failed, each with what it showed.
	Boards []BoardProblems `json:"boards,omitempty"`
	// Evidence is where the passing test result that vouched for To is
	// stored (repo@sha256:... of its referrer, or the .att tag).
	Evidence string `json:"evidence,omitempty"`
	HIL      struct {
		Version string `json:"version"`
	} `json:"hil"`
	URL  string    `json:"url,omitempty"`
	Time time.Time `json:"time"`
}

// BoardProblems is what one board showed.
type BoardProblems struct {
	Board    string   `json:"board"`
	Problems []string `json:"problems"`
}

// RolloutStatement is the in-toto statement of ev about digests in repo.
func RolloutStatement(repo name.Repository, ev RolloutEvent) (*intoto.Statement, error) {
	var subject []*intoto.ResourceDescriptor
	for _, d := range []string{ev.From, ev.To} {
		if d == "" {
			continue
		}
		h, err := v1.NewHash(d)
		if err != nil || h.Algorithm != "sha256" {
			return nil, fmt.Errorf("rollout event: digest %q: want sha256:<hex>", d)
		}
		subject = append(subject, &intoto.ResourceDescriptor{Name: repo.Name(), Digest: map[string]string{"sha256": h.Hex}})
	}
	if ev.From == "" {
		return nil, errors.New("rollout event: no digest it withdraws (From)")
	}
	pred, err := jsonStruct(ev)
	if err != nil {
		return nil, err
	}
	st := &intoto.Statement{Type: intoto.StatementTypeUri, Subject: subject, PredicateType: RolloutPredicateType, Predicate: pred}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("the rollout statement is not valid in-toto: %w", err)
	}
	return st, nil
}

// RecordRollout seals ev (signed with s, or unsigned when s is nil) and
// stores it on From and on To, as a referrer and in cosign's .att tag. It
// returns where it went on From.
func RecordRollout(ctx context.Context, reg *promote.Registry, repo name.Repository, ev RolloutEvent, s *Signer) (string, error) {
	st, err := RolloutStatement(repo, ev)
	if err != nil {
		return "", err
	}
	env, err := Seal(ctx, st, s)
	if err != nil {
		return "", err
	}
	var where string
	for _, d := range []string{ev.From, ev.To} {
		if d == "" {
			continue
		}
		subject := repo.Digest(d)
		desc, err := remote.Head(subject, reg.Remote(ctx)...)
		if err != nil {
			return where, fmt.Errorf("recording the %s of %s on %s: %w", ev.Kind, ev.Tag, subject, registry.Explain(err))
		}
		at, err := Store(ctx, reg, subject, *desc, []Envelope{env}, ev.Kind)
		if err != nil {
			return where, fmt.Errorf("recording the %s of %s on %s: %w", ev.Kind, ev.Tag, subject, err)
		}
		if where == "" {
			where = at.String()
		}
	}
	return where, nil
}

// ParseRollout reads hil's rollout predicate.
func ParseRollout(st *intoto.Statement) (*RolloutEvent, error) {
	if st.GetPredicateType() != RolloutPredicateType {
		return nil, fmt.Errorf("predicate type is %q, want %s", st.GetPredicateType(), RolloutPredicateType)
	}
	b, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, fmt.Errorf("reading the predicate: %w", err)
	}
	var ev RolloutEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("the predicate is not hil's rollout predicate: %w", err)
	}
	if ev.From == "" || ev.Kind == "" {
		return nil, errors.New("rollout predicate: no kind or no withdrawn digest (from)")
	}
	return &ev, nil
}

// attestedTag matches the tags hil's attestations live at: cosign's
// sha256-<hex>.att, and the referrers tag schema's sha256-<hex> for
// registries without the referrers API.
//
// Compiled on first use, not at package init, which every hil process pays for.
var attestedTag = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^sha256-([0-9a-f]{64})(\.att)?$`) })

// Attested lists the digests of repo that carry attestations, found by the
// tags they are stored at (Store writes cosign's .att tag for every one,
// whatever the registry's referrers support). Registries have no API that
// lists manifests by digest; a registry that prunes those tags hides the
// digests from this list.
func Attested(ctx context.Context, reg *promote.Registry, repo name.Repository) ([]name.Digest, error) {
	tags, err := remote.List(repo, reg.Remote(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("listing the tags of %s: %w", repo, registry.Explain(err))
	}
	seen := map[string]bool{}
	var out []name.Digest
	for _, t := range tags {
		m := attestedTag().FindStringSubmatch(t)
		if m == nil || seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		out = append(out, repo.Digest("sha256:"+m[1]))
	}
	return out, nil
}

// Accepts says what tr lacks to meet r ("" when it meets it); an error
// means r itself is not valid.
func (r Requirements) Accepts(tr *testresult.TestResult) (string, error) {
	r, err := r.normalize()
	if err != nil {
		return "", err
	}
	if tr == nil {
		return "no test result", nil
	}
	return meets(tr, r), nil
}
