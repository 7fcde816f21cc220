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
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults applied by the parser when a scenario leaves a field out.
const (
	DefaultTarget        = "system"
	DefaultPlatform      = "linux/arm/v7"
	DefaultIface         = "eth0"
	DefaultStartupBudget = 20 * time.Second
	DefaultReadyRegex    = `^ready `
	DefaultWithin        = 10 * time.Second
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
	Startup     Startup
	Steps       []Step
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
	// Path is the resolved file, SHA256 its digest when the manifest has it.
	Path     string
	SHA256   string
	Schedule Schedule
	Loops    int
}

// ScheduleKind is how replay times the frames.
type ScheduleKind string

const (
	ScheduleOriginal   ScheduleKind = "original"
	ScheduleMultiplier ScheduleKind = "multiplier"
	SchedulePPS        ScheduleKind = "pps"
	ScheduleTopSpeed   ScheduleKind = "topspeed"
)

// Schedule is a replay timing: original, xN, Npps or topspeed.
type Schedule struct {
	Kind  ScheduleKind
	Value float64 // the multiplier or the rate
}

func (s Schedule) String() string {
	switch s.Kind {
	case ScheduleMultiplier:
		return "x" + strconv.FormatFloat(s.Value, 'g', -1, 64)
	case SchedulePPS:
		return strconv.FormatFloat(s.Value, 'g', -1, 64) + "pps"
	}
	return string(s.Kind)
}

// ParseSchedule reads "original", "topspeed", "x2", "x0.5" or "1000pps".
func ParseSchedule(s string) (Schedule, error) {
	switch {
	case s == "original" || s == "":
		return Schedule{Kind: ScheduleOriginal}, nil
	case s == "topspeed":
		return Schedule{Kind: ScheduleTopSpeed}, nil
	case strings.HasPrefix(s, "x"):
		v, err := strconv.ParseFloat(s[1:], 64)
		if err != nil || v <= 0 {
			return Schedule{}, fmt.Errorf("schedule %q: want a positive multiplier after x, like x2 or x0.5", s)
		}
		return Schedule{Kind: ScheduleMultiplier, Value: v}, nil
	case strings.HasSuffix(s, "pps"):
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "pps")), 64)
		if err != nil || v <= 0 {
			return Schedule{}, fmt.Errorf("schedule %q: want a positive rate before pps, like 1000pps", s)
		}
		return Schedule{Kind: SchedulePPS, Value: v}, nil
	}
	return Schedule{}, fmt.Errorf("schedule %q: want original, topspeed, xN (e.g. x2, x0.5) or Npps (e.g. 1000pps)", s)
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

var countRe = regexp.MustCompile(`^\s*(==|!=|>=|<=|>|<)?\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$`)

// ParseCount reads "== 24", ">= 1", "<3" or a bare number (meaning ==).
func ParseCount(s string) (CountExpr, error) {
	m := countRe.FindStringSubmatch(s)
	if m == nil {
		return CountExpr{}, fmt.Errorf("count %q: want an operator (==, !=, >=, <=, >, <) and a number, like \"== 24\" or \">= 1\"", s)
	}
	n, _ := strconv.ParseFloat(m[2], 64)
	op := CmpOp(m[1])
	if op == "" {
		op = "=="
	}
	return CountExpr{Op: op, N: n}, nil
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
