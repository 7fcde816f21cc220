package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
)

// runGateShard is "hil gate --shard i/n": pin the candidate as the gate
// does, test this shard's cases against the digest, write the reports, and
// promote nothing. Exit 0 when the shard's cases passed, 1 when not.
func runGateShard(cmd *cobra.Command, f *gateFlags, test promote.TestFunc, reg *promote.Registry, platforms []v1.Platform) error {
	ctx := cmd.Context()
	pin, err := promote.Pin(ctx, f.image, promote.WithRegistry(reg), promote.WithPlatforms(platforms...))
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

// resultsTester is the test of "hil gate --results DIR": no boot, the
// verdicts come from a merged results.json. It vouches for the pinned
// digest only when the results are for exactly that digest and hold a
// result for every case the gate's scenarios plan on its target and
// required platforms; a case without a result is an infra-error (hil cannot
// know how it went), so the gate refuses.
func resultsTester(f *gateFlags) (promote.TestFunc, error) {
	// Read both before anything is pinned: unreadable input is an error of
	// the gate's input, not a verdict.
	rep, err := report.ReadDir(f.results)
	if err != nil {
		return nil, fmt.Errorf("--results: %w", err)
	}
	scs, err := scenario.LoadFiles([]string{f.scenarios})
	if err != nil {
		return nil, fmt.Errorf("loading scenarios from %s: %w", f.scenarios, err)
	}
	return func(ctx context.Context, pin promote.Pinned) (promote.Result, error) {
		res := promote.Result{Started: rep.Start, Finished: rep.Start.Add(rep.Duration), ReportDir: f.results, Targets: []string{f.target}}
		digest := pin.Digest.DigestStr()
		var platforms []string
		for _, p := range pin.Required {
			platforms = append(platforms, p.String())
		}
		if rep.ImageDigest != digest {
			for _, p := range platforms {
				res.Outcomes = append(res.Outcomes, promote.Outcome{Platform: p, Target: f.target, Scenario: "(results)", Verdict: promote.InfraError,
					Reason: fmt.Sprintf("the results in %s are for %s (%s), not for the pinned candidate %s: they cannot vouch for it", f.results, orNone(rep.ImageDigest), rep.ImageRef, digest)})
			}
			return res, nil
		}
		plan := scenario.PlanCases(scs, []string{f.target}, platforms)
		if len(plan) == 0 {
			return res, fmt.Errorf("no scenario in %s runs on target %s", f.scenarios, f.target)
		}
		byKey := map[scenario.CaseKey]scenario.Result{}
		for _, r := range rep.Results {
			if r.ImageDigest == digest {
				byKey[r.Key()] = r
			}
		}
		var used []scenario.Result
		res.Fixtures = map[string]string{}
		roots := gateRoots(f)
		for _, c := range plan {
			k := c.Key()
			r, ok := byKey[k]
			if !ok {
				res.Outcomes = append(res.Outcomes, promote.Outcome{Platform: k.Platform, Target: k.Target, Scenario: k.Scenario, Verdict: promote.InfraError,
					Reason: fmt.Sprintf("no result for this case in %s: the merged shards do not cover every case the scenarios plan (a shard missing or interrupted?)", f.results)})
				continue
			}
			delete(byKey, k)
			used = append(used, r)
			res.Outcomes = append(res.Outcomes, promote.Outcome{Platform: r.Platform, Target: r.Target, Board: boardOf(r.Target), Scenario: r.Scenario,
				Verdict: promote.Verdict(r.Verdict), Reason: attest.ScrubString(r.Reason, roots), Attempts: r.Attempts})
			for k, v := range r.Fixtures {
				res.Fixtures[attest.ScrubString(k, roots)] = v
			}
		}
		if len(byKey) > 0 && f.progress != nil {
			var extra []string
			for k := range byKey {
				extra = append(extra, k.String())
			}
			sort.Strings(extra)
			fmt.Fprintf(f.progress, "hil gate: %d result(s) in %s are not cases of these scenarios on %s and are not judged: %s\n", len(extra), f.results, f.target, strings.Join(extra, ", "))
		}
		res.Configuration = attest.RunConfiguration(f.scenarios, scs, used)
		res.Report = attestationReport(used, roots)
		return res, nil
	}, nil
}
