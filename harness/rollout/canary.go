package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/harness/target/device"
)

// The verdicts of a canary rollout.
const (
	// Promoted: the gate passed, every canary board ran the digest through
	// the window, and the fleet's tag now points at it.
	Promoted = "promoted"
	// Refused: the gate refused (or the fleet's tag moved meanwhile);
	// nothing reached the canary boards, or the fleet's tag is untouched.
	Refused = "refused"
	// CanaryFailed: a canary board did not run the digest healthily
	// through the window; the fleet's tag is untouched.
	CanaryFailed = "canary-failed"
	// InfraError: a canary board could not be watched (it does not
	// answer, Docker fails there); the fleet's tag is untouched.
	InfraError = "infra-error"
	// DryRun: the gate would have promoted; nothing was written.
	DryRun = "dry-run"
	// Error: the gate could not decide (see its error); nothing moved.
	Error = "error"
)

// BoardResult is one canary board's window.
type BoardResult struct {
	Board  string              `json:"board"`
	Report *device.WatchReport `json:"report,omitempty"`
	// Error is why the board could not be watched (an infra-error).
	Error string `json:"error,omitempty"`
}

// CanaryDecision is what Canary decided and did.
type CanaryDecision struct {
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	// Gate is the gate's decision; its Tag is the canary tag.
	Gate      *promote.Decision `json:"gate,omitempty"`
	CanaryTag string            `json:"canary_tag"`
	Boards    []BoardResult     `json:"boards,omitempty"`
	// Tag is the fleet's tag; OldDigest and NewDigest what it pointed at
	// before and after (equal unless promoted).
	Tag       string `json:"tag"`
	OldDigest string `json:"old_digest"`
	NewDigest string `json:"new_digest"`
	// CanaryRevertedTo is where the canary tag went back to after a failed
	// window ("" when it was not moved back).
	CanaryRevertedTo string `json:"canary_reverted_to,omitempty"`
	// Attestation is where the failed window was recorded.
	Attestation string `json:"attestation,omitempty"`
}

// CanaryOption configures Canary.
type CanaryOption func(*canaryConfig)

type canaryConfig struct {
	canaryTag string
	boards    []device.Machine
	window    time.Duration
	rollout   time.Duration
	poll      time.Duration
	gateOpts  []promote.Option
	reg       *promote.Registry
	signer    *attest.Signer
	noRecord  bool
	version   string
	runURL    string
	logf      func(string, ...any)
}

// WithCanaryTag is the tag the canary boards' updater watches: a tag name
// in the candidate's repository (canary) or host/repo:tag.
func WithCanaryTag(tag string) CanaryOption { return func(c *canaryConfig) { c.canaryTag = tag } }

// WithBoards are the canary boards (from a devices.yaml inventory).
func WithBoards(b ...device.Machine) CanaryOption { return func(c *canaryConfig) { c.boards = b } }

// WithWindow is how long each canary board must run the digest healthily
// (default 2 minutes).
func WithWindow(d time.Duration) CanaryOption { return func(c *canaryConfig) { c.window = d } }

// WithRolloutTimeout is how long a canary board may take to pull the
// digest and restart the app (default 5 minutes: Watchtower's default
// poll interval is 24 h, a canary group's is set short).
func WithRolloutTimeout(d time.Duration) CanaryOption { return func(c *canaryConfig) { c.rollout = d } }

// WithPoll is how often each board is asked during the window (default 1 s).
func WithPoll(d time.Duration) CanaryOption { return func(c *canaryConfig) { c.poll = d } }

// WithGateOptions are the gate's options (registry, platforms, attester,
// dry run, ...). Its registry is used for every write of the rollout.
func WithGateOptions(o ...promote.Option) CanaryOption {
	return func(c *canaryConfig) { c.gateOpts = append(c.gateOpts, o...) }
}

// WithCanaryRegistry sets registry access; give the gate the same one
// (WithGateOptions(promote.WithRegistry(r))).
func WithCanaryRegistry(r *promote.Registry) CanaryOption {
	return func(c *canaryConfig) { c.reg = r }
}

// WithCanarySigner signs the record of a failed window.
func WithCanarySigner(s *attest.Signer) CanaryOption { return func(c *canaryConfig) { c.signer = s } }

// WithoutRecord does not record a failed window on the digest (for
// registries that refuse OCI artifacts: the gate's --no-attest).
func WithoutRecord() CanaryOption { return func(c *canaryConfig) { c.noRecord = true } }

// WithCanaryVersion and WithCanaryRunURL are recorded with a failed window.
func WithCanaryVersion(v string) CanaryOption { return func(c *canaryConfig) { c.version = v } }

