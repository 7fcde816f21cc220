package scenario

import (
	"strings"
	"time"

	"github.com/hilproject/hil/harness/target"
)

// Verdict is the outcome of one scenario on one target and platform.
type Verdict string

const (
	// Pass: every step held.
	Pass Verdict = "pass"
	// Fail: the app did something wrong (or could not start); Reason says
	// which step, what was expected and what was seen.
	Fail Verdict = "fail"
	// Unsupported: the target cannot do what a step needs (e.g. capture
	// under qemu-user); Reason says why. Never a pass.
	Unsupported Verdict = "unsupported"
	// InfraError: the harness, host or emulator failed, even after retries.
	// Never a pass.
	InfraError Verdict = "infra-error"
)

// Phase names for the step results that the runner adds around the
// scenario's own steps.
const (
	PhaseImage       StepKind = "image"
	PhaseStaticCheck StepKind = "static_check"
	PhaseBoot        StepKind = "boot"
	PhaseReady       StepKind = "ready"
	PhaseTeardown    StepKind = "teardown"
)

// Result is the verdict of one scenario × target × platform with everything
// a report shows.
type Result struct {
	Scenario    string   `json:"scenario"`
	File        string   `json:"file"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	Target      string   `json:"target"`
	// Board is the board the case ran as ("" without one: see BoardOf).
	Board    string `json:"board,omitempty"`
	Platform string `json:"platform"`

	Verdict Verdict `json:"verdict"`
	// Reason is one paragraph: for fail, the step, the expectation and what
	// was seen; for unsupported and infra-error, why.
	Reason string `json:"reason,omitempty"`
	// FailedStep is the index into Steps of the step that decided a
	// non-pass verdict, or -1.
	FailedStep int `json:"failed_step"`

	ImageRef       string `json:"image_ref,omitempty"`
	ImageDigest    string `json:"image_digest,omitempty"`
	ManifestDigest string `json:"manifest_digest,omitempty"`

	// StaticCheck is the static startup check's summary (or its problems).
	StaticCheck string            `json:"static_check,omitempty"`
	Device      map[string]string `json:"device,omitempty"`
	// Fixtures maps each replayed fixture to its sha256.
	Fixtures map[string]string `json:"fixtures,omitempty"`

	Steps []StepResult `json:"steps"`
	// Output is the app's output and the console, in arrival order (capped;
	// see OutputDropped).
	Output        []target.Line `json:"output,omitempty"`
	OutputDropped int           `json:"output_dropped,omitempty"`
	Exit          *target.Exit  `json:"exit,omitempty"`

	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	// Attempts counts boots (more than one when infra errors were retried);
	// Retried holds the reasons of the attempts that were thrown away.
	Attempts int      `json:"attempts"`
	Retried  []string `json:"retried,omitempty"`
}

// ID names the case as "scenario [target board platform]" (no board when
// the case had none).
func (r *Result) ID() string { return r.Key().String() }

// BoardOf is the board a result's case ran as, as attestations name it:
// its board, or without one the system target's generic machine, "virt";
// "" for other targets without a board (they model none).
func (r *Result) BoardOf() string {
	switch {
	case r.Board != "":
		return r.Board
	case r.Target == "system" || strings.HasPrefix(r.Target, "system@"):
		return "virt"
	}
	return ""
}

// StepResult is the outcome and timing of one step (or runner phase).
type StepResult struct {
	// Index is the step's index in the scenario, -1 for runner phases.
	Index    int           `json:"index"`
	Kind     StepKind      `json:"kind"`
	Desc     string        `json:"desc"`
	Pos      string        `json:"pos,omitempty"`
	Verdict  Verdict       `json:"verdict"`
	Message  string        `json:"message,omitempty"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	Replay   *ReplayStats  `json:"replay,omitempty"`
}

// ReplayStats is what a replay step did.
type ReplayStats struct {
	Fixture     string        `json:"fixture"`
	SHA256      string        `json:"sha256,omitempty"`
	Schedule    string        `json:"schedule"`
	FramesSent  int64         `json:"frames_sent"`
	BytesSent   int64         `json:"bytes_sent"`
	Skipped     int64         `json:"skipped"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	PPS         float64       `json:"pps"`
	GapErrorP50 time.Duration `json:"gap_error_p50_ns"`
	GapErrorP99 time.Duration `json:"gap_error_p99_ns"`
	GapErrorMax time.Duration `json:"gap_error_max_ns"`
}

// Summary counts verdicts over results.
type Summary struct {
	Total       int `json:"total"`
	Pass        int `json:"pass"`
	Fail        int `json:"fail"`
	Unsupported int `json:"unsupported"`
	InfraError  int `json:"infra_error"`
}

// Summarize counts the verdicts of rs.
func Summarize(rs []Result) Summary {
	s := Summary{Total: len(rs)}
	for _, r := range rs {
		switch r.Verdict {
		case Pass:
			s.Pass++
		case Fail:
			s.Fail++
		case Unsupported:
			s.Unsupported++
		default:
			s.InfraError++
		}
	}
	return s
}
