package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
)

func init() {
	reportCmd := &cobra.Command{
		Use:   "report",
		Short: "Work with report directories (merge the reports of a sharded run)",
	}
	var out string
	var asJSON bool
	merge := &cobra.Command{
		Use: "merge DIR... [--out DIR]",
		Example: `  hil report merge shard-1 shard-2 shard-3 --out report
  hil report merge shard-* --out report --json`,
		Short: "Merge the report directories of a sharded run into one junit.xml, results.json and report.html",
		Long: `merge reads the results.json of each DIR (the --report directories of the
shards of one "hil run --shard i/n" or "hil gate --shard i/n") and writes one
junit.xml, results.json and report.html into --out.

It refuses reports that tested different image digests (naming both), a
case with results in two shards, and, when the reports are shards, a
missing or repeated shard or shards of different splits. "hil gate
--results DIR" then decides from the merged results.

Exit status: 0 merged, 2 refused or unreadable.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			outAbs, err := filepath.Abs(out)
			if err != nil {
				return &exitError{2, err}
			}
			var shards []report.Shard
			for _, d := range dirs {
				if abs, err := filepath.Abs(d); err == nil && abs == outAbs {
					return &exitError{2, fmt.Errorf("--out %s is one of the reports to merge: give another directory", out)}
				}
				r, err := report.ReadDir(d)
				if err != nil {
					return &exitError{2, err}
				}
				shards = append(shards, report.Shard{Name: d, Report: r})
			}
			merged, warnings, err := report.Merge(shards)
			if err != nil {
				return &exitError{2, err}
			}
			w := cmd.OutOrStdout()
			for _, warn := range warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "hil report merge: warning: %s\n", warn)
			}
			paths, err := merged.WriteDir(out)
			if err != nil {
				return &exitError{2, err}
			}
			if asJSON {
				if warnings == nil {
					warnings = []string{}
				}
				return printJSON(w, struct {
					MergedFrom  []string         `json:"merged_from"`
					ImageRef    string           `json:"image_ref,omitempty"`
					ImageDigest string           `json:"image_digest,omitempty"`
					Summary     scenario.Summary `json:"summary"`
					Files       []string         `json:"files"`
					Warnings    []string         `json:"warnings"`
				}{merged.MergedFrom, merged.ImageRef, merged.ImageDigest, merged.Summary, paths, warnings})
			}
			s := merged.Summary
			fmt.Fprintf(w, "merged %d report(s) of %s: %d case(s): %d pass, %d fail, %d unsupported, %d infra-error\n",
				len(shards), orNone(merged.ImageDigest), s.Total, s.Pass, s.Fail, s.Unsupported, s.InfraError)
			fmt.Fprintf(w, "reports: %s\n", strings.Join(paths, " "))
			return nil
		},
	}
	merge.Flags().StringVarP(&out, "out", "o", "hil-report", "directory for the merged junit.xml, results.json and report.html")
	merge.Flags().BoolVar(&asJSON, "json", false, "print what was merged (summary, files, warnings) as JSON")
	reportCmd.AddCommand(merge)
	rootCmd.AddCommand(reportCmd)
}