// WithCanaryRunURL records the CI run with a failed window.
func WithCanaryRunURL(u string) CanaryOption { return func(c *canaryConfig) { c.runURL = u } }

// WithCanaryLog sends progress lines to logf.
func WithCanaryLog(logf func(string, ...any)) CanaryOption {
	return func(c *canaryConfig) { c.logf = logf }
}

// Canary gates ref and promotes the tested digest in two steps: first to
// the canary tag, which the canary boards' updater pulls; then, once
// every canary board ran exactly that digest through the health window
// (the same container, never restarted or exited, never unhealthy,
// healthy at the end when it has a healthcheck), to tag, which the fleet
// pulls.
//
//   - The boards are checked before anything else: one that does not
//     answer is an infra-error and nothing is tested or written.
//   - A refusal of the gate stops there (neither tag moves).
//   - A failed window stops there: tag is untouched, the canary tag goes
//     back to what it pointed at before (when nothing moved it
//     meanwhile), and the failure is recorded on the digest, so no
//     rollback ever goes back to it. The decision names each board and
//     what it showed.
//   - A board that stops answering during the window is an infra-error:
//     tag is untouched, the canary tag is left as it is.
//   - tag moves only if it still points where it did before the gate
//     ran; it is read back and verified.
//
// The error is non-nil when the rollout could not decide or could not
// complete a write (infra-errors included); the decision says how far it
// got.
func Canary(ctx context.Context, ref, tag string, test promote.TestFunc, opts ...CanaryOption) (*CanaryDecision, error) {
	c := &canaryConfig{window: 2 * time.Minute, rollout: 5 * time.Minute, version: "dev", logf: func(string, ...any) {}}
	for _, o := range opts {
		o(c)
	}
	if c.reg == nil {
		c.reg = registry.New()
	}
	if c.canaryTag == "" {
		return nil, errors.New("canary: no canary tag")
	}
	if len(c.boards) == 0 {
		return nil, errors.New("canary: no canary board: a canary tag nobody watches proves nothing")
	}
	if c.window <= 0 {
		return nil, fmt.Errorf("canary: health window %s: want a positive duration", c.window)
	}
	candidate, err := c.reg.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	fleetTag, err := promote.ResolveTag(c.reg, candidate, tag)
	if err != nil {
		return nil, err
	}
	canaryTag, err := promote.ResolveTag(c.reg, candidate, c.canaryTag)
	if err != nil {
		return nil, err
	}
	if canaryTag == fleetTag {
		return nil, fmt.Errorf("canary: the canary tag and the fleet's tag are both %s: a canary needs a tag of its own", fleetTag)
	}
	d := &CanaryDecision{CanaryTag: canaryTag.String(), Tag: fleetTag.String()}

	// Every canary board must answer before anything moves.
	if _, bad := c.eachBoard(ctx, func(ctx context.Context, b device.Machine) BoardResult {
		if err := device.Reachable(ctx, b); err != nil {
			return BoardResult{Board: b.Name, Error: err.Error()}
		}
		return BoardResult{Board: b.Name}
	}); len(bad) > 0 {
		d.Boards = bad
		d.Verdict = InfraError
		d.Reason = "infra-error: canary " + failedBoards(bad) + "; nothing was tested or written"
		return d, errors.New(d.Reason)
	}
	if d.OldDigest, err = promote.Current(ctx, c.reg, fleetTag); err != nil {
		return nil, err
	}
	d.NewDigest = d.OldDigest

	g, err := promote.Gate(ctx, ref, canaryTag.String(), test, c.gateOpts...)
	d.Gate = g
	if err != nil {
		d.Verdict = Error
		d.Reason = fmt.Sprintf("the gate could not promote to the canary tag %s: %v; %s untouched", canaryTag, err, fleetTag)
		return d, err
	}
	switch {
	case g.DryRun && g.Passed:
		d.Verdict = DryRun
		d.Reason = fmt.Sprintf("dry run: every required platform passed; would move %s to %s, watch %d canary boards for %s, then move %s", canaryTag, digestOf(g.Tested), len(c.boards), c.window, fleetTag)
		return d, nil
	case !g.Promoted:
		d.Verdict = Refused
		d.Reason = g.Reason
		return d, nil
	}
	tested := digestOf(g.Tested)
	c.logf("promoted %s to the canary tag %s; watching %d canary boards (roll-out up to %s, then a %s window)", tested, canaryTag, len(c.boards), c.rollout, c.window)

	all, results := c.eachBoard(ctx, func(ctx context.Context, b device.Machine) BoardResult {
		rep, err := device.WatchDigest(ctx, b, device.Expect{Ref: canaryTag.String(), Digest: tested, Rollout: c.rollout, Window: c.window, Poll: c.poll})
		r := BoardResult{Board: b.Name, Report: rep}
		if err != nil {
			r.Error = err.Error()
		}
		return r
	})
	d.Boards = all
	if ctx.Err() != nil {
		d.Verdict = InfraError
		d.Reason = fmt.Sprintf("interrupted during the canary window (%v); %s untouched, %s left at %s", ctx.Err(), fleetTag, canaryTag, tested)
		return d, errors.New(d.Reason)
	}
	var infra, failed []BoardResult
	for _, r := range results {
		if r.Error != "" {
			infra = append(infra, r)
		} else {
			failed = append(failed, r)
		}
	}
	if len(infra) > 0 {
		d.Verdict = InfraError
		d.Reason = fmt.Sprintf("infra-error: canary %s; %s untouched, %s left at %s (unknown whether the digest is healthy)", failedBoards(infra), fleetTag, canaryTag, tested)
		return d, errors.New(d.Reason)
	}
	if len(failed) > 0 {
		d.Verdict = CanaryFailed
		d.Reason = fmt.Sprintf("canary failed: %s; %s untouched at %s", failedBoards(failed), fleetTag, orNone(d.OldDigest))
		ev := attest.RolloutEvent{Kind: attest.EventCanaryFailed, Tag: canaryTag.String(), From: tested, Reason: d.Reason, URL: c.runURL, Time: time.Now().UTC()}
		ev.HIL.Version = c.version
		for _, r := range failed {
			ev.Boards = append(ev.Boards, attest.BoardProblems{Board: r.Board, Problems: r.Report.Problems})
		}
		// The canary boards go back to what they ran, when the canary
		// tag pointed somewhere before and nobody moved it since.
		if old := g.OldDigest; old != "" && old != tested {
			if _, err := promote.Move(ctx, c.reg, canaryTag.Context().Digest(old), canaryTag, tested); err != nil {
				d.Reason += fmt.Sprintf("; %s could not be moved back to %s: %v", canaryTag, old, err)
			} else {
				d.CanaryRevertedTo, ev.To = old, old
				d.Reason += fmt.Sprintf("; %s moved back to %s", canaryTag, old)
			}
		}
		if c.noRecord {
			return d, nil
		}
		at, err := attest.RecordRollout(ctx, c.reg, canaryTag.Context(), ev, c.signer)
		d.Attestation = at
		if err != nil {
			return d, fmt.Errorf("%s; recording it failed: %w", d.Reason, err)
		}
		return d, nil
	}

	after, err := promote.Move(ctx, c.reg, canaryTag.Context().Digest(tested), fleetTag, d.OldDigest)
	if err != nil {
		var moved *promote.MovedError
		if errors.As(err, &moved) {
			d.Verdict = Refused
			d.Reason = moved.Error()
			return d, nil
		}
		d.NewDigest = after
		d.Verdict = InfraError
		d.Reason = fmt.Sprintf("the canary passed, but moving %s failed: %v", fleetTag, err)
		return d, err
	}
	d.NewDigest = after
	d.Verdict = Promoted
	d.Reason = fmt.Sprintf("promoted: every required platform passed, %d canary boards ran %s healthily for %s; %s now points at it", len(c.boards), tested, c.window, fleetTag)
	return d, nil
}

// eachBoard runs f on every board at once and returns every result, in
// the boards' order, and those that are not clean (an error or problems).
func (c *canaryConfig) eachBoard(ctx context.Context, f func(context.Context, device.Machine) BoardResult) (all, bad []BoardResult) {
	out := make([]BoardResult, len(c.boards))
	var wg sync.WaitGroup
	for i, b := range c.boards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = f(ctx, b)
		}()
	}
	wg.Wait()
	for _, r := range out {
		if r.Error != "" || (r.Report != nil && !r.Report.OK()) {
			bad = append(bad, r)
		}
	}
	return out, bad
}

// failedBoards says which boards failed and how.
func failedBoards(rs []BoardResult) string {
	var parts []string
	for _, r := range rs {
		switch {
		case r.Error != "":
			parts = append(parts, fmt.Sprintf("board %s could not be watched: %s", r.Board, r.Error))
		case r.Report != nil:
			parts = append(parts, fmt.Sprintf("board %s: %s", r.Board, strings.Join(r.Report.Problems, "; ")))
		}
	}
	return strings.Join(parts, "; ")
}

// digestOf is the sha256:... of repo@sha256:...
func digestOf(ref string) string {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return d
	}
	return ref
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
