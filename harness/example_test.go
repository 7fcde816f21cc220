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

// In a Ginkgo suite, make one runner per image and one spec per case, as
// hil's own suite_test.go does.
func ExampleNewRunner() {
	ctx := context.Background()
	runner, img, err := harness.NewRunner(ctx, harness.Config{Image: "oci:build/images/pcapwatch"})
	if err != nil {
		panic(err)
	}
	scs, err := scenario.LoadDir("scenarios")
	if err != nil {
		panic(err) // file:line:column of every problem
	}
	for _, sc := range scs {
		for _, c := range runner.Plan(sc) {
			res := runner.Run(ctx, c) // boots, runs the steps, always tears down
			fmt.Println(img.Digest(), res.ID(), res.Verdict)
		}
	}
}
