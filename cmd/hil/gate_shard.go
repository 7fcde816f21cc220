package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/promote"
)

// runGateShard is "hil gate --shard i/n": pin the candidate as the gate
// does, test this shard's cases against the digest, write the reports, and
// promote nothing. Exit 0 when the shard's cases passed, 1 when not.
func runGateShard(cmd *cobra.Command, f *gateFlags, test promote.TestFunc, reg *promote.Registry, platforms []v1.Platform) error {
	ctx := cmd.Context()
	pin, err := promote.Pin(ctx, f.image, promote.WithRegistry(reg), promote.WithPlatforms(platforms...), promote.WithBoards(f.fleetBoards...))
	if err != nil {
		return &exitError{2, err}
	}
	res, err := test(ctx, pin)
	if err != nil {
		return &exitError{2, fmt.Errorf("testing %s (shard %s): %w", pin.Digest, f.shard, err)}
	}
	counts := map[promote.Verdict]int{}
	var bad []promote.Outcome
	for _, o := range res.Outcomes {
		counts[o.Verdict]++
		if o.Verdict != promote.Pass {
			bad = append(bad, o)
		}
	}
	w := cmd.OutOrStdout()
	state := "PASSED"
	if len(bad) > 0 {
		state = "DID NOT PASS"
	}
	fmt.Fprintf(w, "gate: shard %s %s (a shard promotes nothing)\n", f.shard, state)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  candidate\t%s\n", f.image)
	fmt.Fprintf(tw, "  tested\t%s\n", pin.Digest)
	var parts []string
	for _, v := range []promote.Verdict{promote.Pass, promote.Fail, promote.Unsupported, promote.InfraError} {
		if counts[v] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[v], v))
		}
	}
	if len(parts) == 0 {
		parts = []string{"no case in this shard"}
	}
	fmt.Fprintf(tw, "  verdicts\t%s\n", strings.Join(parts, ", "))
	fmt.Fprintf(tw, "  report\t%s\n", f.report)
	tw.Flush()
	for _, o := range bad {
		fmt.Fprintf(w, "    - %s\n", indent(o.String(), "      "))
	}
	fmt.Fprintf(w, "  next: hil report merge every shard's --report directory --out MERGED, then hil gate --results MERGED --image %s --promote TAG\n", f.image)
	if len(bad) > 0 {
		return &exitError{1, nil}
	}
	return nil
}
