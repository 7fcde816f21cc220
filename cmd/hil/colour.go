package main

import (
	"io"
	"os"

	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/scenario"
)

// ANSI colours for verdicts. They are written only to a terminal, and
// never when NO_COLOR is set (https://no-color.org).
const (
	ansiRed    = "31"
	ansiGreen  = "32"
	ansiYellow = "33"
	ansiBlue   = "34"
	ansiPurple = "35"
)

// useColour reports whether w is a terminal that may get colours.
func useColour(w io.Writer) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	f, ok := w.(*os.File)
	return ok && isTerminal(f) && os.Getenv("TERM") != "dumb"
}

// colour wraps s in the ANSI colour code when w may get colours.
func colour(w io.Writer, code, s string) string {
	if code == "" || !useColour(w) {
		return s
	}
	return "\033[" + code + "m" + s + "\033[0m"
}

func verdictColour(v string) string {
	switch v {
	case promote.Promoted, string(scenario.Pass), "PASS":
		return ansiGreen
	case promote.Refused, string(scenario.Fail), "FAIL":
		return ansiRed
	case promote.Error, string(scenario.InfraError), "INFRA-ERROR":
		return ansiPurple
	case string(scenario.Unsupported), "UNSUPPORTED":
		return ansiYellow
	case promote.WouldPromote:
		return ansiBlue
	}
	return ""
}
