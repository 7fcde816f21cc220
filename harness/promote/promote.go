// Package promote is hil's gate: it pins a candidate image by digest, has it
// tested, and moves a tag (the one the fleet pulls) to exactly that digest,
// only when every required platform passed and nobody pushed a new candidate
// meanwhile. An Attester (harness/attest) records the test result about the
// digest, so anyone can later ask "what tested this digest?".
//
// The gate does not know how testing is done: it calls a TestFunc with the
// pinned digest and judges the verdicts it returns. hil's CLI plugs in the
// scenario runner; a Go test suite can plug in anything.
package promote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/registry"
)

// Verdict is the outcome of one scenario on one target for one platform.
type Verdict string

const (
	Pass        Verdict = "pass"
	Fail        Verdict = "fail"
	Unsupported Verdict = "unsupported"
	InfraError  Verdict = "infra-error"
)

// Pinned is the candidate as the gate pinned it: everything the test must
// use instead of the reference the user typed.
type Pinned struct {
	// Ref is the reference as given (for reports only: never resolve it
	// again).
	Ref string
	// Digest is repo@sha256:..., what the test must open.
	Digest name.Digest
	// Descriptor is the digest's media type and size.
	Descriptor v1.Descriptor
	// Platforms are the platforms the artifact holds.
	Platforms []v1.Platform
	// Required are the platforms that must be tested and pass: with
	// boards, the manifests the boards pull.
	Required []v1.Platform
	// Boards are the boards that must pass (WithBoards), each with the
	// manifest its engine pulls from the candidate.
	Boards []BoardPull
	// Registry reaches the registry with the gate's credentials and retries.
	Registry *Registry
}

// BoardPull is a required board and what its engine pulls from the
// candidate.
type BoardPull struct {
	Board board.Board
	// Platform is the manifest it pulls; Note says how it was chosen when
	// that is worth knowing (a single manifest pulled whatever it is).
	Platform v1.Platform
	Note     string
}

// Outcome is one verdict.
type Outcome struct {
	Platform string `json:"platform"`
	Target   string `json:"target"`
	// Board is the board profile the case ran as ("pi3b+", "pi4/32"; for
	// a case without one, "virt" for the system target's generic machine
	// and "" for targets that model none).
	Board    string  `json:"board,omitempty"`
	Scenario string  `json:"scenario"`
	Verdict  Verdict `json:"verdict"`
	// Reason says why it did not pass (what was expected, what was found).
	Reason string `json:"reason,omitempty"`
	// Optional marks an outcome whose "unsupported" does not refuse (for
	// example packet capture under qemu-user). Fail and infra-error refuse
	// regardless.
	Optional bool `json:"optional,omitempty"`
	Attempts int  `json:"attempts,omitempty"`
}

func (o Outcome) String() string {
	s := fmt.Sprintf("%s [%s]: %s", o.Scenario, o.Where(), o.Verdict)
	if o.Reason != "" {
		s += ": " + o.Reason
	}
	return s
}

// Result is what a TestFunc found.
type Result struct {
	Outcomes []Outcome `json:"outcomes"`
	// Targets are the targets that ran (system, user, container, device).
	Targets []string `json:"targets,omitempty"`
	// Fixtures maps each replayed fixture to its sha256.
	Fixtures map[string]string `json:"fixtures,omitempty"`
	// Configuration is every input the test ran with, by digest (scenario
	// files, fixtures, kernel, init, emulator, board profiles).
	Configuration []Resource `json:"configuration,omitempty"`
	// StaticChecks are the static startup checks the cases ran, each
	// once with its problems (the outcomes' reasons name them).
	StaticChecks []StaticCheck `json:"static_checks,omitempty"`
	// ReportDir is where the runner wrote its JUnit/JSON/HTML reports.
	ReportDir string `json:"report_dir,omitempty"`
	// Report is the runner's JSON report, embedded in the attestation.
	Report   json.RawMessage `json:"report,omitempty"`
	Started  time.Time       `json:"started"`
	Finished time.Time       `json:"finished"`
}

// StaticCheck is one static startup check of the tested image: a
// platform's manifest and whether its program can start, with every
// problem once.
type StaticCheck struct {
	ID             string   `json:"id"`
	Platform       string   `json:"platform"`
	ManifestDigest string   `json:"manifest_digest,omitempty"`
	OK             bool     `json:"ok"`
	Problems       []string `json:"problems,omitempty"`
}

