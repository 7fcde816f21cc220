package scenario

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/activity"
	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/target"
)

// ImageSource gives the runner the image under test, pinned once: every
// case uses the same digest.
type ImageSource interface {
	// Ref is the reference as given; Digest what it resolved to.
	Ref() string
	Digest() string
	// Platform returns one platform's image and its flattened rootfs (read
	// only). An error for a platform the image lacks is an app failure; wrap
	// host failures with target.Infra.
	Platform(ctx context.Context, platform string) (img *image.Image, rootfs string, err error)
}

// StaticChecker proves statically that the entrypoint can start. It returns
// the problems found (the app cannot start: the case fails without a boot)
// and a summary for the report; err means the check itself could not run.
type StaticChecker interface {
	Check(ctx context.Context, rootfs string, img *image.Image, cfg target.RunConfig) (summary string, problems []string, err error)
}

// StaticCheckFunc adapts a function to StaticChecker.
type StaticCheckFunc func(ctx context.Context, rootfs string, img *image.Image, cfg target.RunConfig) (string, []string, error)

// Check calls f.
func (f StaticCheckFunc) Check(ctx context.Context, rootfs string, img *image.Image, cfg target.RunConfig) (string, []string, error) {
	return f(ctx, rootfs, img, cfg)
}

// Replayer writes a fixture onto a link on the step's schedule.
type Replayer interface {
	Replay(ctx context.Context, l link.Link, r *Replay) (ReplayStats, error)
}

// ReplayFunc adapts a function to Replayer.
type ReplayFunc func(ctx context.Context, l link.Link, r *Replay) (ReplayStats, error)

// Replay calls f.
func (f ReplayFunc) Replay(ctx context.Context, l link.Link, r *Replay) (ReplayStats, error) {
	return f(ctx, l, r)
}

// EventKind says what a progress Event reports.
type EventKind int

const (
	CaseStarted EventKind = iota
	StepStarted
	StepFinished
	CaseRetrying
	CaseFinished
	// StepActivity says what a running step is doing now (Activity):
	// fetching the kernel, building the guest init, flattening the image
	// (harness/activity).
	StepActivity
)

// Event is a progress report: which case, which step, how long so far.
type Event struct {
	Kind     EventKind
	Scenario string
	Target   string
	Board    string
	Platform string
	Attempt  int
	// Step is set for StepStarted and StepFinished.
	Step *StepResult
	// Result is set for CaseFinished (and CaseRetrying: the attempt thrown away).
	Result *Result
	// Activity is set for StepActivity.
	Activity string
	Elapsed  time.Duration
}

// Option configures a Runner.
type Option func(*Runner)

// WithTarget makes a target available to the runner; scenarios run on
// the targets they list that the runner has.
func WithTarget(t target.Target) Option {
	return func(r *Runner) { r.targets[t.Name()] = t }
}

// WithStaticCheck sets the static startup check run before every boot.
func WithStaticCheck(c StaticChecker) Option { return func(r *Runner) { r.check = c } }

// WithReplayer sets how replay steps put fixtures on the link.
func WithReplayer(p Replayer) Option { return func(r *Runner) { r.replayer = p } }

// WithRetries retries a case that ended in an infra error up to n more
// times (default 1).
func WithRetries(n int) Option { return func(r *Runner) { r.retries = n } }

// WithProgress calls fn for every case and step start and end. fn must be
// quick and safe for concurrent use.
func WithProgress(fn func(Event)) Option { return func(r *Runner) { r.progress = fn } }

// WithPlatforms replaces every scenario's platform list.
func WithPlatforms(ps ...string) Option { return func(r *Runner) { r.platforms = ps } }

// WithBoards runs the scenarios as these boards (a scenario that lists
// boards: runs as those of them it lists): each board's case runs the
// manifest its engine pulls from the image, the static check holds it to
// the board's instruction set, and the targets model the board.
func WithBoards(bs ...board.Board) Option { return func(r *Runner) { r.boards = bs } }

// WithCaseTimeout caps one attempt of one case below the scenario's own
// Timeout (its timeout:, default 5 minutes): a hung target becomes an
// infra error, never a stuck suite.
func WithCaseTimeout(d time.Duration) Option { return func(r *Runner) { r.caseTimeout = d } }

// WithMaxOutputLines caps the output lines kept per case (default 20000;
// matching still sees every line).
func WithMaxOutputLines(n int) Option { return func(r *Runner) { r.maxLines = n } }

// WithParallel runs up to n cases at once in RunCases (default 1: one
// after the other). Much of a case is waiting (a replay at the capture's
// own pace, an output's settle time, the app's shutdown), which another
// case's emulator can use; a fleet run over several boards finishes
// sooner, at the cost of slower emulation while two run. Timing bounds
// (within:, startup budgets) hold the same, so keep n at or below the
// machine's cores.
func WithParallel(n int) Option { return func(r *Runner) { r.parallel = max(n, 1) } }

// Runner runs scenarios against an image on targets.
type Runner struct {
	images      ImageSource
	targets     map[string]target.Target
	check       StaticChecker
	replayer    Replayer
	retries     int
	progress    func(Event)
	platforms   []string
	boards      []board.Board
	caseTimeout time.Duration
	maxLines    int
	parallel    int
}

