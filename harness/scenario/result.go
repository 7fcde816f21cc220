package scenario

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/jsonfmt"
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
// a report shows. Its JSON is results.json's (schemas/results.schema.json):
// durations are numbers of milliseconds named *_ms.
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

	// StaticCheck is what the static startup check found for this case.
	// A report lists each distinct check once (Report.StaticChecks) and
	// the result names it by StaticCheckID.
	StaticCheck   *StaticCheck `json:"-"`
	StaticCheckID string       `json:"static_check,omitempty"`
	// Device is what the device said about itself (target.InfoKeys).
	Device target.Info `json:"device,omitempty"`
	// ConsoleLog is the guest console's log, relative to the report
	// directory it was copied into (console/...); empty before a report
	// copied it, or for targets without a console.
	ConsoleLog string `json:"console_log,omitempty"`
	// Fixtures maps each replayed fixture to its sha256.
	Fixtures map[string]string `json:"fixtures,omitempty"`

	Steps []StepResult `json:"steps"`
	// Output is the app's output and the console, in arrival order (capped;
	// see OutputDropped).
	Output        []target.Line `json:"output,omitempty"`
	OutputDropped int           `json:"output_dropped,omitempty"`
	// Exit is how the app ended: observed, or why not ("not observed
	// (stopped by hil)").
	Exit *target.Exit `json:"exit,omitempty"`

	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"-"`
	// Attempts counts boots (more than one when infra errors were retried);
	// Retried holds the reasons of the attempts that were thrown away.
	Attempts int      `json:"attempts"`
	Retried  []string `json:"retried,omitempty"`
}

type resultJSON Result

// MarshalJSON writes the duration as duration_ms.
func (r Result) MarshalJSON() ([]byte, error) {
	if r.Steps == nil {
		r.Steps = []StepResult{}
	}
	return json.Marshal(struct {
		resultJSON
		DurationMS float64 `json:"duration_ms"`
	}{resultJSON(r), jsonfmt.Millis(r.Duration)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Result) UnmarshalJSON(b []byte) error {
	var v struct {
		resultJSON
		DurationMS float64 `json:"duration_ms"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Result(v.resultJSON)
	r.Duration = jsonfmt.Duration(v.DurationMS)
	return nil
}

// StaticCheck is one static startup check of a case: the platform's
// manifest checked with the case's command. Cases with the same check
// share one entry in a report.
type StaticCheck struct {
	// ID names the check in a report ("linux/arm/v7", "linux/arm/v7 #2"
	// when one platform was checked with different commands).
	ID             string `json:"id"`
	ImageDigest    string `json:"image_digest,omitempty"`
	ManifestDigest string `json:"manifest_digest,omitempty"`
	Platform       string `json:"platform"`
	// OK is true when nothing would stop the program from starting.
	OK bool `json:"ok"`
	// Problems say why it would not start, one each.
	Problems []string `json:"problems,omitempty"`
	// Summary is the check's tree (loader, libraries, where each was
	// found), for a person.
	Summary string `json:"summary,omitempty"`
}

// Same reports whether c and o are the same check's outcome (their IDs
// aside).
func (c *StaticCheck) Same(o *StaticCheck) bool {
	return c.ImageDigest == o.ImageDigest && c.ManifestDigest == o.ManifestDigest && c.Platform == o.Platform &&
		c.OK == o.OK && c.Summary == o.Summary && slices.Equal(c.Problems, o.Problems)
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
	Index   int      `json:"index"`
	Kind    StepKind `json:"kind"`
	Desc    string   `json:"desc"`
	Pos     string   `json:"pos,omitempty"`
	Verdict Verdict  `json:"verdict"`
	Message string   `json:"message,omitempty"`
	// NearMisses are, for a count that failed, output lines that nearly
	// matched (see the scenario README); also in Message.
	NearMisses []string      `json:"near_misses,omitempty"`
	Start      time.Time     `json:"start"`
	Duration   time.Duration `json:"-"`
	Replay     *ReplayStats  `json:"replay,omitempty"`
	// Warnings are what a step that passed did not account for (frames
	// sent that the device's interface did not count as received).
	Warnings []string `json:"warnings,omitempty"`
}

type stepJSON StepResult

// MarshalJSON writes the duration as duration_ms.
func (s StepResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		stepJSON
		DurationMS float64 `json:"duration_ms"`
	}{stepJSON(s), jsonfmt.Millis(s.Duration)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *StepResult) UnmarshalJSON(b []byte) error {
	var v struct {
		stepJSON
		DurationMS float64 `json:"duration_ms"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = StepResult(v.stepJSON)
	s.Duration = jsonfmt.Duration(v.DurationMS)
	return nil
}

// ReplayStats is what a replay step did.
type ReplayStats struct {
	Fixture     string        `json:"fixture"`
	SHA256      string        `json:"sha256,omitempty"`
	Schedule    string        `json:"schedule"`
	FramesSent  int64         `json:"frames_sent"`
	BytesSent   int64         `json:"bytes_sent"`
	Skipped     int64         `json:"skipped"`
	Elapsed     time.Duration `json:"-"`
	PPS         float64       `json:"pps"`
	GapErrorP50 time.Duration `json:"-"`
	GapErrorP99 time.Duration `json:"-"`
	GapErrorMax time.Duration `json:"-"`
	// Delivery is what the device's capture interface counted over the
	// step, read on the device (nil where the target cannot): frames
	// received and dropped, and what a capture on it saw (after any
	// receive coalescing: with rx_offload gro, fewer and larger frames).
	Delivery *link.Counters `json:"delivery,omitempty"`
}

type replayJSON ReplayStats

type replayTimes struct {
	ElapsedMS     float64 `json:"elapsed_ms"`
	GapErrorP50MS float64 `json:"gap_error_p50_ms"`
	GapErrorP99MS float64 `json:"gap_error_p99_ms"`
	GapErrorMaxMS float64 `json:"gap_error_max_ms"`
}

// MarshalJSON writes the durations as *_ms.
func (s ReplayStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		replayJSON
		replayTimes
	}{replayJSON(s), replayTimes{jsonfmt.Millis(s.Elapsed), jsonfmt.Millis(s.GapErrorP50), jsonfmt.Millis(s.GapErrorP99), jsonfmt.Millis(s.GapErrorMax)}})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *ReplayStats) UnmarshalJSON(b []byte) error {
	var v struct {
		replayJSON
		replayTimes
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = ReplayStats(v.replayJSON)
	s.Elapsed, s.GapErrorP50 = jsonfmt.Duration(v.ElapsedMS), jsonfmt.Duration(v.GapErrorP50MS)
	s.GapErrorP99, s.GapErrorMax = jsonfmt.Duration(v.GapErrorP99MS), jsonfmt.Duration(v.GapErrorMaxMS)
	return nil
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