// TestFunc tests the pinned candidate. It must open pinned.Digest, never
// pinned.Ref. An error means nothing could be judged (the gate retries it);
// a test that ran and failed is a Result with a failing Outcome.
type TestFunc func(ctx context.Context, pinned Pinned) (Result, error)

// The gate's verdicts, as Decision.Verdict spells them.
const (
	Promoted     = "PROMOTED"
	Refused      = "REFUSED"
	Error        = "ERROR"
	WouldPromote = "WOULD PROMOTE"
)

// DecisionSchema is the $id of decision.json's JSON Schema
// (schemas/decision.schema.json).
const DecisionSchema = "https://hil.dev/schemas/decision/v1"

// Decision is what the gate decided and why. Its JSON is decision.json
// (schemas/decision.schema.json).
type Decision struct {
	// Schema is DecisionSchema (set by Settle).
	Schema string `json:"schema"`
	// Verdict is PROMOTED, REFUSED, WOULD PROMOTE (a dry run that passed)
	// or ERROR (the gate could not decide or complete the write: Error
	// says why).
	Verdict  string `json:"verdict"`
	Promoted bool   `json:"promoted"`
	// Passed is set when every required platform passed (with DryRun: the
	// gate would have promoted).
	Passed bool `json:"passed"`
	// DryRun is set when the gate would have written but did not.
	DryRun bool   `json:"dry_run,omitempty"`
	Reason string `json:"reason"`
	Error  string `json:"error,omitempty"`
	// Failures are the outcomes that refused promotion.
	Failures  []Outcome `json:"failures,omitempty"`
	Candidate string    `json:"candidate"`
	Tested    string    `json:"tested,omitempty"` // repo@sha256:...
	Platforms []string  `json:"platforms,omitempty"`
	// Boards says, with WithBoards, what each board pulls ("pi0w pulls
	// linux/arm/v5"), or that it pulls nothing.
	Boards []string `json:"boards,omitempty"`
	Tag    string   `json:"tag"`
	// OldDigest is the tag's digest before the gate ran ("" when the tag did
	// not exist); NewDigest after (equal to OldDigest when refused).
	OldDigest   string `json:"old_digest"`
	NewDigest   string `json:"new_digest"`
	Attestation string `json:"attestation,omitempty"` // where the Attester stored the result
	Attempts    int    `json:"attempts,omitempty"`
	// Version is the tester's version (WithVersion), for the attestation.
	Version string `json:"version,omitempty"`
	Result  Result `json:"result"`
}

// Settle sets Verdict from the decision and err, the error Gate returned
// with it (nil for a decision that stands); Gate calls it before it
// returns a decision.
func (d *Decision) Settle(err error) {
	d.Schema = DecisionSchema
	if d.Result.Outcomes == nil {
		d.Result.Outcomes = []Outcome{}
	}
	switch {
	case err != nil:
		d.Verdict, d.Error = Error, err.Error()
	case d.Promoted:
		d.Verdict = Promoted
	case d.DryRun && d.Passed:
		d.Verdict = WouldPromote
	default:
		d.Verdict = Refused
	}
}

// Option configures Gate.
type Option func(*gate)

// Where is "target board platform" (no board when there is none).
func (o Outcome) Where() string {
	if o.Board != "" {
		return o.Target + " " + o.Board + " " + o.Platform
	}
	return o.Target + " " + o.Platform
}

type gate struct {
	platforms []v1.Platform
	boards    []board.Board
	registry  *Registry
	retries   int
	dryRun    bool
	attester  Attester
	version   string
	logf      func(format string, args ...any)
	// beforeWrite runs just before the tag is written; tests use it to make
	// the registry fail at that exact moment.
	beforeWrite func()
}

// WithPlatforms sets the platforms that must be present and pass
// ("linux/arm/v7" by default).
func WithPlatforms(platforms ...v1.Platform) Option {
	return func(g *gate) { g.platforms = platforms }
}

// WithBoards makes boards the gate's requirement: each board's engine
// must find a manifest in the candidate (containerd's matcher; a single
// manifest is pulled whatever it is), those manifests are the platforms
// tested (WithPlatforms is then not used), and every board must pass: at
// least one passing case on it and none that did not pass.
func WithBoards(bs ...board.Board) Option {
	return func(g *gate) { g.boards = bs }
}

