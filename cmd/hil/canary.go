package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/promote/scenariogate"
	"github.com/hilproject/hil/harness/rollout"
	"github.com/hilproject/hil/harness/target/device"
)

// canaryBoards checks the --canary flags and resolves the canary boards
// from the inventory before anything is pinned (nil without --canary).
func canaryBoards(f *gateFlags) ([]device.Machine, error) {
	if f.canary == "" {
		if f.canaryBoards != "" {
			return nil, errors.New("--canary-boards without --canary: give the canary tag the boards watch")
		}
		return nil, nil
	}
	switch {
	case f.shard != nil:
		return nil, errors.New("--canary promotes; a shard (--shard) promotes nothing: use --canary with the deciding gate (--results)")
	case f.canaryBoards == "":
		return nil, errors.New("--canary needs --canary-boards (names or tag:LABEL in --devices): a canary tag nobody watches proves nothing")
	case f.canaryWindow <= 0:
		return nil, fmt.Errorf("--canary-window %s: want a positive duration", f.canaryWindow)
	case f.canaryRollout < 0:
		return nil, fmt.Errorf("--canary-rollout %s: want 0 or more", f.canaryRollout)
	}
	inv, err := device.LoadInventory(f.devices)
	if err != nil {
		return nil, fmt.Errorf("--canary-boards: %w", err)
	}
	boards, err := inv.Resolve(f.canaryBoards)
	if err != nil {
		return nil, fmt.Errorf("--canary-boards: %w", err)
	}
	return boards, nil
}

// runCanary is "hil gate --canary": the library's rollout.Canary with the
// gate's options, and its decision printed.
func runCanary(cmd *cobra.Command, f *gateFlags, test promote.TestFunc, gateOpts []promote.Option, attester *attest.Attester, boards []device.Machine) error {
	reg := registryAccess(f.insecure)
	opts := []rollout.CanaryOption{
		rollout.WithCanaryTag(f.canary),
		rollout.WithBoards(boards...),
		rollout.WithWindow(f.canaryWindow),
		rollout.WithRolloutTimeout(f.canaryRollout),
		rollout.WithCanaryRegistry(reg),
		rollout.WithGateOptions(gateOpts...),
		rollout.WithCanaryVersion(hilVersion()),
		rollout.WithCanaryLog(func(format string, args ...any) {
			fmt.Fprintf(cmd.ErrOrStderr(), "hil gate: "+format+"\n", args...)
		}),
	}
	if attester == nil {
		opts = append(opts, rollout.WithoutRecord())
	} else {
		runURL := f.runURL
		if runURL == "" {
			runURL = attest.RunURLFromEnv()
		}
		opts = append(opts, rollout.WithCanaryRunURL(runURL))
		if f.signKey != "" {
			s, err := attest.LoadSigner(f.signKey, attest.PasswordFromEnv)
			if err != nil {
				return &exitError{2, fmt.Errorf("--sign-key: %w", err)}
			}
			opts = append(opts, rollout.WithCanarySigner(s))
		}
	}
	d, err := rollout.Canary(cmd.Context(), f.image, f.tag, test, opts...)
	if d != nil {
		if d.Gate != nil {
			if werr := scenariogate.WriteDecision(f.report, d.Gate, nil); werr != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "hil gate: warning: %v\n", werr)
			}
		}
		if f.asJSON {
			_ = printJSON(cmd.OutOrStdout(), d)
		} else {
			printCanary(cmd.OutOrStdout(), d, f.report)
		}
	}
	switch {
	case err != nil:
		return &exitError{2, err}
	case d.Verdict == rollout.Promoted || d.Verdict == rollout.DryRun:
		return nil
	default:
		return &exitError{1, nil}
	}
}

func printCanary(w io.Writer, d *rollout.CanaryDecision, reportDir string) {
	if d.Gate != nil {
		// The gate's own decision first: its tag is the canary tag.
		printDecision(w, d.Gate, reportDir, nil)
	}
	fmt.Fprintf(w, "canary: %s\n", strings.ToUpper(d.Verdict))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  canary tag\t%s\n", d.CanaryTag)
	for _, b := range d.Boards {
		switch {
		case b.Error != "":
			fmt.Fprintf(tw, "  board %s\tinfra-error: %s\n", b.Board, b.Error)
		case b.Report == nil:
			fmt.Fprintf(tw, "  board %s\tanswers\n", b.Board)
		case b.Report.OK():
			fmt.Fprintf(tw, "  board %s\tran %s healthily for %s (rolled out in %s)\n", b.Board, b.Report.PromotedDigest, b.Report.Window, b.Report.Rollout)
		default:
			fmt.Fprintf(tw, "  board %s\tFAILED: %s\n", b.Board, strings.Join(b.Report.Problems, "; "))
		}
	}
	if d.CanaryRevertedTo != "" {
		fmt.Fprintf(tw, "  canary tag back to\t%s\n", d.CanaryRevertedTo)
	}
	if d.Attestation != "" {
		fmt.Fprintf(tw, "  recorded\t%s\n", d.Attestation)
	}
	fmt.Fprintf(tw, "  tag\t%s\n", d.Tag)
	fmt.Fprintf(tw, "  old digest\t%s\n", orNone(d.OldDigest))
	fmt.Fprintf(tw, "  new digest\t%s\n", orNone(d.NewDigest))
	tw.Flush()
	fmt.Fprintf(w, "  reason: %s\n", indent(d.Reason, "    "))
}
