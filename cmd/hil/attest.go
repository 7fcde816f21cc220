package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hilproject/hil/harness/attest"
)

func init() {
	cmd := &cobra.Command{
		Use:   "attest",
		Short: "Read and verify the test results hil attached to image digests",
		Long: `Each "hil gate" run attaches its result to the tested digest: an in-toto
statement with the standard test-result predicate
(` + attest.TestResultPredicateType + `: result PASSED, WARNED or
FAILED; configuration, the inputs by digest; url, the CI run; passedTests,
warnedTests, failedTests named scenario/target/board/platform) and one with
hil's detail predicate (` + attest.DetailPredicateType + `), each in a
DSSE envelope signed with the gate's --sign-key. They are stored as an OCI
referrer of the digest and at cosign's tag sha256-<hex>.att, so cosign
(verify-attestation, tree, download attestation), Kyverno and sigstore's
policy-controller find them too.

  hil attest show REF            print them (exit 1 when the newest is not a pass)
  hil attest verify REF --key K  exit 0 only for a signed, matching, passing one`,
	}
	cmd.AddCommand(attestShowCmd(), attestVerifyCmd())
	rootCmd.AddCommand(cmd)
}

func attestShowCmd() *cobra.Command {
	var insecure, asJSON bool
	var keyPath string
	show := &cobra.Command{
		Use: "show REF",
		Example: `  hil attest show registry.lan/pcapwatch:latest
  hil attest show registry.lan/pcapwatch:latest --key cosign.pub --json`,
		Short: "Print the hil test results attached to the digest REF points at",
		Long: `show resolves REF (a tag or a digest) to a digest and prints every
attestation attached to it, oldest first: where it is stored, whether it is
signed, the result, the tests and the configuration. It looks at cosign's
tag sha256-<hex>.att and at the OCI referrers (the registry's referrers API,
or the sha256-<hex> tag for registries without it).

Without --key signatures are not checked (show says so); with --key every
signature is checked and only verified results count for the exit status.

Exit 0 when the newest test result is a pass (PASSED or WARNED), 1 when it
is FAILED, cannot be read, or there is none, 2 on bad input or an
unreachable registry. To gate a deploy, use "hil attest verify".`,
		Args: needArgs(1, 1, "a REF: the image in its registry, host/repo:tag or host/repo@sha256:..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			var key *attest.Verifier
			if keyPath != "" {
				var err error
				if key, err = attest.LoadVerifier(keyPath); err != nil {
					return &exitError{2, fmt.Errorf("--key: %w", err)}
				}
			}
			reg := registryAccess(insecure)
			subject, entries, err := attest.Inspect(cmd.Context(), reg, args[0], key)
			if err != nil {
				return &exitError{2, err}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := printEntriesJSON(out, entries); err != nil {
					return &exitError{2, err}
				}
			} else {
				printEntries(out, subject.String(), entries, key)
			}
			newest := newestTestResult(entries, key != nil)
			switch {
			case newest == nil:
				return &exitError{1, fmt.Errorf("no readable test result is attached to %s", subject)}
			case newest.TestResult.GetResult() == attest.Failed:
				return &exitError{1, fmt.Errorf("the newest test result of %s is FAILED", subject)}
			}
			return nil
		},
	}
	show.Flags().BoolVar(&insecure, "insecure", false, insecureUsage)
	show.Flags().BoolVar(&asJSON, "json", false, "print the attestations as a JSON array (each with its in-toto statement)")
	show.Flags().StringVar(&keyPath, "key", "", "public key (cosign.pub) to check the signatures with")
	return show
}