// WithRegistry sets registry access (credentials, plain HTTP for loopback,
// transport, retries); the default is registry.New().
func WithRegistry(r *Registry) Option {
	return func(g *gate) { g.registry = r }
}

// WithRetries sets how many more times the test runs while its only
// problems are infrastructure errors.
func WithRetries(n int) Option {
	return func(g *gate) { g.retries = n }
}

// WithDryRun does everything but write (no tag, no attestation).
func WithDryRun() Option {
	return func(g *gate) { g.dryRun = true }
}

// WithAttester records the result about the tested digest (see
// harness/attest). Without one the gate attests nothing.
func WithAttester(a Attester) Option {
	return func(g *gate) { g.attester = a }
}

// WithoutAttestation drops an Attester set before it.
func WithoutAttestation() Option {
	return func(g *gate) { g.attester = nil }
}

// WithVersion records the tester's version in the decision (and so in the
// attestation).
func WithVersion(v string) Option {
	return func(g *gate) { g.version = v }
}

// WithLog sends progress lines to logf.
func WithLog(logf func(format string, args ...any)) Option {
	return func(g *gate) { g.logf = logf }
}

// DefaultPlatform is what the fleet runs: a Raspberry Pi with 32-bit
// hard-float userland.
var DefaultPlatform = v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}

// ParsePlatforms parses "linux/arm/v7,linux/arm64".
func ParsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := v1.ParsePlatform(f)
		if err != nil {
			return nil, fmt.Errorf("parsing platform %q (want os/arch[/variant]): %w", f, err)
		}
		if p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("parsing platform %q: want os/arch[/variant]", f)
		}
		out = append(out, *p)
	}
	if len(out) == 0 {
		return nil, errors.New("no platform given (want e.g. linux/arm/v7)")
	}
	return out, nil
}

// ResolveTag turns TAG into a tag reference: a bare tag name ("latest")
// lives in the candidate's repository; anything else is a full reference.
func ResolveTag(r *Registry, candidate name.Reference, tag string) (name.Tag, error) {
	if tag == "" {
		return name.Tag{}, errors.New("no tag to promote to")
	}
	if !strings.ContainsAny(tag, "/:@") {
		return candidate.Context().Tag(tag), nil
	}
	return r.ParseTag(tag)
}

// Gate pins ref, tests it with test and, when everything passed, points tag
// at the tested digest. A refusal is a Decision with Promoted false and a nil
// error; an error means the gate could not decide or could not complete the
// write (the tag is then unchanged, or verified otherwise and reported).
func Gate(ctx context.Context, ref, tag string, test TestFunc, opts ...Option) (*Decision, error) {
	d, err := gateOnce(ctx, ref, tag, test, opts...)
	if d != nil {
		d.Settle(err)
	}
	return d, err
}

func gateOnce(ctx context.Context, ref, tag string, test TestFunc, opts ...Option) (*Decision, error) {
	g := newGate(opts)
	if test == nil {
		return nil, errors.New("gate: no test function")
	}
	c, d, err := g.prepare(ctx, ref, tag)
	if err != nil || d.Reason != "" {
		return d, err
	}
	if err := g.test(ctx, test, c, d); err != nil {
		return nil, err
	}
	if g.dryRun {
		if d.Passed {
			d.Reason = fmt.Sprintf("dry run: every required platform passed; would move %s from %s to %s", c.tag, orNone(d.OldDigest), c.desc.Digest)
			if len(c.pin.Boards) > 0 {
				d.Reason = fmt.Sprintf("dry run: every board (%s) passed; would move %s from %s to %s", boardList(c.pin.Boards), c.tag, orNone(d.OldDigest), c.desc.Digest)
			}
		}
		return d, nil
	}
	if err := g.attest(ctx, c, d); err != nil || !d.Passed {
		return d, err
	}
	return d, g.promote(ctx, c, d)
}

func newGate(opts []Option) *gate {
	g := &gate{
		platforms: []v1.Platform{DefaultPlatform},
		version:   "dev",
		logf:      func(string, ...any) {},
	}
	for _, o := range opts {
		o(g)
	}
	if g.registry == nil {
		g.registry = registry.New()
	}
	return g
}

// gateCase is what one gate run settles before testing: the candidate as
// given, the tag to move, and the pin every later step uses instead of the
// candidate's tag.
type gateCase struct {
	ref       string
	candidate name.Reference
	tag       name.Tag
	pin       Pinned
	desc      *remote.Descriptor
}