// NewRunner makes a runner for the image from images.
func NewRunner(images ImageSource, opts ...Option) *Runner {
	r := &Runner{images: images, targets: map[string]target.Target{}, retries: 1, maxLines: 20000, parallel: 1}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Case is one scenario × target × board × platform.
type Case struct {
	Scenario *Scenario
	Target   string
	Platform string
	// Board is the board the case runs as; nil without one (the targets'
	// own defaults: the system target's generic virt machine).
	Board *board.Board
	// Refused, with a Board, says why the board's engine pulls nothing
	// from the image (no manifest it accepts): the case fails without a
	// boot. Platform is then what the board asks for.
	Refused string
	// Pulled, with a Board, says how the manifest was chosen when that is
	// worth knowing (a single-manifest image pulled whatever the board
	// asked for).
	Pulled string
}

// BoardName is the case's board as reports name it ("" without one).
func (c Case) BoardName() string {
	if c.Board == nil {
		return ""
	}
	return c.Board.String()
}

// Plan lists the cases of sc (see Planner); the runner's images say what
// each board pulls.
func (r *Runner) Plan(sc *Scenario) []Case {
	return r.planner().Cases([]*Scenario{sc})
}

func (r *Runner) planner() Planner {
	p := Planner{Targets: r.Targets(), Platforms: r.platforms, Boards: r.boards}
	if pi, ok := r.images.(PlatformLister); ok {
		p.Pull = func(b board.Board) (board.Pulled, error) {
			return b.Pull(pi.Platforms(), pi.Single())
		}
	}
	return p
}

// PlatformLister is implemented by an ImageSource that can say which
// platforms the image has, so that the runner can plan what each board
// pulls.
type PlatformLister interface {
	// Platforms lists the image's platforms in index order.
	Platforms() []v1.Platform
	// Single reports whether the image is one manifest rather than an
	// index (an engine pulls it whatever platform it asks for).
	Single() bool
}

// PlanCases lists the cases of scs on targets (names; T@INSTANCE matches a
// scenario's T) × each scenario's platforms, or platforms when given: what
// a runner with those targets and WithPlatforms(platforms...) would run,
// without boards (Planner plans boards too).
func PlanCases(scs []*Scenario, targets, platforms []string) []Case {
	return Planner{Targets: targets, Platforms: platforms}.Cases(scs)
}

// Planner turns scenarios into cases: scenario × target × board ×
// platform.
type Planner struct {
	// Targets are the run's targets (names; T@INSTANCE matches a
	// scenario's T).
	Targets []string
	// Platforms, when set, replace every scenario's platforms (cases
	// without a board).
	Platforms []string
	// Boards are the run's boards (--boards). A scenario runs on those of
	// them it lists, or on all when it lists none; without run boards a
	// scenario runs on its own boards, or without a board.
	Boards []board.Board
	// Pull says what a board's engine pulls from the image under test;
	// needed when a case has a board (nil: every board case is refused,
	// saying the image's platforms are not known).
	Pull func(board.Board) (board.Pulled, error)
}

// BoardsOf are the boards sc runs as under p (nil: no board).
func (p Planner) BoardsOf(sc *Scenario) []board.Board {
	if len(p.Boards) == 0 {
		return sc.Boards
	}
	if len(sc.Boards) == 0 {
		return p.Boards
	}
	want := map[string]bool{}
	for _, b := range sc.Boards {
		want[b.Key()] = true
	}
	var out []board.Board
	for _, b := range p.Boards {
		if want[b.Key()] {
			out = append(out, b)
		}
	}
	return out
}

// Cases lists the cases of scs, scenario by scenario, then by target,
// board and platform.
func (p Planner) Cases(scs []*Scenario) []Case {
	var out []Case
	for _, sc := range scs {
		ps := sc.Platforms
		if len(p.Platforms) > 0 {
			ps = p.Platforms
		}
		boards := p.BoardsOf(sc)
		if len(boards) == 0 && (len(p.Boards) > 0 || len(sc.Boards) > 0) {
			continue // the run's boards and the scenario's have none in common
		}
		for _, t := range sc.Targets {
			for _, n := range p.Targets {
				if n != t && !strings.HasPrefix(n, t+"@") {
					continue
				}
				if len(boards) == 0 {
					for _, pl := range ps {
						out = append(out, Case{Scenario: sc, Target: n, Platform: pl})
					}
					continue
				}
				for i := range boards {
					b := boards[i]
					c := Case{Scenario: sc, Target: n, Board: &b, Platform: b.Platform()}
					switch {
					case p.Pull == nil:
						c.Refused = "the image's platforms are not known, so what " + b.String() + " pulls cannot be planned"
					default:
						pulled, err := p.Pull(b)
						if err != nil {
							c.Refused = err.Error()
						} else {
							c.Platform, c.Pulled = pulled.Platform.String(), pulled.Note
						}
					}
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// Targets lists the names of the runner's targets, sorted.
func (r *Runner) Targets() []string {
	var ns []string
	for n := range r.targets {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// RunAll runs every case of every scenario (see RunCases).
func (r *Runner) RunAll(ctx context.Context, scs []*Scenario) []Result {
	var cases []Case
	for _, sc := range scs {
		cases = append(cases, r.Plan(sc)...)
	}
	return r.RunCases(ctx, cases, nil)
}

// RunCases runs cases and returns their results in the same order; each,
// when set, sees every result as it comes. Cases run one after the other
// (up to WithParallel's n at once), except that the instances of a target
// (boards: "device@pi-lab-1", "device@pi-lab-2") run in parallel with each
// other, one case at a time on each. Cases not started when ctx ends are
// left out.
func (r *Runner) RunCases(ctx context.Context, cases []Case, each func(Result)) []Result {
	results := make([]*Result, len(cases))
	var mu sync.Mutex
	run := func(i int) {
		res := r.Run(ctx, cases[i])
		mu.Lock()
		results[i] = &res
		if each != nil {
			each(res)
		}
		mu.Unlock()
	}
	// Each queue runs its cases in order: one queue per instance of a
	// target, and r.parallel queues taking the other cases as they free.
	var shared []int
	byInstance := map[string][]int{}
	var instances []string
	for i, c := range cases {
		if !strings.Contains(c.Target, "@") {
			shared = append(shared, i)
			continue
		}
		if _, ok := byInstance[c.Target]; !ok {
			instances = append(instances, c.Target)
		}
		byInstance[c.Target] = append(byInstance[c.Target], i)
	}
	var wg sync.WaitGroup
	next := make(chan int, len(shared))
	for _, i := range shared {
		next <- i
	}
	close(next)
	for w := 0; w < r.parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() != nil {
					return
				}
				run(i)
			}
		}()
	}
	if r.parallel == 1 {
		// One after the other, and before the instances, as without
		// WithParallel.
		wg.Wait()
	}
	for _, n := range instances {
		wg.Add(1)
		go func(idx []int) {
			defer wg.Done()
			for _, i := range idx {
				if ctx.Err() != nil {
					return
				}
				run(i)
			}
		}(byInstance[n])
	}
	wg.Wait()
	var out []Result
	for _, res := range results {
		if res != nil {
			out = append(out, *res)
		}
	}
	return out
}

// Run runs one case, retrying infra errors, and returns its verdict. It
// never panics and always tears the device down.
func (r *Runner) Run(ctx context.Context, c Case) Result {
	var retried []string
	for attempt := 1; ; attempt++ {
		res := r.attempt(ctx, c, attempt)
		res.Attempts = attempt
		res.Retried = retried
		if res.Verdict != InfraError || attempt > r.retries || ctx.Err() != nil {
			r.emit(Event{Kind: CaseFinished, Scenario: c.Scenario.Name, Target: c.Target, Board: c.BoardName(), Platform: c.Platform, Attempt: attempt, Result: &res, Elapsed: res.Duration})
			return res
		}
		retried = append(retried, fmt.Sprintf("attempt %d: %s", attempt, res.Reason))
		r.emit(Event{Kind: CaseRetrying, Scenario: c.Scenario.Name, Target: c.Target, Board: c.BoardName(), Platform: c.Platform, Attempt: attempt, Result: &res, Elapsed: res.Duration})
	}
}

func (r *Runner) emit(e Event) {
	if r.progress != nil {
		r.progress(e)
	}
}

// caseRun is the state of one attempt.
type caseRun struct {
	r     *Runner
	c     Case
	res   *Result
	start time.Time
	dev   target.App
	s     *session
	att   int
	ctx   context.Context
	// current is the step (or phase) running now, for activity events
	// (a target may report from a goroutine of its own).
	current atomic.Pointer[StepResult]
	// acct accounts for the frames of every counted replay of the
	// attempt; lost names the first replay whose frames did not all reach
	// the device's interface, "" when none. short is set by a count
	// expectation that failed for too few (the app still running).
	acct  deliveryAccount
	lost  string
	short bool
}

// deliveryAccount is what the counted replays of an attempt sent, and the
// device's counters before the first of them.
type deliveryAccount struct {
	counter target.DeliveryCounter
	before  link.Counters
	sent    int64
}

// missing is how many frames the account's replays sent that the device's
// interface has still neither received nor dropped; -1 when it cannot
// tell.
func (a deliveryAccount) missing(ctx context.Context) int64 {
	if a.counter == nil {
		return -1
	}
	c, err := a.counter.RxCounters(ctx)
	if err != nil {
		return -1
	}
	// Only replays with coalescing off are counted as lost at all.
	return undelivered(c.Sub(a.before), a.sent, "off")
}

func (r *Runner) attempt(ctx context.Context, c Case, attempt int) (res Result) {
	sc := c.Scenario
	res = Result{
		Scenario: sc.Name, File: sc.Pos.File, Description: sc.Description, Tags: sc.Tags,
		Target: c.Target, Board: c.BoardName(), Platform: c.Platform, FailedStep: -1, Start: time.Now(),
	}
	if r.images != nil {
		res.ImageRef, res.ImageDigest = r.images.Ref(), r.images.Digest()
	}
	cr := &caseRun{r: r, c: c, res: &res, start: res.Start, att: attempt}
	r.emit(Event{Kind: CaseStarted, Scenario: sc.Name, Target: c.Target, Board: c.BoardName(), Platform: c.Platform, Attempt: attempt})

	timeout := sc.Timeout()
	if r.caseTimeout > 0 && r.caseTimeout < timeout {
		timeout = r.caseTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the case did not finish within its timeout of %s (the scenario's timeout:)", timeout))
	defer cancel()
	// What a step does while it is slow (a first run fetches the kernel,
	// builds the init, flattens the image) becomes a progress event.
	ctx = activity.With(ctx, func(what string) {
		r.emit(Event{Kind: StepActivity, Scenario: sc.Name, Target: c.Target, Board: c.BoardName(), Platform: c.Platform, Attempt: attempt,
			Step: cr.current.Load(), Activity: what, Elapsed: time.Since(cr.start)})
	})
	defer func() {
		if p := recover(); p != nil {
			cr.decide(-1, InfraError, fmt.Sprintf("harness panic: %v\n%s", p, debug.Stack()))
		}
		cr.teardown()
		if ctx.Err() == context.DeadlineExceeded && res.Verdict == "" {
			cr.decide(-1, InfraError, fmt.Sprintf("case did not finish within %s", timeout))
		}
		if res.Verdict == "" {
			res.Verdict = Pass
		}
		res.Duration = time.Since(res.Start)
	}()
	cr.run(ctx)
	return res
}

// decide records a verdict unless one was already recorded.
func (cr *caseRun) decide(step int, v Verdict, reason string) {
	if cr.res.Verdict != "" {
		return
	}
	cr.res.Verdict, cr.res.Reason, cr.res.FailedStep = v, reason, step
}

// phase runs one step of the timeline and records it; fn returns the
// step's verdict (empty for pass) and message.
func (cr *caseRun) phase(index int, kind StepKind, desc, pos string, fn func(sr *StepResult) (Verdict, string)) bool {
	sr := StepResult{Index: index, Kind: kind, Desc: desc, Pos: pos, Start: time.Now()}
	cr.current.Store(&sr)
	cr.r.emit(Event{Kind: StepStarted, Scenario: cr.c.Scenario.Name, Target: cr.c.Target, Board: cr.c.BoardName(), Platform: cr.c.Platform, Attempt: cr.att, Step: &sr, Elapsed: time.Since(cr.start)})
	cr.short = false
	v, msg := fn(&sr)
	if v == "" {
		v = Pass
	}
	where := desc
	if index >= 0 {
		where = fmt.Sprintf("step %d (%s) at %s", index+1, desc, pos)
	} else if kind == PhaseReady {
		where = "the startup (" + desc + ")"
	}
	// No verdict without a live device: whatever the step made of what it
	// saw, a device that died under it (or before it) decides the case.
	var death string
	if index >= 0 || kind == PhaseReady {
		if err := cr.checkAlive(); err != nil {
			death = deathReason(err, where)
			if msg != "" {
				msg = death + "\n(what the step saw: " + firstLine(msg) + ")"
			} else {
				msg = death
			}
			v = InfraError
		}
	}
	if v == Fail && kind != PhaseStaticCheck && kind != PhaseImage {
		if ill := cr.illegalInstruction(); ill != "" {
			msg = ill + ": " + msg
		} else if gap, ok := cr.emulatorGap(); ok {
			v, msg = Unsupported, fmt.Sprintf("target %s cannot run what the app needs: %s (a failure of the emulator, not of the app: %s)", cr.c.Target, gap, firstLine(msg))
		} else if cr.short && cr.lost != "" {
			// The app fell short of an expectation after it was not
			// shown all the scenario replayed: no verdict on it (issue
			// #15: never an app fail) if the frames are still missing now
			// (not merely late).
			if n := cr.acct.missing(cr.ctx); n != 0 {
				v, msg = InfraError, "the harness failed to deliver: "+cr.lost+"; so this is no verdict on the app: "+msg
			}
		}
	}
	sr.Verdict, sr.Message, sr.Duration = v, msg, time.Since(sr.Start)
	cr.res.Steps = append(cr.res.Steps, sr)
	cr.r.emit(Event{Kind: StepFinished, Scenario: cr.c.Scenario.Name, Target: cr.c.Target, Board: cr.c.BoardName(), Platform: cr.c.Platform, Attempt: cr.att, Step: &sr, Elapsed: time.Since(cr.start)})
	if v != Pass {
		if death != "" {
			cr.decide(len(cr.res.Steps)-1, v, death)
		} else {
			cr.decide(len(cr.res.Steps)-1, v, where+": "+msg)
		}
		return false
	}
	return true
}

// checkAlive returns why the device is not alive, or nil: what the session
// already knows, else a fresh liveness check. A case whose context ended
// is not checked: it is an infra-error already.
func (cr *caseRun) checkAlive() error {
	if cr.dev == nil || cr.s == nil || cr.ctx.Err() != nil {
		return nil
	}
	var de *target.DeadError
	if err := cr.s.lost(); err != nil && errors.As(err, &de) {
		return err
	}
	// Also when Wait failed without saying what died: the device may know.
	actx, cancel := context.WithTimeout(context.WithoutCancel(cr.ctx), aliveTimeout)
	defer cancel()
	if err := target.AliveOf(actx, cr.dev); err != nil {
		cr.s.markDead(err)
	}
	return cr.s.lost()
}

// deathReason words a dead device for the verdict: what died, how, and
// when ("the emulator qemu-system-arm (pid 4242) was killed by signal 9
// (SIGKILL) during step 2 (...)").
func deathReason(err error, where string) string {
	var de *target.DeadError
	if errors.As(err, &de) {
		s := de.What + " " + de.How + " during " + where
		if de.Detail != "" {
			s += "\n" + de.Detail
		}
		return s
	}
	return "lost the device during " + where + ": " + err.Error()
}

// goSIGILL is how the Go runtime reports an illegal instruction it caught
// (in cgo code, or its own): it prints this and exits 2. Compiled on first
// use, as every package-level regexp is (not at every hil process's init).
var goSIGILL = sync.OnceValue(func() Matcher {
	return Matcher{Regex: regexp.MustCompile(`^SIGILL: illegal instruction`), Stream: target.Stderr}
})

// illegalInstruction says, for a case with a board whose app died of an
// illegal instruction (killed by SIGILL, or the Go runtime's report of
// one), that the board's CPU cannot run the app: "illegal instruction on
// pi0w (ARM1176JZF-S)". "" otherwise.
func (cr *caseRun) illegalInstruction() string {
	if cr.c.Board == nil || cr.s == nil {
		return ""
	}
	ex, err, done := cr.s.exitStatus()
	if !done || err != nil || !ex.Observed {
		return ""
	}
	if ex.Signal == "SIGILL" {
		return fmt.Sprintf("illegal instruction on %s (%s): the app was killed by SIGILL", cr.c.Board, cr.c.Board.CPU)
	}
	if l, ok := cr.s.firstMatch(goSIGILL(), 0); ok {
		return fmt.Sprintf("illegal instruction on %s (%s): the Go runtime caught it (%q) and exited %d", cr.c.Board, cr.c.Board.CPU, l.Text, ex.Code)
	}
	return ""
}

func (cr *caseRun) emulatorGap() (string, bool) {
	if cr.dev == nil {
		return "", false
	}
	if g, ok := cr.dev.(target.GapReporter); ok {
		return g.EmulatorGap()
	}
	return "", false
}

// needsCapture marks steps a device without capture cannot run.
func (cr *caseRun) needsCapture(what string) (Verdict, string, bool) {
	caps := target.CapabilitiesOf(cr.dev)
	if caps.Capture {
		return "", "", false
	}
	return Unsupported, fmt.Sprintf("target %s does not support packet capture, which %s needs: %s", cr.c.Target, what, caps.Reason), true
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func classify(err error) Verdict {
	var ue *target.UnsupportedError
	switch {
	case errors.As(err, &ue):
		return Unsupported
	case target.IsInfra(err):
		return InfraError
	}
	return Fail
}

func (cr *caseRun) run(ctx context.Context) {
	cr.ctx = ctx
	sc, r := cr.c.Scenario, cr.r
	tg, ok := r.targets[cr.c.Target]
	if !ok {
		cr.decide(-1, InfraError, fmt.Sprintf("target %q is not configured in this run (have: %s)", cr.c.Target, strings.Join(r.Targets(), ", ")))
		return
	}
	if r.images == nil {
		cr.decide(-1, InfraError, "no image given to the runner")
		return
	}
	var img *image.Image
	var rootfs string
	desc := "open image " + cr.c.Platform
	if cr.c.Board != nil {
		desc = fmt.Sprintf("open the image as %s pulls it (%s)", cr.c.Board, cr.c.Platform)
	}
	if !cr.phase(-1, PhaseImage, desc, "", func(*StepResult) (Verdict, string) {
		if cr.c.Refused != "" {
			return Fail, "the board pulls nothing: " + cr.c.Refused
		}
		var err error
		img, rootfs, err = r.images.Platform(ctx, cr.c.Platform)
		if err != nil {
			return classify(err), err.Error()
		}
		cr.res.ManifestDigest = img.ManifestDigest.String()
		if cr.c.Pulled != "" {
			return Pass, img.ManifestDigest.String() + "; " + cr.c.Pulled
		}
		return Pass, img.ManifestDigest.String()
	}) {
		return
	}
	cfg := runConfig(img, sc)
	cfg.Board = cr.c.Board
	if r.check != nil && !sc.Startup.SkipStaticCheck {
		if !cr.phase(-1, PhaseStaticCheck, "static startup check", "", func(*StepResult) (Verdict, string) {
			summary, problems, err := r.check.Check(ctx, rootfs, img, cfg)
			if err != nil {
				return InfraError, "static check could not run: " + err.Error()
			}
			cr.res.StaticCheck = &StaticCheck{
				ImageDigest: cr.res.ImageDigest, ManifestDigest: cr.res.ManifestDigest, Platform: cr.c.Platform,
				OK: len(problems) == 0, Problems: problems, Summary: summary,
			}
			switch len(problems) {
			case 0:
				return Pass, "the program can start (the tree is in the report's static checks)"
			case 1:
				return Fail, "the app cannot start: " + problems[0]
			}
			// The whole list is in the report once per platform (its
			// static checks), not in every case's reason.
			return Fail, fmt.Sprintf("the app cannot start: %s (and %d more problems: the static check of %s in the report lists them)", problems[0], len(problems)-1, cr.c.Platform)
		}) {
			return
		}
	}

	bootStart := time.Now()
	if !cr.phase(-1, PhaseBoot, "boot on "+tg.Name(), "", func(*StepResult) (Verdict, string) {
		budgetCtx, cancel := context.WithTimeout(ctx, sc.Startup.Budget+time.Minute)
		defer cancel()
		dev, err := tg.Boot(budgetCtx, img, cfg)
		if err != nil {
			v := classify(err)
			if v == Fail {
				// A boot that fails without saying why is the harness's problem
				// until proven otherwise: retried, never passed.
				v = InfraError
			}
			return v, "boot: " + err.Error()
		}
		cr.dev = dev
		cr.res.Device = dev.Info()
		cr.s = newSession(dev, r.maxLines)
		if sc.RxOffload == "gro" && !strings.Contains(cr.res.Device.String("rx_offload"), "rx-gro") {
			return Unsupported, fmt.Sprintf("rx_offload gro: the %s target's interface does not coalesce received frames (it reports rx_offload %q); the system target models a NIC driver that does GRO", tg.Name(), cr.res.Device.String("rx_offload"))
		}
		return Pass, ""
	}) {
		return
	}

	if !cr.phase(-1, PhaseReady, fmt.Sprintf("ready (%s) within %s", sc.Startup.Ready, sc.Startup.Budget), "", func(*StepResult) (Verdict, string) {
		return cr.waitReady(ctx, bootStart)
	}) {
		return
	}

	for i := range sc.Steps {
		st := &sc.Steps[i]
		if !cr.phase(i, st.Kind, st.Describe(), st.Pos.String(), func(sr *StepResult) (Verdict, string) {
			return cr.step(ctx, st, sr)
		}) {
			return
		}
	}
	// The device must have lived to the end of the case (or until the app's
	// own exit was seen).
	if err := cr.checkAlive(); err != nil {
		cr.decide(-1, InfraError, deathReason(err, "the end of the case, after the last step"))
		return
	}
	// expect_no_output holds over the whole run: check lines that came after
	// its step too (all of them, when the app has ended).
	if _, _, done := cr.s.exitStatus(); done {
		cr.s.waitDrained(ctx, 2*time.Second)
	}
	for i := range sc.Steps {
		st := &sc.Steps[i]
		if st.Kind != StepExpectNoOutput {
			continue
		}
		if l, bad := cr.s.firstMatch(*st.ExpectNoOutput, 0); bad {
			cr.decide(-1, Fail, fmt.Sprintf("step %d (%s) at %s: line appeared later in the run: %q", i+1, st.Describe(), st.Pos, l.Text))
			return
		}
	}
}

func runConfig(img *image.Image, sc *Scenario) target.RunConfig {
	cfg := target.RunConfig{
		Entrypoint: img.Config.Entrypoint,
		Cmd:        img.Config.Cmd,
		Env:        append([]string(nil), img.Config.Env...),
		WorkingDir: img.Config.WorkingDir,
		User:       img.Config.User,
		Iface:      sc.App.Iface,
		RxOffload:  sc.RxOffload,
	}
	if sc.App.Entrypoint != nil {
		cfg.Entrypoint = sc.App.Entrypoint
		// As Docker does: a new entrypoint drops the image's cmd.
		cfg.Cmd = nil
	}
	if sc.App.Args != nil {
		cfg.Cmd = sc.App.Args
	}
	cfg.Env = mergeEnv(cfg.Env, sc.App.Env)
	if sc.App.WorkingDir != "" {
		cfg.WorkingDir = sc.App.WorkingDir
	}
	ready := sc.Startup.Ready
	cfg.Ready = func(l target.Line) bool { return ready.Match(l) }
	return cfg
}

// mergeEnv sets every KEY=VALUE of over in base, replacing each entry of
// the same key (an image env may repeat one) or appending, in one pass
// over each list (it used to compare every pair: 17 s for 40k keys).
func mergeEnv(base, over []string) []string {
	out := append([]string(nil), base...)
	at := make(map[string][]int, len(out))
	key := func(kv string) string { k, _, _ := strings.Cut(kv, "="); return k }
	for i, kv := range out {
		at[key(kv)] = append(at[key(kv)], i)
	}
	for _, kv := range over {
		k := key(kv)
		idx, ok := at[k]
		if !ok {
			at[k] = []int{len(out)}
			out = append(out, kv)
			continue
		}
		for _, i := range idx {
			out[i] = kv
		}
	}
	return out
}

func (cr *caseRun) teardown() {
	if cr.dev == nil {
		return
	}
	start := time.Now()
	// How the app ended is what was seen before hil's teardown stopped it.
	var exit *target.Exit
	if cr.s != nil {
		cr.s.stopPolling()
		ex, exitErr, done := cr.s.exitStatus()
		switch {
		case done && exitErr == nil:
			exit = &ex
		case done || cr.s.lost() != nil:
			ex = target.NotObserved("the device died before the app ended")
			exit = &ex
		default:
			ex = target.NotObserved("stopped by hil")
			exit = &ex
		}
	}
	err := cr.dev.Close()
	if cr.s != nil {
		cr.s.stop()
		cr.res.Output, cr.res.OutputDropped = cr.s.snapshot()
		cr.res.Exit = exit
	}
	info := cr.dev.Info()
	if len(info) > 0 {
		cr.res.Device = info
	}
	sr := StepResult{Index: -1, Kind: PhaseTeardown, Desc: "tear down", Verdict: Pass, Start: start, Duration: time.Since(start)}
	if err != nil {
		sr.Verdict, sr.Message = InfraError, err.Error()
		cr.decide(len(cr.res.Steps), InfraError, "tear down: "+err.Error())
	}
	cr.res.Steps = append(cr.res.Steps, sr)
	cr.dev = nil
}

func (cr *caseRun) waitReady(ctx context.Context, bootStart time.Time) (Verdict, string) {
	sc := cr.c.Scenario
	deadline := bootStart.Add(sc.Startup.Budget)
	for scanned := 0; ; {
		ch := cr.s.changed()
		if l, ok := cr.s.firstMatchFrom(sc.Startup.Ready, &scanned); ok {
			return Pass, fmt.Sprintf("ready after %s: %q", l.Time.Sub(bootStart).Round(time.Millisecond), l.Text)
		}
		if v, msg, bad := cr.s.deviceFailure(); bad {
			return v, msg + cr.s.tail(15, true)
		}
		if ex, _, done := cr.s.exitStatus(); done && cr.s.drained() {
			return Fail, fmt.Sprintf("the app ended (%s) before printing a line matching %s%s", ex, sc.Startup.Ready, cr.s.tail(15, false))
		}
		if !time.Now().Before(deadline) {
			return Fail, fmt.Sprintf("not ready within the startup budget of %s: no line matching %s%s", sc.Startup.Budget, sc.Startup.Ready, cr.s.tail(15, false))
		}
		if v, msg, stop := waitChange(ctx, ch, deadline); stop {
			return v, msg
		}
	}
}

// waitChange waits for new output/frames/exit, the deadline or ctx.
func waitChange(ctx context.Context, ch <-chan struct{}, deadline time.Time) (Verdict, string, bool) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		return InfraError, "interrupted: " + context.Cause(ctx).Error(), true
	}
	return "", "", false
}

func (cr *caseRun) step(ctx context.Context, st *Step, sr *StepResult) (Verdict, string) {
	switch st.Kind {
	case StepReplay:
		return cr.replay(ctx, st.Replay, sr)
	case StepExpectOutput:
		e := st.ExpectOutput
		from := 0
		if e.FromStep {
			from = cr.s.lineMark()
		}
		v, msg := cr.expectCount(ctx, e.Count, e.Within, e.Settle, "lines matching "+e.Match.String(),
			cr.s.lineCounter(e.Match, from), func() string { return cr.s.tail(10, false) })
		if v == Fail {
			if near := cr.s.nearMisses(e.Match, from, 5); len(near) > 0 {
				sr.NearMisses = near
				msg += "\nlines that nearly matched:\n  " + strings.Join(near, "\n  ")
			}
		}
		return v, msg
	case StepExpectFrames:
		e := st.ExpectFrames
		if cr.dev.Link() == nil {
			return Unsupported, fmt.Sprintf("target %s gives no network link to watch frames on", cr.c.Target)
		}
		from := 0
		if e.FromStep {
			from = cr.s.frameMark()
		}
		return cr.expectCount(ctx, e.Count, e.Within, e.Settle, fmt.Sprintf("frames sent by the device matching %q", e.Filter),
			cr.s.frameCounter(e.match, from), func() string { return fmt.Sprintf("; %d frames seen from the device in all", cr.s.frameMark()) })
	case StepSignal:
		if v, msg, bad := cr.s.deviceFailure(); bad {
			return v, msg
		}
		if ex, _, done := cr.s.exitStatus(); done {
			return Fail, fmt.Sprintf("cannot deliver %s: the app already ended (%s)%s", SignalName(st.Signal), ex, cr.s.tail(10, false))
		}
		if err := cr.dev.Signal(st.Signal); err != nil {
			v := classify(err)
			if v == Fail {
				v = InfraError
			}
			return v, fmt.Sprintf("delivering %s: %v", SignalName(st.Signal), err)
		}
		return Pass, ""
	case StepWait:
		// The wait ends early when the device is found dead meanwhile.
		t := time.NewTimer(st.Wait)
		defer t.Stop()
		for {
			ch := cr.s.changed()
			if v, msg, bad := cr.s.deviceFailure(); bad {
				return v, msg
			}
			select {
			case <-t.C:
				return Pass, ""
			case <-ch:
			case <-ctx.Done():
				return InfraError, "interrupted: " + context.Cause(ctx).Error()
			}
		}
	case StepExpectExit:
		return cr.expectExit(ctx, st.ExpectExit)
	case StepExpectNoOutput:
		if l, bad := cr.s.firstMatch(*st.ExpectNoOutput, 0); bad {
			return Fail, fmt.Sprintf("line that must not appear was printed: %q", l.Text)
		}
		return Pass, ""
	}
	return InfraError, "unknown step kind " + string(st.Kind)
}

func (cr *caseRun) replay(ctx context.Context, rp *Replay, sr *StepResult) (Verdict, string) {
	if v, msg, no := cr.needsCapture("replay"); no {
		return v, msg
	}
	if cr.r.replayer == nil {
		return InfraError, "no replayer configured in this run"
	}
	if cr.dev.Link() == nil {
		return Unsupported, fmt.Sprintf("target %s gives no network link to replay into", cr.c.Target)
	}
	if cr.res.Fixtures == nil {
		cr.res.Fixtures = map[string]string{}
	}
	cr.res.Fixtures[rp.Fixture] = rp.SHA256
	// The step's own bound (within, or the schedule's duration and room);
	// the case timeout caps it through ctx.
	stepCtx := ctx
	if d := rp.Deadline(); d > 0 {
		var cancel context.CancelFunc
		stepCtx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	// The device's own receive counters before and after account for
	// every frame sent (where the target can read them).
	counter, counting := cr.dev.(target.DeliveryCounter)
	var before link.Counters
	if counting {
		var err error
		if before, err = counter.RxCounters(ctx); err != nil {
			sr.Warnings = append(sr.Warnings, "the device's interface counters could not be read before the replay, so its frames are not accounted for: "+err.Error())
			counting = false
		}
	}
	stats, err := cr.r.replayer.Replay(stepCtx, cr.dev.Link(), rp)
	stats.Fixture, stats.SHA256, stats.Schedule = rp.Fixture, rp.SHA256, rp.Schedule.String()
	sr.Replay = &stats
	if err != nil && ctx.Err() == nil && stepCtx.Err() == context.DeadlineExceeded {
		return InfraError, fmt.Sprintf("replay of %s did not end within %s (%d frames sent; the schedule needs %s): the link or the host is too slow; a replay step's within raises the bound",
			rp.Fixture, rp.Deadline(), stats.FramesSent, roundDuration(rp.Duration()))
	}
	if err != nil {
		v := classify(err)
		if v == Fail {
			// The app's own exit stops a replay (its interface goes away):
			// that is its failure. Anything else is the device's or hil's.
			if ex, exitErr, done := cr.s.exitStatus(); done && exitErr == nil && ex.Observed {
				return Fail, fmt.Sprintf("replay stopped after %d frames: the app ended (%s)%s", stats.FramesSent, ex, cr.s.tail(10, false))
			}
			v = InfraError
		}
		return v, fmt.Sprintf("replay of %s: %v", rp.Fixture, err)
	}
	msg := fmt.Sprintf("%d frames, %.0f pps", stats.FramesSent, stats.PPS)
	if !counting {
		return Pass, msg
	}
	// Sent is written to the link, not yet taken by the device: QEMU
	// reads the system target's link only as fast as the guest's NIC
	// takes frames, a board's agent relays them. Account once the link
	// says the device has everything.
	if dl, ok := cr.dev.Link().(link.Drainer); ok {
		dctx, cancel := context.WithTimeout(ctx, drainBound)
		err := dl.Drain(dctx)
		cancel()
		if err != nil {
			sr.Warnings = append(sr.Warnings, fmt.Sprintf("the link did not hand the device every frame within %s, so its frames are not accounted for: %v", drainBound, err))
			return Pass, msg
		}
	}
	if cr.acct.counter == nil {
		cr.acct = deliveryAccount{counter: counter, before: before}
	}
	cr.acct.sent += stats.FramesSent
	d, err := cr.delivered(ctx, counter, before, stats.FramesSent)
	if err != nil {
		sr.Warnings = append(sr.Warnings, "the device's interface counters could not be read after the replay, so its frames are not accounted for: "+err.Error())
		return Pass, msg
	}
	stats.Delivery = &d
	msg += fmt.Sprintf("; %s received %d", d.Iface, d.RxPackets)
	if d.Seen >= 0 {
		msg += fmt.Sprintf(", a capture saw %d", d.Seen)
		if d.SeenOverMTU > 0 {
			msg += fmt.Sprintf(" (%d over the MTU)", d.SeenOverMTU)
		}
	}
	if problem := deliveryProblem(d, stats.FramesSent, cr.rxOffload()); problem != "" {
		if cr.c.Scenario.StrictDelivery {
			return InfraError, fmt.Sprintf("replay of %s: the harness failed to deliver (strict_delivery): %s", rp.Fixture, problem)
		}
		sr.Warnings = append(sr.Warnings, problem)
		msg += "; WARNING: " + problem
		if lost := undelivered(d, stats.FramesSent, cr.rxOffload()); lost > 0 && cr.lost == "" {
			what := fmt.Sprintf("%d of the %d frames that step %d (replay of %s) sent never reached the device's interface %s (it received %d and dropped %d)",
				lost, stats.FramesSent, sr.Index+1, rp.Fixture, d.Iface, d.RxPackets, d.RxDropped)
			filters := false
			if dd, ok := cr.dev.(target.DeliveryDiagnoser); ok {
				var where string
				where, filters = dd.DeliveryDiagnosis(ctx)
				if where != "" {
					sr.Warnings = append(sr.Warnings, where)
					what += " [" + where + "]"
				}
			}
			// A NIC that filters by address drops frames for other MACs
			// before any counter: that is the device, not the harness.
			if !filters {
				cr.lost = what
			}
		}
	}
	return Pass, msg
}

// undelivered is how many frames sent neither arrived at the device's
// interface nor were dropped by it: lost on the harness's side of the
// wire (the link, the emulator). With receive coalescing on, the
// counters cannot tell, so it is 0.
func undelivered(d link.Counters, sent int64, offload string) int64 {
	if offload != "off" {
		return 0
	}
	return max(0, sent-int64(d.RxPackets)-int64(d.RxDropped))
}

// drainBound bounds the wait for a link to hand its frames over.
const drainBound = 2 * time.Minute

// delivered reads the device's counters until every frame sent is
// accounted for (received or dropped) or they stop moving: frames may
// still be on their way through the emulator when the last write returns.
func (cr *caseRun) delivered(ctx context.Context, counter target.DeliveryCounter, before link.Counters, sent int64) (link.Counters, error) {
	const (
		poll  = 10 * time.Millisecond
		still = 300 * time.Millisecond // no change for this long: settled
		bound = 5 * time.Second
	)
	deadline := time.Now().Add(bound)
	var last link.Counters
	lastChange := time.Now()
	for {
		c, err := counter.RxCounters(ctx)
		if err != nil {
			return link.Counters{}, err
		}
		d := c.Sub(before)
		// Done when every frame is accounted for and a capture on the
		// interface has seen each one (it trails the receive counter by
		// the frames the kernel is still passing up); with coalescing
		// on it sees fewer, so that waits for the counts to settle.
		if int64(d.RxPackets+d.RxDropped) >= sent && (d.Seen < 0 || d.Seen >= int64(d.RxPackets)) {
			return d, nil
		}
		if d != last {
			last, lastChange = d, time.Now()
		}
		if time.Since(lastChange) > still || time.Now().After(deadline) {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return d, nil
		case <-time.After(poll):
		}
	}
}

// rxOffload is the device's receive coalescing as it reported it ("off"
// when it said nothing: a veth pair).
func (cr *caseRun) rxOffload() string {
	if v := cr.dev.Info().String("rx_offload"); v != "" {
		return v
	}
	return "off"
}

// deliveryProblem says what does not add up between the frames a replay
// sent and what the device's interface counted, or "".
func deliveryProblem(d link.Counters, sent int64, offload string) string {
	var p []string
	if int64(d.RxPackets) != sent || d.RxDropped != 0 {
		p = append(p, fmt.Sprintf("the device's interface %s received %d of the %d frames sent (%d dropped)", d.Iface, d.RxPackets, sent, d.RxDropped))
	}
	if d.Seen >= 0 && offload == "off" && d.Seen != int64(d.RxPackets) {
		p = append(p, fmt.Sprintf("a capture on %s saw %d frames of the %d received, with receive coalescing off", d.Iface, d.Seen, d.RxPackets))
	}
	return strings.Join(p, "; ")
}

// expectCount waits until count(from) satisfies want. Lower bounds pass as
// soon as they hold; upper bounds (==, <=, <, !=) must hold for settle, or
// until the deadline.
func (cr *caseRun) expectCount(ctx context.Context, want CountExpr, within, settle time.Duration, what string, count func() int, extra func() string) (Verdict, string) {
	deadline := time.Now().Add(within)
	var heldSince time.Time
	for {
		ch := cr.s.changed()
		// A dead device proves nothing, least of all that something did
		// not happen.
		if v, msg, bad := cr.s.deviceFailure(); bad {
			return v, msg
		}
		n := count()
		now := time.Now()
		if want.Holds(float64(n)) {
			if !want.upperBounded() {
				return Pass, fmt.Sprintf("saw %d", n)
			}
			if heldSince.IsZero() {
				heldSince = now
			}
			if now.Sub(heldSince) >= settle || !now.Before(deadline) {
				return Pass, fmt.Sprintf("saw %d, held for %s", n, now.Sub(heldSince).Round(time.Millisecond))
			}
		} else {
			heldSince = time.Time{}
			if want.cannotRecover(float64(n)) {
				return Fail, fmt.Sprintf("expected count %s of %s, saw %d%s", want, what, n, extra())
			}
		}
		if ex, exitErr, done := cr.s.exitStatus(); done && exitErr == nil && cr.s.drained() {
			// The app's last lines may have come in since n was counted:
			// with the output drained, this count is final.
			n = count()
			if want.Holds(float64(n)) {
				return Pass, fmt.Sprintf("saw %d (the app has ended)", n)
			}
			return Fail, fmt.Sprintf("expected count %s of %s, saw %d before the app ended (%s)%s", want, what, n, ex, extra())
		}
		if !now.Before(deadline) {
			cr.short = want.short(float64(n))
			return Fail, fmt.Sprintf("expected count %s of %s within %s, saw %d%s", want, what, within, n, extra())
		}
		wake := deadline
		if !heldSince.IsZero() && heldSince.Add(settle).Before(wake) {
			wake = heldSince.Add(settle)
		}
		if v, msg, stop := waitChange(ctx, ch, wake); stop {
			return v, msg
		}
	}
}

func (cr *caseRun) expectExit(ctx context.Context, e *ExpectExit) (Verdict, string) {
	deadline := time.Now().Add(e.Within)
	for {
		ch := cr.s.changed()
		if v, msg, bad := cr.s.deviceFailure(); bad {
			return v, msg + cr.s.tail(10, true)
		}
		if ex, err, done := cr.s.exitStatus(); done {
			// Lines printed before the exit are still in flight: let them in,
			// so later steps and the report see everything.
			cr.s.waitDrained(ctx, 2*time.Second)
			if err != nil || !ex.Observed {
				return InfraError, fmt.Sprintf("could not learn how the app ended: %v (%s)%s", err, ex, cr.s.tail(10, true))
			}
			switch {
			case e.Signal != 0 && ex.Signal != SignalName(e.Signal):
				return Fail, fmt.Sprintf("expected the app to be killed by %s, it ended with %s%s", SignalName(e.Signal), ex, cr.s.tail(10, false))
			case e.Code != nil && (ex.Signal != "" || ex.Code != *e.Code):
				return Fail, fmt.Sprintf("expected exit %d, the app ended with %s%s", *e.Code, ex, cr.s.tail(10, false))
			}
			return Pass, ex.String()
		}
		if !time.Now().Before(deadline) {
			return Fail, fmt.Sprintf("expected the app to end (%s) within %s, it is still running%s", e, e.Within, cr.s.tail(10, false))
		}
		if v, msg, stop := waitChange(ctx, ch, deadline); stop {
			return v, msg
		}
	}
}
