package harness_test

import (
	"context"
	"fmt"
	"os"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
)

// Run your own scenarios against your image from a go test or a program:
// every case's verdict comes back, and the reports go where CI finds them.
func Example() {
	ctx := context.Background()
	results, err := harness.RunScenarios(ctx, harness.Config{
		Image:     "oci:build/images/pcapwatch", // or registry.example.com/app:candidate
		Scenarios: []string{"scenarios"},        // files or directories
		Targets:   []string{"system"},           // qemu-system-arm, the default
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if _, err := report.New(results).WriteDir("build/report"); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	for _, r := range results {
		if r.Verdict != scenario.Pass {
			fmt.Printf("%s: %s\n%s\n", r.ID(), r.Verdict, r.Reason)
		}
	}
}

// Plan a run without opening the image (what a test framework needs while
// it builds its tests: harness/hiltest and harness/hilginkgo are built on
// this), then run each case; the image is opened by the first Run.
func ExampleLoadSuite() {
	ctx := context.Background()
	suite, err := harness.LoadSuite(harness.Config{
		Image:     "oci:build/images/pcapwatch",
		Scenarios: []string{"scenarios"},
	})
	if err != nil {
		panic(err) // file:line:column of every problem in the scenarios
	}
	for _, c := range suite.Cases() {
		res, err := suite.Run(ctx, c) // boots, runs the steps, always tears down
		if err != nil {
			panic(err) // the image could not be opened
		}
		fmt.Println(harness.CaseName(c), res.Verdict, res.ImageDigest)
	}
}
