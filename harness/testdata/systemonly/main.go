// Command systemonly is a program that uses hil's library with the system
// target only, as a team's own tool would: the budget test lists what it
// links (no Docker client, no SSH, no OpenTelemetry) and the bench builds
// it to print its size (scripts/bench/05-budgets.sh).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/report"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: systemonly IMAGE SCENARIOS")
		os.Exit(2)
	}
	results, err := harness.RunScenarios(context.Background(), harness.Config{Image: os.Args[1], Scenarios: []string{os.Args[2]}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if _, err := report.New(results).WriteDir("report"); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
