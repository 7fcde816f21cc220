package replay

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// ScheduleKind says how frames are spaced.
type ScheduleKind int

const (
	// Original spaces frames as their capture timestamps say.
	Original ScheduleKind = iota
	// Multiplied plays the capture Factor times faster (0.5: half speed).
	Multiplied
	// FixedRate sends PPS frames per second, evenly spaced.
	FixedRate
	// TopSpeed sends as fast as the link accepts.
	TopSpeed
)

// Schedule is a replay speed.
type Schedule struct {
	Kind   ScheduleKind
	Factor float64 // Multiplied
	PPS    float64 // FixedRate
}

func (s Schedule) String() string {
	switch s.Kind {
	case Multiplied:
		return "x" + num(s.Factor)
	case FixedRate:
		return num(s.PPS) + "pps"
	case TopSpeed:
		return "top"
	}
	return "original"
}

// The range of a schedule's number. Outside it a value is a typo, not a
// speed: 0.0001pps would put hours between two frames, x1e6 and beyond
// is top speed under another name. Whether a replay fits a time budget
// is CheckBudget's question, with the capture in hand.
const (
	MinRate   = 0.001 // frames per second
	MaxRate   = 1e8
	MinFactor = 0.001
	MaxFactor = 1e6
	// MaxLoops bounds WithLoops and a scenario's loops.
	MaxLoops = 1_000_000
)

// fastestFrame is less than any link here takes to send one frame (the
// fastest measured, qemustream into the system target, took 740 ns): the
// floor under a top-speed replay's duration, so that "top speed" cannot
// make any number of frames look instantaneous.
const fastestFrame = 100 * time.Nanosecond

// A schedule's number is written in plain decimal: no signs, exponents,
// hex, underscores, Inf or NaN, which strconv.ParseFloat would all take.
//
// Compiled on first use, not at package init, which every hil process pays for.
var (
	factorRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^x([0-9]+(?:\.[0-9]+)?)$`) })
	rateRe   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)pps$`) })
)

// ParseSchedule reads a schedule, the one syntax of `hil replay --speed`
// and a scenario's replay schedule: "original" (or ""), "top" (or
// "topspeed"), "xN" (N times the capture's speed, MinFactor <= N <=
// MaxFactor: x2, x0.25) or "Npps" (N frames per second, MinRate <= N <=
// MaxRate: 1000pps). N is a plain decimal number.
func ParseSchedule(s string) (Schedule, error) {
	switch s {
	case "", "original", "x1":
		return Schedule{Kind: Original}, nil
	case "top", "topspeed":
		return Schedule{Kind: TopSpeed}, nil
	}
	if m := factorRe().FindStringSubmatch(s); m != nil {
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil || f < MinFactor || f > MaxFactor {
			return Schedule{}, fmt.Errorf("schedule %q: the multiplier must be between x%s and x%s (top for as fast as the link goes)", s, num(MinFactor), num(MaxFactor))
		}
		return Schedule{Kind: Multiplied, Factor: f}, nil
	}
	if m := rateRe().FindStringSubmatch(s); m != nil {
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil || f < MinRate || f > MaxRate {
			return Schedule{}, fmt.Errorf("schedule %q: the rate must be between %spps and %spps (top for as fast as the link goes)", s, num(MinRate), num(MaxRate))
		}
		return Schedule{Kind: FixedRate, PPS: f}, nil
	}
	return Schedule{}, fmt.Errorf("schedule %q: expected original, top (or topspeed), xN (x2, x0.5) or Npps (1000pps), with N a plain decimal number", s)
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// CheckLoops refuses a loop count outside 1..MaxLoops.
func CheckLoops(n int) error {
	if n < 1 || n > MaxLoops {
		return fmt.Errorf("%d loops: expected 1 to %d", n, MaxLoops)
	}
	return nil
}

// Duration is when the schedule sends the last of frames records (the
// first at 0, the last span after it in the capture) played loops times:
// the time a replay takes at the least. Top speed counts a floor per
// frame. It saturates instead of overflowing.
func (s Schedule) Duration(frames int, span time.Duration, loops int) time.Duration {
	if frames <= 0 || loops <= 0 {
		return 0
	}
	total := float64(frames) * float64(loops)
	var sec float64
	switch s.Kind {
	case Original, Multiplied:
		// As planner does: a loop after the first starts one mean gap
		// after the previous loop's last frame.
		loopLen := time.Millisecond.Seconds()
		if frames > 1 {
			loopLen = span.Seconds() + span.Seconds()/float64(frames-1)
		}
		sec = float64(loops-1)*loopLen + span.Seconds()
		if s.Kind == Multiplied && s.Factor > 0 {
			sec /= s.Factor
		}
	case FixedRate:
		if s.PPS > 0 {
			sec = (total - 1) / s.PPS
		}
	}
	sec = math.Max(sec, total*fastestFrame.Seconds())
	if !(sec < float64(math.MaxInt64)/1e9) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(sec * 1e9)
}

// CheckBudget refuses a replay that cannot end within budget: frames
// records spanning span, loops times, on schedule s.
func CheckBudget(s Schedule, frames int, span time.Duration, loops int, budget time.Duration) error {
	if err := CheckLoops(loops); err != nil {
		return err
	}
	if d := s.Duration(frames, span, loops); d > budget {
		return fmt.Errorf("%d frames spanning %s, %d loop(s) at %s take at least %s: more than the %s allowed", frames, span.Round(time.Millisecond), loops, s, roundLong(d), budget)
	}
	return nil
}

// roundLong prints a duration readably, years included.
func roundLong(d time.Duration) string {
	if d == time.Duration(math.MaxInt64) {
		return "more than 292 years"
	}
	if d > 48*time.Hour {
		return fmt.Sprintf("%.0f days", d.Hours()/24)
	}
	return d.Round(time.Millisecond).String()
}