// prepare pins the candidate and reads the tag's current digest. A
// Decision with a Reason is a refusal before any test: a board that
// cannot run the image, or a required platform missing.
func (g *gate) prepare(ctx context.Context, ref, tag string) (gateCase, *Decision, error) {
	reg := g.registry
	candidate, err := reg.ParseReference(ref)
	if err != nil {
		return gateCase{}, nil, err
	}
	tagRef, err := ResolveTag(reg, candidate, tag)
	if err != nil {
		return gateCase{}, nil, err
	}
	d := &Decision{Candidate: ref, Tag: tagRef.String(), DryRun: g.dryRun, Version: g.version}

	// Pin once: from here on only the digest is used.
	pin, desc, err := g.pin(ctx, candidate, ref)
	if err != nil {
		return gateCase{}, nil, err
	}
	c := gateCase{ref: ref, candidate: candidate, tag: tagRef, pin: pin, desc: desc}
	d.Tested = pin.Digest.String()
	for _, p := range pin.Platforms {
		d.Platforms = append(d.Platforms, p.String())
	}
	old, err := currentDigest(ctx, reg, tagRef)
	if err != nil {
		return gateCase{}, nil, fmt.Errorf("reading the current %s: %w", tagRef, err)
	}
	d.OldDigest, d.NewDigest = old, old
	for _, bp := range pin.Boards {
		if bp.Platform.Architecture == "" {
			d.Boards = append(d.Boards, bp.Board.String()+" pulls nothing")
			continue
		}
		d.Boards = append(d.Boards, bp.Board.String()+" pulls "+bp.Platform.String())
	}
	if refused := g.refusedBoards(pin); len(refused) > 0 {
		d.Failures = refused
		d.Reason = "refused: " + summarize(refused)
		return c, d, nil
	}
	if missing := missingPlatforms(pin.Platforms, g.platforms); len(missing) > 0 && len(g.boards) == 0 {
		d.Reason = fmt.Sprintf("refused: %s lacks required platform %s; it has %s",
			pin.Digest, strings.Join(missing, ", "), listOrNone(d.Platforms))
		return c, d, nil
	}
	return c, d, nil
}

// test runs the test function on the pin, again (up to the retries) while
// it could not run or hit only infrastructure errors: a failure is never
// retried. It books the result and the verdict in d.
func (g *gate) test(ctx context.Context, test TestFunc, c gateCase, d *Decision) error {
	pinned := c.pin.Digest
	var res Result
	var failures []Outcome
	for attempt := 1; ; attempt++ {
		d.Attempts = attempt
		var err error
		res, err = test(ctx, c.pin)
		if ctx.Err() != nil {
			return fmt.Errorf("testing %s: %w", pinned, ctx.Err())
		}
		if err == nil {
			failures = judge(res, c.pin.Required, c.pin.Boards)
			if !onlyInfra(failures) {
				break
			}
		}
		if attempt > g.retries {
			if err != nil {
				return fmt.Errorf("testing %s (attempt %d of %d): %w", pinned, attempt, g.retries+1, err)
			}
			break
		}
		if err != nil {
			g.logf("test attempt %d of %d could not run: %v; retrying", attempt, g.retries+1, err)
		} else {
			g.logf("test attempt %d of %d hit infrastructure errors only (%s); retrying", attempt, g.retries+1, failures[0])
		}
	}
	d.Result = res
	d.Failures = failures
	d.Passed = len(failures) == 0
	if !d.Passed {
		d.Reason = "refused: " + summarize(failures)
	}
	return nil
}

// attest attaches the decision to the tested digest. Without an
// attestation a pass is not promoted; a refusal still is a refusal.
func (g *gate) attest(ctx context.Context, c gateCase, d *Decision) error {
	if g.attester == nil {
		return nil
	}
	att, err := g.attester.Attest(ctx, c.pin, d)
	if err != nil {
		if d.Passed {
			return fmt.Errorf("attaching the test result to %s (the tag was not touched): %w", c.pin.Digest, err)
		}
		g.logf("warning: could not attach the refusal to %s: %v", c.pin.Digest, err)
		return nil
	}
	d.Attestation = att
	return nil
}