func attestVerifyCmd() *cobra.Command {
	var insecure, asJSON bool
	var keyPath, result string
	var boards []string
	verify := &cobra.Command{
		Use: "verify REF --key cosign.pub [--require-board B1,B2] [--require-result PASSED]",
		Example: `  hil attest verify registry.lan/pcapwatch:latest --key cosign.pub
  hil attest verify registry.lan/pcapwatch:latest --key cosign.pub --require-board virt,pi3b+ --json`,
		Short: "Exit 0 only when a signed, matching, passing test result is attached to REF's digest",
		Long: `verify resolves REF (a tag or a digest) to a digest and looks for a
test-result attestation (` + attest.TestResultPredicateType + `) that
  - is signed with the key --key names (the DSSE signature holds),
  - is about that digest (the statement's subject),
  - has result PASSED (or, with --require-result WARNED, PASSED or WARNED),
  - and, with --require-board, names each board in a passed test and in no
    failed one (tests are named scenario/target/board/platform; the system
    target's QEMU machine is the board "virt" until board profiles name
    boards).
One such attestation is enough (as for cosign and policy engines); unsigned,
tampered, foreign-key, other-digest and failing ones are reported and
skipped. Use it as a pre-pull check on a board (see examples/policy).

Exit 0 when one was found, 1 when none was (the reason is printed), 2 on bad
input (no --key, a key that is not a PEM public key, a bad reference or
flag) or an unreachable registry.`,
		Args: needArgs(1, 1, "a REF: the image in its registry, host/repo:tag or host/repo@sha256:..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg := registryAccess(insecure)
			// The reference first: a plain-HTTP registry off loopback is
			// refused whatever else is wrong.
			if _, err := reg.ParseReference(args[0]); err != nil {
				return &exitError{2, err}
			}
			key, err := attest.LoadVerifier(keyPath)
			if err != nil {
				return &exitError{2, fmt.Errorf("--key: %w", err)}
			}
			var req attest.Requirements
			req.Result = result
			for _, b := range boards {
				if b = strings.TrimSpace(b); b != "" {
					req.Boards = append(req.Boards, b)
				}
			}
			v, err := attest.Verify(cmd.Context(), reg, args[0], key, req)
			if err != nil {
				return &exitError{2, err}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				_ = printJSON(out, verificationJSON(v))
			} else if v.OK() {
				a := v.Accepted
				tr := a.TestResult
				fmt.Fprintf(out, "verified: %s\n", v.Subject)
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "  result\t%s (%d passed, %d warned)\n", tr.GetResult(), len(tr.GetPassedTests()), len(tr.GetWarnedTests()))
				fmt.Fprintf(tw, "  signed by\t%s\n", keyPath)
				if len(req.Boards) > 0 {
					fmt.Fprintf(tw, "  boards\t%s\n", strings.Join(req.Boards, ", "))
				}
				if tr.GetUrl() != "" {
					fmt.Fprintf(tw, "  run\t%s\n", tr.GetUrl())
				}
				fmt.Fprintf(tw, "  stored\t%s\n", strings.Join(a.Where, ", "))
				tw.Flush()
			}
			if !v.OK() {
				return &exitError{1, fmt.Errorf("not verified: %s", v.Reason)}
			}
			return nil
		},
	}
	fl := verify.Flags()
	fl.StringVar(&keyPath, "key", "", "public key the attestation must be signed with (cosign.pub; PEM) (required)")
	fl.SetNormalizeFunc(normalizeFlags)
	fl.StringSliceVar(&boards, "require-board", nil, "board(s) that must each have passed, e.g. pi3b+,pi4/64; virt is the system target without a board (repeat the flag or separate with commas)")
	fl.StringVar(&result, "require-result", attest.Passed, "weakest result accepted: PASSED, or WARNED (PASSED or WARNED)")
	fl.BoolVar(&insecure, "insecure", false, insecureUsage)
	fl.BoolVar(&asJSON, "json", false, "print the verification as JSON")
	_ = verify.MarkFlagRequired("key")
	return verify
}

// newestTestResult is the newest readable test-result entry (verified
// ones only when verified is set).
func newestTestResult(entries []attest.Entry, verified bool) *attest.Entry {
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.TestResult == nil || e.Problem != "" || (verified && !e.Verified) {
			continue
		}
		return &entries[i]
	}
	return nil
}

func signatureState(e attest.Entry, key *attest.Verifier) string {
	switch {
	case e.Verified:
		return "verified with " + key.Ref
	case !e.Signed:
		return "UNSIGNED (no verifier accepts it)"
	case key == nil:
		return "signed, not checked (give --key)"
	default:
		return "INVALID: " + e.Problem
	}
}

