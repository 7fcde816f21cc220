// Package rollout is what happens after the gate: a canary stage (the
// tested digest goes to a canary tag first, the canary boards must run it
// through a health window, only then does the fleet's tag move) and a
// rollback (a tag goes back to the last digest with a passing hil
// attestation). The fleet's updater (Watchtower on the boards hil gates
// for) has neither: it pulls whatever the tag names, with no health window
// and no way back.
//
// Both record what they did as attestations (harness/attest's rollout
// predicate) on the digests involved, so the next rollback never goes back
// to a digest that already failed in the field.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/registry"
)

// Candidate is one attested digest a rollback looked at.
type Candidate struct {
	Digest string `json:"digest"`
	// Passed is when its newest acceptable test result was stored ("" when
	// none was).
	Passed string `json:"passed,omitempty"`
	// Evidence is where that test result is stored.
	Evidence string `json:"evidence,omitempty"`
	// Problem says why it was not chosen ("" for the chosen one).
	Problem string `json:"problem,omitempty"`
}

// RollbackDecision is what Rollback decided and did.
type RollbackDecision struct {
	// Verdict is ROLLED BACK, REFUSED, WOULD ROLL BACK (a dry run that
	// found a digest) or ERROR (Error says why).
	Verdict string `json:"verdict"`
	Tag     string `json:"tag"`
	// From is the digest the tag pointed at; To the digest chosen ("" when
	// none was).
	From       string `json:"from"`
	To         string `json:"to,omitempty"`
	RolledBack bool   `json:"rolled_back"`
	DryRun     bool   `json:"dry_run,omitempty"`
	// Verified: the attestations were checked against a key. Without one
	// the choice rests on attestations anyone with push access could
	// have written.
	Verified bool   `json:"verified"`
	Reason   string `json:"reason"`
	// Considered lists every attested digest of the repository, newest
	// pass first, and why each was or was not chosen.
	Considered []Candidate `json:"considered,omitempty"`
	// Attestation is where the rollback's own record went.
	Attestation string `json:"attestation,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Settle sets Verdict (and Error) from the decision and the error Rollback
// returned with it; Rollback calls it.
func (d *RollbackDecision) Settle(err error) {
	switch {
	case err != nil:
		d.Verdict, d.Error = "ERROR", err.Error()
	case d.RolledBack:
		d.Verdict = "ROLLED BACK"
	case d.DryRun && d.To != "":
		d.Verdict = "WOULD ROLL BACK"
	default:
		d.Verdict = "REFUSED"
	}
}

// RollbackOption configures Rollback.
type RollbackOption func(*rollbackConfig)

type rollbackConfig struct {
	reg     *promote.Registry
	key     *attest.Verifier
	signer  *attest.Signer
	req     attest.Requirements
	expect  string
	reason  string
	boards  []attest.BoardProblems
	version string
	runURL  string
	dryRun  bool
	logf    func(string, ...any)
}

// WithRegistry sets registry access (default registry.New()).
func WithRegistry(r *promote.Registry) RollbackOption {
	return func(c *rollbackConfig) { c.reg = r }
}

// WithKey checks every attestation's signature with key: only verified
// test results vouch for a digest. Without it they are read unverified.
func WithKey(key *attest.Verifier) RollbackOption {
	return func(c *rollbackConfig) { c.key = key }
}

// WithSigner signs the rollback's own attestation (unsigned without it).
func WithSigner(s *attest.Signer) RollbackOption {
	return func(c *rollbackConfig) { c.signer = s }
}

// WithRequirements is what a test result must show to vouch for a digest
// (default: PASSED, any board).
func WithRequirements(r attest.Requirements) RollbackOption {
	return func(c *rollbackConfig) { c.req = r }
}

// WithExpect refuses unless the tag still points at digest (the one a
// health window saw fail): a tag someone moved meanwhile is theirs.
func WithExpect(digest string) RollbackOption {
	return func(c *rollbackConfig) { c.expect = digest }
}

// WithReason records why (and which boards showed what) in the rollback's
// attestation.
func WithReason(reason string, boards ...attest.BoardProblems) RollbackOption {
	return func(c *rollbackConfig) { c.reason, c.boards = reason, boards }
}

// WithVersion records the tool's version in the attestation.
func WithVersion(v string) RollbackOption {
	return func(c *rollbackConfig) { c.version = v }
}

// WithRunURL records the CI run in the attestation.
func WithRunURL(u string) RollbackOption {
	return func(c *rollbackConfig) { c.runURL = u }
}

// WithDryRun chooses but writes nothing.
func WithDryRun() RollbackOption {
	return func(c *rollbackConfig) { c.dryRun = true }
}

// WithLog sends progress lines to logf.
func WithLog(logf func(string, ...any)) RollbackOption {
	return func(c *rollbackConfig) { c.logf = logf }
}

// Rollback points tag (host/repo:tag) back at the last digest of its
// repository that has a passing hil test result and was never withdrawn.
//
// Where it looks: every digest of the repository that carries hil
// attestations, found by the tags they are stored at (attest.Attested).
// "Last" is the newest acceptable test result's stored time, among those
// stored before the current digest's own newest one (so a rollback never
// moves forward to a candidate that was gated later but not released). A
// digest that is the From of a rollout event (a rollback away from it, a
// failed canary window), signed or not, is never chosen: a withdrawal can
// only make the choice older, never riskier.
//
// Guards: the tag must still point where it did when the choice was made
// (and at WithExpect's digest), the chosen manifest must hash to its name,
// and the tag is read back after the write. The rollback is then recorded
// on both digests. A refusal (nothing to go back to, the tag moved) is a
// decision with RolledBack false and a nil error; nothing was written.
func Rollback(ctx context.Context, tag string, opts ...RollbackOption) (*RollbackDecision, error) {
	d, err := rollback(ctx, tag, opts...)
	if d != nil {
		d.Settle(err)
	}
	return d, err
}

func rollback(ctx context.Context, tag string, opts ...RollbackOption) (*RollbackDecision, error) {
	c := &rollbackConfig{logf: func(string, ...any) {}, version: "dev"}
	for _, o := range opts {
		o(c)
	}
	if c.reg == nil {
		c.reg = registry.New()
	}
	if _, err := c.req.Accepts(nil); err != nil {
		return nil, err
	}
	tagRef, err := c.reg.ParseTag(tag)
	if err != nil {
		return nil, err
	}
	d := &RollbackDecision{Tag: tagRef.String(), DryRun: c.dryRun, Verified: c.key != nil}
	cur, err := promote.Current(ctx, c.reg, tagRef)
	if err != nil {
		return nil, err
	}
	d.From = cur
	if cur == "" {
		d.Reason = fmt.Sprintf("refused: %s does not exist; there is nothing to roll back", tagRef)
		return d, nil
	}
	if c.expect != "" && cur != c.expect {
		d.Reason = fmt.Sprintf("refused: %s moved meanwhile: it points at %s, not at %s that was watched; nothing was written", tagRef, cur, c.expect)
		return d, nil
	}

	repo := tagRef.Context()
	digests, err := attest.Attested(ctx, c.reg, repo)
	if err != nil {
		return nil, err
	}
	c.logf("looking for the last passing digest among the %d attested digests of %s", len(digests), repo)
	// The current digest's own newest pass bounds the search: a rollback
	// goes back, never forward.
	var bound string
	var cands []Candidate
	for _, dg := range digests {
		cand, withdrawn, err := c.judge(ctx, dg)
		if err != nil {
			return nil, err
		}
		if dg.DigestStr() == cur {
			bound = cand.Passed
			continue
		}
		if withdrawn != "" {
			cand.Problem = withdrawn
		}
		cands = append(cands, cand)
	}
	for i := range cands {
		if cands[i].Problem == "" && bound != "" && !before(cands[i].Passed, bound) {
			cands[i].Problem = fmt.Sprintf("its passing test result (%s) is not older than the current digest's (%s): a rollback goes back, not forward", cands[i].Passed, bound)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if (cands[i].Problem == "") != (cands[j].Problem == "") {
			return cands[i].Problem == ""
		}
		if cands[i].Passed != cands[j].Passed {
			return before(cands[j].Passed, cands[i].Passed)
		}
		return cands[i].Digest < cands[j].Digest
	})
	d.Considered = cands
	if len(cands) == 0 || cands[0].Problem != "" {
		d.Reason = fmt.Sprintf("refused: no earlier digest of %s has a passing hil test result that is not withdrawn (%d other attested digests looked at); %s still points at %s, nothing was written",
			repo, len(cands), tagRef, cur)
		return d, nil
	}
	to := cands[0]
	d.To = to.Digest
	if c.dryRun {
		d.Reason = fmt.Sprintf("dry run: would move %s from %s back to %s (test result passed %s, %s)", tagRef, cur, to.Digest, to.Passed, to.Evidence)
		return d, nil
	}
	if _, err := promote.Move(ctx, c.reg, repo.Digest(to.Digest), tagRef, cur); err != nil {
		var moved *promote.MovedError
		if errors.As(err, &moved) {
			d.Reason = moved.Error()
			return d, nil
		}
		return d, fmt.Errorf("rolling %s back to %s: %w", tagRef, to.Digest, err)
	}
	d.RolledBack = true
	d.Reason = fmt.Sprintf("rolled back: %s points at %s again (its test result passed %s, %s)", tagRef, to.Digest, to.Passed, to.Evidence)
	if c.reason != "" {
		d.Reason += "; because " + c.reason
	}
	ev := attest.RolloutEvent{Kind: attest.EventRollback, Tag: tagRef.String(), From: cur, To: to.Digest,
		Reason: c.reason, Boards: c.boards, Evidence: to.Evidence, URL: c.runURL, Time: time.Now().UTC()}
	if ev.Reason == "" {
		ev.Reason = "rolled back by hand (hil rollback)"
	}
	ev.HIL.Version = c.version
	at, err := attest.RecordRollout(ctx, c.reg, repo, ev, c.signer)
	d.Attestation = at
	if err != nil {
		return d, fmt.Errorf("%s rolled back, but recording it failed: %w", tagRef, err)
	}
	return d, nil
}

// judge reads a digest's attestations: its newest acceptable test result,
// and whether a rollout event withdrew it.
func (c *rollbackConfig) judge(ctx context.Context, dg name.Digest) (Candidate, string, error) {
	cand := Candidate{Digest: dg.DigestStr()}
	_, entries, err := attest.Inspect(ctx, c.reg, dg.String(), c.key)
	if err != nil {
		if isNotFound(err) {
			cand.Problem = "deleted from the registry (only its attestations are left)"
			return cand, "", nil
		}
		return cand, "", fmt.Errorf("reading the attestations of %s: %w", dg, err)
	}
	var withdrawn string
	var why []string
	for _, e := range entries {
		if ev := rolloutOf(e); ev != nil && ev.From == cand.Digest {
			withdrawn = fmt.Sprintf("withdrawn: %s of %s at %s: %s", ev.Kind, ev.Tag, ev.Time.Format(time.RFC3339), ev.Reason)
			continue
		}
		if e.TestResult == nil {
			if e.Problem != "" && (e.PredicateType == attest.TestResultPredicateType || e.PredicateType == "") {
				why = append(why, e.Problem)
			}
			continue
		}
		if e.Problem != "" {
			why = append(why, e.Problem)
			continue
		}
		problem, _ := c.req.Accepts(e.TestResult)
		if problem != "" {
			why = append(why, problem)
			continue
		}
		if cand.Passed == "" || !before(e.Created, cand.Passed) {
			cand.Passed, cand.Evidence = e.Created, strings.Join(e.Where, ", ")
		}
	}
	if cand.Passed == "" {
		cand.Problem = "no acceptable test result"
		if len(why) > 0 {
			cand.Problem += ": " + why[len(why)-1]
		}
	}
	return cand, withdrawn, nil
}

// rolloutOf reads a rollout event, signed or not: a withdrawal is honoured
// even when its signature cannot be checked.
func rolloutOf(e attest.Entry) *attest.RolloutEvent {
	if e.Rollout != nil {
		return e.Rollout
	}
	if e.PredicateType != attest.RolloutPredicateType {
		return nil
	}
	st, err := attest.Open(e.Envelope, nil)
	if err != nil {
		return nil
	}
	ev, err := attest.ParseRollout(st)
	if err != nil {
		return nil
	}
	return ev
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// before compares two stored times (RFC 3339 with nanoseconds, which do
// not sort as strings: trailing zeros are dropped).
func before(a, b string) bool {
	ta, errA := time.Parse(time.RFC3339Nano, a)
	tb, errB := time.Parse(time.RFC3339Nano, b)
	if errA != nil || errB != nil {
		return a < b
	}
	return ta.Before(tb)
}
