package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/promote"
)

// gateFlags are the flags of "hil gate"; the tester gets them too.
type gateFlags struct {
	image     string
	scenarios string
	tag       string
	platforms string
	target    string
	device    string
	report    string
	retries   int
	dryRun    bool
	insecure  bool
	asJSON    bool
}

func init() {
	f := &gateFlags{}
	cmd := &cobra.Command{
		Use:   "gate --image REF --scenarios DIR --promote TAG",
		Short: "Test an image by digest and promote a tag to exactly that digest when everything passed",
		Long: `gate pins --image to a digest once, requires every --platforms entry to be in
it, runs the static startup check and every scenario of --scenarios on
--target for each required platform (infra-errors are retried --retries
times), and only when everything passed re-resolves --image (refusing if it
moved meanwhile) and points --promote at the tested digest, pushing the
manifest or index as-is so the digest and every platform go along. The test
result is attached to the digest as an in-toto OCI referrer (see "hil attest
show").

--promote is a tag name in the image's repository (latest) or a full
reference (host/repo:tag). Credentials come from the Docker config and its
credential helpers. Exit 0 promoted (or would be, with --dry-run), 1 refused,
2 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGate(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.image, "image", "", "candidate image in a registry: host/repo:tag or host/repo@sha256:... (required)")
	fl.StringVar(&f.scenarios, "scenarios", "scenarios", "directory of scenario YAML files")
	fl.StringVar(&f.tag, "promote", "", "tag to move to the tested digest: a tag name (latest) or host/repo:tag (required)")
	fl.StringVar(&f.platforms, "platforms", promote.DefaultPlatform.String(), "comma-separated platforms that must be present and pass")
	fl.StringVar(&f.target, "target", "system", "target to run the scenarios on: system, user, container or device")
	fl.StringVar(&f.device, "device", "", "board to use with --target device (name or user@host)")
	fl.StringVar(&f.report, "report", "hil-report", "directory for the reports (JUnit, JSON, HTML) and the gate decision")
	fl.IntVar(&f.retries, "retries", 2, "how many times to re-run when the only problems are infrastructure errors")
	fl.BoolVar(&f.dryRun, "dry-run", false, "do everything but write the tag and the attestation")
	fl.BoolVar(&f.insecure, "insecure", false, "plain HTTP to the registry (loopback registries only)")
	fl.BoolVar(&f.asJSON, "json", false, "print the decision as JSON instead of text")
	_ = cmd.MarkFlagRequired("image")
	_ = cmd.MarkFlagRequired("promote")
	rootCmd.AddCommand(cmd)
}

func runGate(cmd *cobra.Command, f *gateFlags) error {
	platforms, err := promote.ParsePlatforms(f.platforms)
	if err != nil {
		return &exitError{2, err}
	}
	if f.retries < 0 {
		return &exitError{2, fmt.Errorf("--retries %d: want 0 or more", f.retries)}
	}
	if f.target == "device" && f.device == "" {
		return &exitError{2, fmt.Errorf("--target device needs --device NAME (the board to test on)")}
	}
	report, err := filepath.Abs(f.report)
	if err != nil {
		return &exitError{2, err}
	}
	f.report = report
	test, err := gateTester(f)
	if err != nil {
		return &exitError{2, err}
	}
	reg := registryAccess(f.insecure, 0)
	opts := []promote.Option{
		promote.WithRegistry(reg),
		promote.WithPlatforms(platforms...),
		promote.WithRetries(f.retries),
		promote.WithVersion(hilVersion()),
		promote.WithLog(func(format string, args ...any) {
			fmt.Fprintf(cmd.ErrOrStderr(), "hil gate: "+format+"\n", args...)
		}),
	}
	if f.dryRun {
		opts = append(opts, promote.WithDryRun())
	}
	d, gerr := promote.Gate(cmd.Context(), f.image, f.tag, test, opts...)
	if d != nil {
		if werr := writeDecision(f.report, d); werr != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "hil gate: warning: %v\n", werr)
		}
		out := cmd.OutOrStdout()
		if f.asJSON {
			_ = printJSON(out, d)
		} else {
			printDecision(out, d, f.report, gerr)
		}
	}
	switch {
	case gerr != nil:
		return &exitError{2, gerr}
	case d.Promoted || (d.DryRun && d.Passed):
		return nil
	default:
		return &exitError{1, nil}
	}
}

// writeDecision leaves decision.json beside the runner's reports.
func writeDecision(dir string, d *promote.Decision) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating report dir: %w", err)
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "decision.json"), append(b, '\n'), 0o644)
}

func printDecision(w io.Writer, d *promote.Decision, reportDir string, gerr error) {
	verdict := "REFUSED"
	switch {
	case gerr != nil:
		verdict = "ERROR"
	case d.Promoted:
		verdict = "PROMOTED"
	case d.DryRun && d.Passed:
		verdict = "WOULD PROMOTE (dry run)"
	}
	fmt.Fprintf(w, "gate: %s\n", verdict)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  candidate\t%s\n", d.Candidate)
	if d.Tested != "" {
		fmt.Fprintf(tw, "  tested\t%s\n", d.Tested)
	}
	if len(d.Platforms) > 0 {
		fmt.Fprintf(tw, "  platforms\t%s\n", strings.Join(d.Platforms, ", "))
	}
	if n := len(d.Result.Outcomes); n > 0 {
		counts := map[promote.Verdict]int{}
		for _, o := range d.Result.Outcomes {
			counts[o.Verdict]++
		}
		var parts []string
		for _, v := range []promote.Verdict{promote.Pass, promote.Fail, promote.Unsupported, promote.InfraError} {
			if counts[v] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", counts[v], v))
			}
		}
		fmt.Fprintf(tw, "  verdicts\t%s (attempts: %d)\n", strings.Join(parts, ", "), d.Attempts)
	}
	fmt.Fprintf(tw, "  tag\t%s\n", d.Tag)
	fmt.Fprintf(tw, "  old digest\t%s\n", orNone(d.OldDigest))
	fmt.Fprintf(tw, "  new digest\t%s\n", orNone(d.NewDigest))
	if d.Attestation != "" {
		fmt.Fprintf(tw, "  attestation\t%s\n", d.Attestation)
	}
	rd := d.Result.ReportDir
	if rd == "" {
		rd = reportDir
	}
	fmt.Fprintf(tw, "  report\t%s\n", rd)
	if html := findHTML(rd); html != "" {
		fmt.Fprintf(tw, "  html report\t%s\n", html)
	}
	tw.Flush()
	reason := d.Reason
	if gerr != nil {
		reason = gerr.Error()
	}
	fmt.Fprintf(w, "  reason: %s\n", reason)
	for _, o := range d.Failures {
		fmt.Fprintf(w, "    - %s\n", o)
	}
}

func findHTML(dir string) string {
	if dir == "" {
		return ""
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.html"))
	sort.Strings(matches)
	for _, m := range matches {
		if filepath.Base(m) == "index.html" || filepath.Base(m) == "report.html" {
			return m
		}
	}
	if len(matches) > 0 {
		return matches[0]
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func hilVersion() string { return version }

// gateTester builds the test the gate runs on the pinned digest (a variable
// so that the CLI's tests can gate with a test of their own).
var gateTester = scenarioTester

func scenarioTester(f *gateFlags) (promote.TestFunc, error) {
	return nil, fmt.Errorf("the scenario runner is not part of this build yet: hil gate cannot test %s", f.image)
}
