package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/rollout"
)

// rollbackFlags are what picks the digest to go back to and signs the
// record; "hil watch --rollback" takes the same ones.
type rollbackFlags struct {
	key, signKey, result, runURL string
	boards                       []string
}

func (f *rollbackFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.SetNormalizeFunc(normalizeFlags)
	fl.StringVar(&f.key, "key", "", "public key (cosign.pub) the gate's attestations are signed with: only verified passes count. Without it they are read UNVERIFIED")
	fl.StringVar(&f.signKey, "sign-key", "", "private key that signs the rollback's record (as for hil gate; password in $COSIGN_PASSWORD). Without it the record is UNSIGNED")
	fl.StringSliceVar(&f.boards, "require-board", nil, "board(s) the digest to go back to must have passed on (repeat the flag or separate with commas)")
	fl.StringVar(&f.result, "require-result", "PASSED", "weakest test result accepted: PASSED, or WARNED (PASSED or WARNED)")
	fl.StringVar(&f.runURL, "run-url", "", "URL of the CI run, recorded with the rollback (default: the GitHub Actions run from the environment)")
}

// options loads the keys (bad input stops before anything is read or
// written) and says loudly what is not checked or not signed.
func (f *rollbackFlags) options(w io.Writer, verb string) ([]rollout.RollbackOption, error) {
	req := attest.Requirements{Result: f.result}
	for _, b := range f.boards {
		if b = strings.TrimSpace(b); b != "" {
			req.Boards = append(req.Boards, b)
		}
	}
	if _, err := req.Accepts(nil); err != nil {
		return nil, err
	}
	runURL := f.runURL
	if runURL == "" {
		runURL = attest.RunURLFromEnv()
	}
	opts := []rollout.RollbackOption{rollout.WithRequirements(req), rollout.WithVersion(hilVersion()), rollout.WithRunURL(runURL)}
	if f.key != "" {
		key, err := attest.LoadVerifier(f.key)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		opts = append(opts, rollout.WithKey(key))
	} else {
		fmt.Fprintf(w, "hil %s: WARNING: no --key: the digest to go back to is chosen from UNVERIFIED attestations; anyone who can push to the repository could have written them\n", verb)
	}
	if f.signKey != "" {
		s, err := attest.LoadSigner(f.signKey, attest.PasswordFromEnv)
		if err != nil {
			return nil, fmt.Errorf("--sign-key: %w", err)
		}
		opts = append(opts, rollout.WithSigner(s))
	} else {
		fmt.Fprintf(w, "hil %s: WARNING: no --sign-key: the rollback's record will be stored UNSIGNED\n", verb)
	}
	return opts, nil
}