// promote moves the tag to the tested digest, unless the candidate moved
// while it was tested, and reads it back.
func (g *gate) promote(ctx context.Context, c gateCase, d *Decision) error {
	reg := g.registry
	// Someone may have pushed a new candidate while this one was tested:
	// the tag they meant to gate is no longer what passed.
	now, err := remote.Head(c.candidate, reg.Remote(ctx)...)
	if err != nil {
		return fmt.Errorf("re-resolving %s before writing %s (the tag was not touched): %w", c.ref, c.tag, err)
	}
	if now.Digest != c.desc.Digest {
		d.Reason = fmt.Sprintf("refused: %s moved from %s to %s while it was tested; gate the new candidate", c.ref, c.desc.Digest, now.Digest)
		return nil
	}
	old, err := currentDigest(ctx, reg, c.tag)
	if err != nil {
		return fmt.Errorf("reading the current %s before writing it (the tag was not touched): %w", c.tag, err)
	}
	d.OldDigest, d.NewDigest = old, old

	if g.beforeWrite != nil {
		g.beforeWrite()
	}
	after, err := writeAndVerify(ctx, reg, c.desc, c.candidate.Context(), c.tag, old)
	d.NewDigest = after
	if err != nil {
		return err
	}
	d.Promoted = true
	d.Reason = fmt.Sprintf("promoted: every required platform (%s) passed; %s now points at the tested digest", platformList(c.pin.Required), c.tag)
	if len(c.pin.Boards) > 0 {
		d.Reason = fmt.Sprintf("promoted: every board (%s) passed; %s now points at the tested digest", boardList(c.pin.Boards), c.tag)
	}
	return nil
}

// Pin resolves ref to a digest once, as Gate does, and checks that every
// required platform (WithPlatforms) is in it; only WithRegistry and
// WithPlatforms matter. A shard of a sharded gate pins this way, tests its
// part, and leaves the decision to a gate over the merged results.
func Pin(ctx context.Context, ref string, opts ...Option) (Pinned, error) {
	g := &gate{platforms: []v1.Platform{DefaultPlatform}, logf: func(string, ...any) {}}
	for _, o := range opts {
		o(g)
	}
	if g.registry == nil {
		g.registry = registry.New()
	}
	candidate, err := g.registry.ParseReference(ref)
	if err != nil {
		return Pinned{}, err
	}
	pin, _, err := g.pin(ctx, candidate, ref)
	if err != nil {
		return Pinned{}, err
	}
	if refused := g.refusedBoards(pin); len(refused) > 0 {
		return Pinned{}, errors.New(refused[0].Reason)
	}
	if missing := missingPlatforms(pin.Platforms, g.platforms); len(missing) > 0 && len(g.boards) == 0 {
		var has []string
		for _, p := range pin.Platforms {
			has = append(has, p.String())
		}
		return Pinned{}, fmt.Errorf("%s lacks required platform %s; it has %s", pin.Digest, strings.Join(missing, ", "), listOrNone(has))
	}
	return pin, nil
}

// pin resolves candidate to its digest and reads its platforms.
func (g *gate) pin(ctx context.Context, candidate name.Reference, ref string) (Pinned, *remote.Descriptor, error) {
	reg := g.registry
	desc, err := remote.Get(candidate, reg.Remote(ctx)...)
	if err != nil {
		return Pinned{}, nil, fmt.Errorf("resolving candidate %s: %w", ref, registry.Explain(err))
	}
	if err := checkDigest(desc); err != nil {
		return Pinned{}, nil, fmt.Errorf("resolving candidate %s: %w", ref, err)
	}
	pinned := candidate.Context().Digest(desc.Digest.String())
	g.logf("pinned %s to %s", ref, pinned)
	present, err := platformsOf(desc)
	if err != nil {
		return Pinned{}, nil, fmt.Errorf("reading the platforms of %s: %w", pinned, err)
	}
	pin := Pinned{
		Ref:        ref,
		Digest:     pinned,
		Descriptor: desc.Descriptor,
		Platforms:  present,
		Required:   g.platforms,
		Registry:   reg,
	}
	if len(g.boards) > 0 {
		// What each board pulls is what is tested: the platforms follow.
		pin.Required = nil
		single := !desc.MediaType.IsIndex()
		for _, b := range g.boards {
			pulled, err := b.Pull(present, single)
			if err != nil {
				pin.Boards = append(pin.Boards, BoardPull{Board: b, Note: err.Error()})
				continue
			}
			pin.Boards = append(pin.Boards, BoardPull{Board: b, Platform: pulled.Platform, Note: pulled.Note})
			if !hasPlatform(pin.Required, pulled.Platform) {
				pin.Required = append(pin.Required, pulled.Platform)
			}
		}
	}
	return pin, desc, nil
}