func printEntries(w io.Writer, subject string, entries []attest.Entry, key *attest.Verifier) {
	if len(entries) == 0 {
		fmt.Fprintf(w, "no hil attestation is attached to %s\n", subject)
		return
	}
	fmt.Fprintf(w, "%d attestation(s) attached to %s, oldest first\n", len(entries), subject)
	for _, e := range entries {
		fmt.Fprintf(w, "\nattestation %s\n", e.LayerDigest)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		pt := e.PredicateType
		if e.Statement != nil {
			pt = e.Statement.GetPredicateType()
		}
		fmt.Fprintf(tw, "  type\t%s\n", pt)
		fmt.Fprintf(tw, "  stored\t%s\n", e.Created)
		for _, where := range e.Where {
			fmt.Fprintf(tw, "  at\t%s\n", where)
		}
		fmt.Fprintf(tw, "  signature\t%s\n", signatureState(e, key))
		if e.Problem != "" && (e.Verified || key == nil) {
			fmt.Fprintf(tw, "  problem\t%s\n", e.Problem)
		}
		if tr := e.TestResult; tr != nil {
			fmt.Fprintf(tw, "  result\t%s\n", tr.GetResult())
			if tr.GetUrl() != "" {
				fmt.Fprintf(tw, "  run\t%s\n", tr.GetUrl())
			}
			for _, t := range tr.GetPassedTests() {
				fmt.Fprintf(tw, "  passed\t%s\n", t)
			}
			for _, t := range tr.GetWarnedTests() {
				fmt.Fprintf(tw, "  warned\t%s\n", t)
			}
			for _, t := range tr.GetFailedTests() {
				fmt.Fprintf(tw, "  failed\t%s\n", t)
			}
			for _, c := range tr.GetConfiguration() {
				kind := c.GetAnnotations().GetFields()["kind"].GetStringValue()
				line := kind + " " + c.GetName()
				if d := c.GetDigest()["sha256"]; d != "" {
					line += " sha256:" + d
				}
				if v := c.GetAnnotations().GetFields()["version"].GetStringValue(); v != "" {
					line += " (" + v + ")"
				}
				fmt.Fprintf(tw, "  config\t%s\n", strings.TrimSpace(line))
			}
		}
		if d := e.Detail; d != nil {
			fmt.Fprintf(tw, "  result\t%s\n", d.Result)
			fmt.Fprintf(tw, "  reason\t%s\n", d.Reason)
			fmt.Fprintf(tw, "  candidate\t%s\n", d.Candidate)
			fmt.Fprintf(tw, "  platforms\t%s (present: %s)\n", strings.Join(d.Platforms, ", "), strings.Join(d.PlatformsPresent, ", "))
			if len(d.Targets) > 0 {
				fmt.Fprintf(tw, "  targets\t%s\n", strings.Join(d.Targets, ", "))
			}
			fmt.Fprintf(tw, "  tested\t%s .. %s\n", d.Started.Format("2006-01-02 15:04:05Z07:00"), d.Finished.Format("15:04:05"))
			fmt.Fprintf(tw, "  hil\t%s\n", d.HIL.Version)
		}
		if ev := e.Rollout; ev != nil {
			fmt.Fprintf(tw, "  event\t%s of %s at %s\n", ev.Kind, ev.Tag, ev.Time.Format("2006-01-02 15:04:05Z07:00"))
			fmt.Fprintf(tw, "  withdrawn\t%s\n", ev.From)
			if ev.To != "" {
				fmt.Fprintf(tw, "  back to\t%s\n", ev.To)
			}
			fmt.Fprintf(tw, "  reason\t%s\n", ev.Reason)
		}
		tw.Flush()
		if d := e.Detail; d != nil {
			for _, o := range d.Outcomes {
				line := fmt.Sprintf("    %-11s %s", o.Verdict, attest.TestName(o))
				if o.Reason != "" {
					line += ": " + o.Reason
				}
				fmt.Fprintln(w, line)
			}
		}
	}
}

// entryJSON is one attestation as "attest show --json" prints it.
type entryJSON struct {
	Digest        string          `json:"digest"`
	Where         []string        `json:"where"`
	Created       string          `json:"created,omitempty"`
	PredicateType string          `json:"predicate_type,omitempty"`
	Signed        bool            `json:"signed"`
	Verified      bool            `json:"verified"`
	Problem       string          `json:"problem,omitempty"`
	Statement     json.RawMessage `json:"statement,omitempty"`
}

func toEntryJSON(e attest.Entry) entryJSON {
	j := entryJSON{Digest: e.LayerDigest.String(), Where: e.Where, Created: e.Created, PredicateType: e.PredicateType,
		Signed: e.Signed, Verified: e.Verified, Problem: e.Problem}
	if e.Statement != nil {
		j.PredicateType = e.Statement.GetPredicateType()
		if b, err := protojson.Marshal(e.Statement); err == nil {
			j.Statement = b
		}
	}
	return j
}

func printEntriesJSON(w io.Writer, entries []attest.Entry) error {
	out := []entryJSON{}
	for _, e := range entries {
		out = append(out, toEntryJSON(e))
	}
	return printJSON(w, struct {
		Attestations []entryJSON `json:"attestations"`
	}{out})
}

func verificationJSON(v *attest.Verification) any {
	type j struct {
		Subject  string      `json:"subject"`
		OK       bool        `json:"ok"`
		Reason   string      `json:"reason,omitempty"`
		Accepted *entryJSON  `json:"accepted,omitempty"`
		Rejected []entryJSON `json:"rejected,omitempty"`
	}
	out := j{Subject: v.Subject.String(), OK: v.OK(), Reason: v.Reason}
	if v.Accepted != nil {
		a := toEntryJSON(*v.Accepted)
		out.Accepted = &a
	}
	for _, e := range v.Rejected {
		out.Rejected = append(out.Rejected, toEntryJSON(e))
	}
	return out
}