func init() {
	var (
		f                 rollbackFlags
		tag, expect, repo string
		insecure, dryRun  bool
		asJSON            bool
	)
	cmd := &cobra.Command{
		Use:   "rollback --tag host/repo:latest | --tag latest --repository host/repo",
		Short: "Point a tag back at the last digest with a passing hil attestation",
		Long: `rollback moves --tag back to the last digest of its repository that has a
passing hil test result (the attestation "hil gate" attaches) and was never
withdrawn, with the gate's guards, and records the rollback as an
attestation on both digests.

Which digests: every digest of the repository that carries hil
attestations (found by the tags cosign's layout and the referrers tag
schema store them at). "Last" is the newest acceptable test result, among
those stored before the current digest's own newest one, so a rollback
never moves forward to a candidate that was gated but not released. A
digest that a rollback moved away from, or that failed a canary window,
is withdrawn and never chosen again. With --key only test results signed
with that key count (without it they are read unverified, and hil says
so); --require-board and --require-result are as for "hil attest verify".

Guards: the tag must still point where it did when the choice was made
(and at --expect, when given), the chosen manifest must hash to its
digest, and the tag is read back after the write. With no earlier passing
digest, rollback refuses and writes nothing.

Exit 0 rolled back (or would, with --dry-run), 1 refused, 2 error.`,
		Example: `  hil rollback --tag registry.lan/pcapwatch:latest --key cosign.pub --sign-key cosign.key
  hil rollback --tag latest --repository registry.lan/pcapwatch --key cosign.pub --dry-run`,
		Args: noArgs("the tag is --tag HOST/REPO:TAG"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireRegistryRef("rollback", tag); err != nil {
				return &exitError{2, err}
			}
			reg := registryAccess(insecure)
			if !strings.ContainsAny(tag, "/:@") {
				if repo == "" {
					return &exitError{2, fmt.Errorf("--tag %q is a bare tag name: give --repository host/repo too, or --tag host/repo:%s", tag, tag)}
				}
				tag = strings.TrimSuffix(repo, "/") + ":" + tag
			} else if repo != "" {
				return &exitError{2, fmt.Errorf("--tag %q is a full reference and --repository %q names a repository too: give one", tag, repo)}
			}
			if _, err := reg.ParseTag(tag); err != nil {
				return &exitError{2, fmt.Errorf("--tag: %w", err)}
			}
			opts, err := f.options(cmd.ErrOrStderr(), "rollback")
			if err != nil {
				return &exitError{2, err}
			}
			opts = append(opts, rollout.WithRegistry(reg))
			if expect != "" {
				opts = append(opts, rollout.WithExpect(expect))
			}
			if dryRun {
				opts = append(opts, rollout.WithDryRun())
			}
			d, err := rollout.Rollback(cmd.Context(), tag, opts...)
			if d != nil {
				if asJSON {
					_ = printJSON(cmd.OutOrStdout(), d)
				} else {
					printRollback(cmd.OutOrStdout(), d, err)
				}
			}
			switch {
			case err != nil:
				return &exitError{2, err}
			case d.RolledBack || (d.DryRun && d.To != ""):
				return nil
			default:
				return &exitError{1, nil}
			}
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&tag, "tag", "", "the tag to move back: host/repo:tag, or a tag name (latest) with --repository (required)")
	fl.StringVar(&repo, "repository", "", "the repository of a bare --tag name: host/repo")
	fl.StringVar(&expect, "expect", "", "refuse unless --tag points at this digest (sha256:...) now: the one that was seen failing")
	fl.BoolVar(&dryRun, "dry-run", false, "choose the digest and say so, write nothing")
	fl.BoolVar(&insecure, "insecure", false, insecureUsage)
	addJSONFlag(fl, &asJSON)
	_ = cmd.MarkFlagRequired("tag")
	rootCmd.AddCommand(cmd)
}

func printRollback(w io.Writer, d *rollout.RollbackDecision, err error) {
	if d.Verdict == "" || (err != nil && d.Verdict != "ERROR") {
		d.Settle(err)
	}
	verdict := d.Verdict
	if verdict == "WOULD ROLL BACK" {
		verdict += " (dry run)"
	}
	fmt.Fprintf(w, "rollback: %s\n", verdict)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  tag\t%s\n", d.Tag)
	fmt.Fprintf(tw, "  from\t%s\n", orNone(d.From))
	fmt.Fprintf(tw, "  to\t%s\n", orNone(d.To))
	sig := "checked with --key"
	if !d.Verified {
		sig = "NOT checked (no --key)"
	}
	fmt.Fprintf(tw, "  signatures\t%s\n", sig)
	if d.Attestation != "" {
		fmt.Fprintf(tw, "  record\t%s\n", d.Attestation)
	}
	tw.Flush()
	reason := d.Reason
	if err != nil {
		reason = err.Error()
	}
	fmt.Fprintf(w, "  reason: %s\n", indent(reason, "    "))
	if len(d.Considered) > 0 {
		fmt.Fprintln(w, "  attested digests, newest pass first:")
		for _, c := range d.Considered {
			state := "chosen"
			if c.Problem != "" {
				state = c.Problem
			} else if c.Digest != d.To {
				state = "passed " + c.Passed
			}
			fmt.Fprintf(w, "    %s  %s\n", c.Digest, indent(state, "      "))
		}
	}
}