// refusedBoards are the required boards whose engine finds nothing to pull
// in the candidate, each as a failing outcome naming the board.
func (g *gate) refusedBoards(pin Pinned) []Outcome {
	var out []Outcome
	for _, bp := range pin.Boards {
		if bp.Platform.Architecture == "" {
			out = append(out, Outcome{Scenario: "(pull)", Target: "engine", Board: bp.Board.String(), Platform: bp.Board.Platform(),
				Verdict: Fail, Reason: fmt.Sprintf("board %s pulls nothing from %s: %s", bp.Board, pin.Digest, bp.Note)})
		}
	}
	return out
}

func missingPlatforms(present, required []v1.Platform) []string {
	var missing []string
	for _, want := range required {
		if !hasPlatform(present, want) {
			missing = append(missing, want.String())
		}
	}
	return missing
}

// judge returns the outcomes that refuse promotion, plus a synthetic one per
// required platform, and per required board, that no passing scenario
// covered.
func judge(res Result, required []v1.Platform, boards []BoardPull) []Outcome {
	var bad []Outcome
	var passedOn []v1.Platform
	for _, o := range res.Outcomes {
		switch o.Verdict {
		case Pass:
			if p, err := v1.ParsePlatform(o.Platform); err == nil {
				passedOn = append(passedOn, *p)
			}
		case Unsupported:
			if !o.Optional {
				bad = append(bad, o)
			}
		case Fail, InfraError:
			bad = append(bad, o)
		default:
			o.Reason = fmt.Sprintf("unknown verdict %q (want pass, fail, unsupported or infra-error)", o.Verdict)
			o.Verdict = Fail
			bad = append(bad, o)
		}
	}
	if len(boards) > 0 {
		passedBoard := map[string]bool{}
		failedBoard := map[string]bool{}
		for _, o := range res.Outcomes {
			if o.Verdict == Pass {
				passedBoard[o.Board] = true
			}
		}
		for _, o := range bad {
			failedBoard[o.Board] = true
		}
		for _, bp := range boards {
			name := bp.Board.String()
			if passedBoard[name] || failedBoard[name] {
				continue
			}
			bad = append(bad, Outcome{Board: name, Platform: bp.Platform.String(), Verdict: Fail, Scenario: "(none)",
				Reason: fmt.Sprintf("no scenario passed on board %s: nothing was tested there", name)})
		}
		return bad
	}
	for _, p := range required {
		if hasPlatform(passedOn, p) || hasFailureOn(bad, p) {
			continue
		}
		bad = append(bad, Outcome{Platform: p.String(), Verdict: Fail, Scenario: "(none)",
			Reason: "no scenario passed on this platform: nothing was tested there"})
	}
	return bad
}

func hasFailureOn(bad []Outcome, want v1.Platform) bool {
	for _, o := range bad {
		if p, err := v1.ParsePlatform(o.Platform); err == nil && hasPlatform([]v1.Platform{*p}, want) {
			return true
		}
	}
	return false
}

func onlyInfra(bad []Outcome) bool {
	if len(bad) == 0 {
		return false
	}
	for _, o := range bad {
		if o.Verdict != InfraError {
			return false
		}
	}
	return true
}

func summarize(bad []Outcome) string {
	if len(bad) == 1 {
		return bad[0].String()
	}
	const max = 5
	var parts []string
	for i, o := range bad {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(bad)-max))
			break
		}
		parts = append(parts, fmt.Sprintf("%s [%s] %s", o.Scenario, o.Where(), o.Verdict))
	}
	return fmt.Sprintf("%d cases did not pass: %s; the first: %s", len(bad), strings.Join(parts, ", "), bad[0].Reason)
}

// checkDigest makes sure the bytes the registry sent hash to the digest it
// claimed: the tag write pushes these bytes as they are.
func checkDigest(desc *remote.Descriptor) error {
	h, _, err := v1.SHA256(bytes.NewReader(desc.Manifest))
	if err != nil {
		return err
	}
	if h != desc.Digest {
		return fmt.Errorf("registry sent a manifest hashing to %s but claimed %s", h, desc.Digest)
	}
	return nil
}

