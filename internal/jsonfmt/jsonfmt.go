// Package jsonfmt holds the conventions of every JSON file and --json
// output hil writes (see schemas/README.md): durations are numbers of
// milliseconds named *_ms, times are RFC 3339 strings, keys are
// snake_case, and a failed --json verb prints an Error object.
package jsonfmt

import (
	"encoding/json"
	"io"
	"math"
	"time"
)

// Millis is d as a number of milliseconds, to the microsecond: whole when
// d is (boot_ms: 333), else with a fraction (check_ms: 0.69).
func Millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// Duration is the time.Duration of ms milliseconds (Millis's inverse, to
// the nanosecond).
func Duration(ms float64) time.Duration {
	return time.Duration(math.Round(ms * float64(time.Millisecond)))
}

// ErrorBody is what a --json verb that failed prints instead of its data:
// {"error": {"message": "...", "exit_code": 2}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong and the exit status hil returns.
type ErrorDetail struct {
	Message  string `json:"message"`
	ExitCode int    `json:"exit_code"`
}

// Write writes v as indented JSON and a newline: every --json output.
func Write(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
