// Package scenario reads hil's YAML scenario files, runs them against a
// target and decides a verdict per scenario × target × platform.
//
// A scenario names the app to run (entrypoint/args/env overrides, capture
// interface), the targets and platforms it runs on, a startup budget with a
// readiness matcher, and ordered steps: replay a fixture, expect output
// lines, expect frames the device sent, deliver a signal, wait, expect the
// exit, and lines that must never appear. See scenarios/schema.json for the
// format and scenarios/*.yaml for examples.
package scenario

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/replay"
)

// Defaults applied by the parser when a scenario leaves a field out.
const (
	DefaultTarget        = "system"
	DefaultPlatform      = "linux/arm/v7"
	DefaultIface         = "eth0"
	DefaultStartupBudget = 20 * time.Second
	DefaultReadyRegex    = `^ready `
	DefaultWithin        = 10 * time.Second
	// DefaultTimeout bounds one attempt of a case unless the scenario's
	// timeout says otherwise.
	DefaultTimeout = 5 * time.Minute
	// DefaultSettle is how long an upper-bounded count (== N, <= N, < N)
	// must hold once reached before the step passes: long enough to catch
	// a late extra line, short enough to keep suites fast.
	DefaultSettle = 500 * time.Millisecond
)

// Pos is where something was written: file:line:column.
type Pos struct {
	File   string
	Line   int
	Column int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Scenario is one parsed scenario file.
type Scenario struct {
	Pos         Pos
	Name        string
	Description string
	Tags        []string
	App         App
	Targets     []string
	Platforms   []string
	// Boards are the boards the scenario runs as (its `boards:`); empty:
	// the run's boards, or none. A board's case runs the manifest the
	// board's engine pulls from the image.
	Boards  []board.Board
	Startup Startup
	Steps   []Step
	// CaseTimeout bounds one attempt of each case of this scenario (the
	// YAML's timeout); zero means DefaultTimeout. Use Timeout.
	CaseTimeout time.Duration
	// RxOffload is how the device's capture interface coalesces received
	// frames: "" (off: every frame replayed is one frame captured) or
	// "gro" (as a board whose NIC driver does GRO: back-to-back TCP
	// segments may reach the app merged, larger than the MTU).
	RxOffload string
	// StrictDelivery makes a replay step whose frames did not all reach
	// the device's interface (its receive counters) an infra-error; by
	// default it is a warning on the step.
	StrictDelivery bool
}

// RxOffloadModes are the values rx_offload takes.
var RxOffloadModes = []string{"off", "gro"}

// Timeout is how long one attempt of a case of this scenario may take,
// boot to teardown.
func (sc *Scenario) Timeout() time.Duration {
	if sc.CaseTimeout > 0 {
		return sc.CaseTimeout
	}
	return DefaultTimeout
}

// App holds the overrides of the image config. A nil slice means "keep the
// image's own value".
type App struct {
	Entrypoint []string
	Args       []string
	Env        []string // KEY=VALUE, appended to (and overriding) the image env
	WorkingDir string
	Iface      string
}

// Startup is how long the app may take to be ready and how the harness
// recognises readiness.
type Startup struct {
	Budget time.Duration
	Ready  Matcher
	// SkipStaticCheck turns off the static startup check (ELF, loader,
	// libraries) that normally runs before any boot.
	SkipStaticCheck bool
}

// StepKind names a step type as the YAML spells it.
type StepKind string

const (
	StepReplay         StepKind = "replay"
	StepExpectOutput   StepKind = "expect_output"
	StepExpectFrames   StepKind = "expect_frames"
	StepSignal         StepKind = "signal"
	StepWait           StepKind = "wait"
	StepExpectExit     StepKind = "expect_exit"
	StepExpectNoOutput StepKind = "expect_no_output"
)

// StepKinds lists every step kind the parser accepts, in schema order.
var StepKinds = []StepKind{StepReplay, StepExpectOutput, StepExpectFrames, StepSignal, StepWait, StepExpectExit, StepExpectNoOutput}

// Step is one step; exactly one of the kind-specific fields is set.
type Step struct {
	Pos            Pos
	Kind           StepKind
	Name           string // optional label from the YAML, else derived
	Replay         *Replay
	ExpectOutput   *ExpectOutput
	ExpectFrames   *ExpectFrames
	Signal         syscall.Signal
	Wait           time.Duration
	ExpectExit     *ExpectExit
	ExpectNoOutput *Matcher
}

// Describe is a one-line human description of the step for progress lines
// and reports.
func (s Step) Describe() string {
	if s.Name != "" {
		return s.Name
	}
	switch s.Kind {
	case StepReplay:
		r := s.Replay
		d := fmt.Sprintf("replay %s (%s", r.Fixture, r.Schedule)
		if r.Loops > 1 {
			d += fmt.Sprintf(", %d loops", r.Loops)
		}
		return d + ")"
	case StepExpectOutput:
		return fmt.Sprintf("expect output %s count %s within %s", s.ExpectOutput.Match, s.ExpectOutput.Count, s.ExpectOutput.Within)
	case StepExpectFrames:
		return fmt.Sprintf("expect frames %q count %s within %s", s.ExpectFrames.Filter, s.ExpectFrames.Count, s.ExpectFrames.Within)
	case StepSignal:
		return "signal " + SignalName(s.Signal)
	case StepWait:
		return "wait " + s.Wait.String()
	case StepExpectExit:
		return "expect " + s.ExpectExit.String()
	case StepExpectNoOutput:
		return "expect no output " + s.ExpectNoOutput.String()
	}
	return string(s.Kind)
}

// Replay puts a fixture onto the device's link.
type Replay struct {
	// Fixture is the name as written (a manifest name or a path).
	Fixture string
	// Path is the resolved file, SHA256 its digest.
	Path     string
	SHA256   string
	Schedule replay.Schedule
	Loops    int
	// Within bounds the step (zero: Deadline derives one).
	Within time.Duration
	// Records and Span are what the load-time scan of the fixture found:
	// its record count and the last record's offset from the first.
	Records int
	Span    time.Duration
}

// Duration is the least time the replay takes on its schedule (the
// schedule's time for the last frame).
func (r *Replay) Duration() time.Duration {
	return r.Schedule.Duration(r.Records, r.Span, r.Loops)
}

// Deadline is how long the step may take: Within when the scenario says,
// else the replay's Duration plus room for a slow link and host (10 s,
// a tenth more, and 50 µs a frame). Zero when the fixture was never
// scanned (a Replay made in Go): the case timeout is then the only bound.
func (r *Replay) Deadline() time.Duration {
	if r.Within > 0 {
		return r.Within
	}
	if r.Records == 0 {
		return 0
	}
	d := r.Duration()
	frames := time.Duration(r.Records) * time.Duration(max(r.Loops, 1))
	slack := 10*time.Second + d/10 + frames*50*time.Microsecond
	if d > math.MaxInt64-slack {
		return math.MaxInt64
	}
	return d + slack
}

// ExpectOutput waits for lines matching Match until Count holds.
type ExpectOutput struct {
	Match  Matcher
	Count  CountExpr
	Within time.Duration
	Settle time.Duration
	// FromStep counts only lines that arrived after the step began;
	// otherwise every line since boot counts.
	FromStep bool
}

// ExpectFrames waits for frames the device sent that pass a BPF filter.
type ExpectFrames struct {
	Filter   string
	Count    CountExpr
	Within   time.Duration
	Settle   time.Duration
	FromStep bool
	match    func([]byte) bool
}

// ExpectExit waits for the app to end with a code or a signal.
type ExpectExit struct {
	Code   *int
	Signal syscall.Signal
	Within time.Duration
}

func (e *ExpectExit) String() string {
	if e.Signal != 0 {
		return fmt.Sprintf("exit by %s within %s", SignalName(e.Signal), e.Within)
	}
	if e.Code != nil {
		return fmt.Sprintf("exit %d within %s", *e.Code, e.Within)
	}
	return fmt.Sprintf("exit within %s", e.Within)
}

// CmpOp is a comparison of a count expression.
type CmpOp string

// CountExpr is a comparison like "== 24" or ">= 1".
type CountExpr struct {
	Op CmpOp
	N  float64
}

func (c CountExpr) String() string {
	return string(c.Op) + " " + strconv.FormatFloat(c.N, 'g', -1, 64)
}

// Holds reports whether v satisfies the expression.
func (c CountExpr) Holds(v float64) bool {
	switch c.Op {
	case "==":
		return v == c.N
	case "!=":
		return v != c.N
	case ">=":
		return v >= c.N
	case "<=":
		return v <= c.N
	case ">":
		return v > c.N
	case "<":
		return v < c.N
	}
	return false
}

// upperBounded says whether more matches can turn a holding expression
// false, so the runner must let it settle before passing.
func (c CountExpr) upperBounded() bool {
	return c.Op == "==" || c.Op == "<=" || c.Op == "<" || c.Op == "!="
}

// short says whether v fails the expression for being too small: a
// higher count would have held.
func (c CountExpr) short(v float64) bool {
	switch c.Op {
	case "==", ">=":
		return v < c.N
	case ">":
		return v <= c.N
	}
	return false
}

// cannotRecover says whether, counts only ever growing, v already makes the
// expression false for good.
func (c CountExpr) cannotRecover(v float64) bool {
	switch c.Op {
	case "==":
		return v > c.N
	case "<=":
		return v > c.N
	case "<":
		return v >= c.N
	}
	return false
}

// Compiled on first use, not at package init, which every hil process pays for.
var countRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*(==|!=|>=|<=|>|<)?\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$`)
})

// ParseCount reads "== 24", ">= 1", "<3" or a bare number (meaning ==).
func ParseCount(s string) (CountExpr, error) {
	m := countRe().FindStringSubmatch(s)
	if m == nil {
		return CountExpr{}, fmt.Errorf("count %q: want an operator (==, !=, >=, <=, >, <) and a number, like \"== 24\" or \">= 1\"", s)
	}
	n, err := strconv.ParseFloat(m[2], 64)
	if err != nil || math.IsInf(n, 0) {
		return CountExpr{}, fmt.Errorf("count %q: the number is too large", s)
	}
	op := CmpOp(m[1])
	if op == "" {
		op = "=="
	}
	return CountExpr{Op: op, N: n}, nil
}

// maxTally bounds the number of a count of lines or frames: far beyond
// what a case can produce, exact as a float64.
const maxTally = 1 << 53

// checkTally refuses what a count of lines or frames can never be
// compared with: a negative or fractional number (counts are whole and
// start at 0).
func (c CountExpr) checkTally() error {
	if c.N < 0 {
		return fmt.Errorf("count %q: a count of lines or frames is never negative; want 0 or more", c)
	}
	if c.N != math.Trunc(c.N) || c.N > maxTally {
		return fmt.Errorf("count %q: want a whole number of lines or frames (0 to %d)", c, int64(maxTally))
	}
	return nil
}

var signals = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
	"KILL": syscall.SIGKILL, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2, "ABRT": syscall.SIGABRT, "SEGV": syscall.SIGSEGV,
	"PIPE": syscall.SIGPIPE, "ALRM": syscall.SIGALRM, "STOP": syscall.SIGSTOP,
	"CONT": syscall.SIGCONT, "BUS": syscall.SIGBUS, "ILL": syscall.SIGILL,
	"FPE": syscall.SIGFPE, "TRAP": syscall.SIGTRAP,
}

// ParseSignal reads TERM, SIGTERM or sigterm.
func ParseSignal(s string) (syscall.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	if sig, ok := signals[n]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: want one of TERM, INT, HUP, KILL, QUIT, USR1, USR2, ABRT, SEGV, ...", s)
}

// SignalName is the SIGXXX name of sig.
func SignalName(sig syscall.Signal) string {
	for n, s := range signals {
		if s == sig {
			return "SIG" + n
		}
	}
	return fmt.Sprintf("signal %d", int(sig))
}