func platformsOf(desc *remote.Descriptor) ([]v1.Platform, error) {
	if desc.MediaType.IsIndex() {
		var im v1.IndexManifest
		if err := json.Unmarshal(desc.Manifest, &im); err != nil {
			return nil, fmt.Errorf("decoding index: %w", err)
		}
		var out []v1.Platform
		for _, m := range im.Manifests {
			// Attestation manifests of buildx carry unknown/unknown.
			if m.Platform == nil || m.Platform.OS == "unknown" {
				continue
			}
			out = append(out, *m.Platform)
		}
		return out, nil
	}
	if !desc.MediaType.IsImage() {
		return nil, fmt.Errorf("%s is neither an image nor an index", desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	p := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	return []v1.Platform{p}, nil
}

// hasPlatform matches os and architecture, and the variant when the wanted
// one names it ("linux/arm" accepts any arm variant).
func hasPlatform(present []v1.Platform, want v1.Platform) bool {
	for _, p := range present {
		if p.OS == want.OS && p.Architecture == want.Architecture &&
			(want.Variant == "" || p.Variant == want.Variant) {
			return true
		}
	}
	return false
}

func currentDigest(ctx context.Context, reg *Registry, tag name.Tag) (string, error) {
	desc, err := remote.Head(tag, reg.Remote(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return "", nil
		}
		return "", err
	}
	return desc.Digest.String(), nil
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// writeTag points tag at the pinned manifest. Within one repository it
// pushes the stored manifest bytes unchanged under the tag (every platform
// the index lists goes along; the digest is the same bytes' digest). Across
// repositories the blobs and child manifests are copied first by digest.
func writeTag(ctx context.Context, reg *Registry, desc *remote.Descriptor, from name.Repository, tag name.Tag) error {
	if tag.Context() == from {
		return remote.Tag(tag, desc, reg.Remote(ctx)...)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		return remote.WriteIndex(tag, idx, reg.Remote(ctx)...)
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	return remote.Write(tag, img, reg.Remote(ctx)...)
}

// writeAndVerify points tag at desc's manifest, reads the tag back and
// checks that it names exactly that digest and media type. It returns what
// the tag points at afterwards (for reports, also on error: old when the
// registry cannot say).
func writeAndVerify(ctx context.Context, reg *Registry, desc *remote.Descriptor, from name.Repository, tag name.Tag, old string) (string, error) {
	if err := writeTag(ctx, reg, desc, from, tag); err != nil {
		now := readBackForReport(ctx, reg, tag, old)
		return now, fmt.Errorf("writing %s -> %s: %w (the tag is now %s)", tag, desc.Digest, err, orNone(now))
	}
	back, err := remote.Get(tag, reg.Remote(ctx)...)
	if err != nil {
		return readBackForReport(ctx, reg, tag, old), fmt.Errorf("reading back %s after writing it: %w", tag, err)
	}
	if err := checkDigest(back); err != nil {
		return back.Digest.String(), fmt.Errorf("reading back %s after writing it: %w", tag, err)
	}
	if back.Digest != desc.Digest {
		return back.Digest.String(), fmt.Errorf("wrote %s -> %s but reading it back gives %s (someone else wrote it meanwhile?)", tag, desc.Digest, back.Digest)
	}
	if back.MediaType != desc.MediaType {
		return back.Digest.String(), fmt.Errorf("wrote %s -> %s as %s but the registry serves it as %s", tag, desc.Digest, desc.MediaType, back.MediaType)
	}
	return back.Digest.String(), nil
}

// readBackForReport finds out what the tag points at after a failed write,
// for the message; if the registry cannot say, it reports the old value
// with a note.
func readBackForReport(ctx context.Context, reg *Registry, tag name.Tag, old string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	now, err := currentDigest(ctx, reg, tag)
	if err != nil {
		return fmt.Sprintf("unknown (registry unreachable; was %s)", orNone(old))
	}
	return now
}

func platformList(ps []v1.Platform) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

func boardList(bs []BoardPull) string {
	var s []string
	for _, b := range bs {
		s = append(s, b.Board.String()+" pulls "+b.Platform.String())
	}
	return strings.Join(s, ", ")
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "no platform"
	}
	return strings.Join(s, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// withBeforeWrite runs f just before the tag write (tests only).
func withBeforeWrite(f func()) Option {
	return func(g *gate) { g.beforeWrite = f }
}
