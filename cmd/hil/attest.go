package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/promote"
)

func init() {
	attest := &cobra.Command{
		Use:   "attest",
		Short: "Read the test results hil attached to image digests",
	}
	var insecure, asJSON bool
	show := &cobra.Command{
		Use:   "show REF",
		Short: "Print the hil test results attached to the digest REF points at",
		Long: `show resolves REF (a tag or a digest) to a digest and prints every hil test
result attached to it as an OCI referrer (an in-toto statement with the
https://hil.dev/test-result/v1 predicate). It uses the registry's referrers
API and falls back to the referrers tag schema (tag sha256-<hex>) for
registries without it. Exit 0 when at least one was found, 1 when none, 2 on
error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg := registryAccess(insecure)
			subject, atts, err := promote.Find(cmd.Context(), reg, args[0])
			if err != nil {
				return &exitError{2, err}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				var sts []promote.Statement
				for _, a := range atts {
					sts = append(sts, a.Statement)
				}
				if sts == nil {
					sts = []promote.Statement{}
				}
				if err := printJSON(out, sts); err != nil {
					return &exitError{2, err}
				}
			} else {
				printAttestations(out, subject.String(), atts)
			}
			if len(atts) == 0 {
				return &exitError{1, nil}
			}
			return nil
		},
	}
	show.Flags().BoolVar(&insecure, "insecure", false, insecureUsage)
	show.Flags().BoolVar(&asJSON, "json", false, "print the in-toto statements as a JSON array")
	attest.AddCommand(show)
	rootCmd.AddCommand(attest)
}

func printAttestations(w io.Writer, subject string, atts []promote.Attestation) {
	if len(atts) == 0 {
		fmt.Fprintf(w, "no hil test result is attached to %s\n", subject)
		return
	}
	fmt.Fprintf(w, "%d hil test result(s) attached to %s\n", len(atts), subject)
	for _, a := range atts {
		p := a.Statement.Predicate
		fmt.Fprintf(w, "\nattestation %s\n", a.Digest.DigestStr())
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  result\t%s\n", strings.ToUpper(p.Result))
		fmt.Fprintf(tw, "  reason\t%s\n", p.Reason)
		fmt.Fprintf(tw, "  candidate\t%s\n", p.Candidate)
		fmt.Fprintf(tw, "  platforms\t%s (present: %s)\n", strings.Join(p.Platforms, ", "), strings.Join(p.PlatformsPresent, ", "))
		if len(p.Targets) > 0 {
			fmt.Fprintf(tw, "  targets\t%s\n", strings.Join(p.Targets, ", "))
		}
		fmt.Fprintf(tw, "  tested\t%s .. %s\n", p.Started.Format("2006-01-02 15:04:05Z07:00"), p.Finished.Format("15:04:05"))
		fmt.Fprintf(tw, "  hil\t%s\n", p.HIL.Version)
		var names []string
		for f := range p.Fixtures {
			names = append(names, f)
		}
		sort.Strings(names)
		for _, f := range names {
			fmt.Fprintf(tw, "  fixture\t%s sha256:%s\n", f, p.Fixtures[f])
		}
		tw.Flush()
		for _, o := range p.Outcomes {
			line := fmt.Sprintf("    %-11s %s [%s %s]", o.Verdict, o.Scenario, o.Target, o.Platform)
			if o.Reason != "" {
				line += ": " + o.Reason
			}
			fmt.Fprintln(w, line)
		}
	}
}
