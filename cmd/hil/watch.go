package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/rollout"
	"github.com/hilproject/hil/harness/target/device"
)

func init() {
	var (
		devices, board, ref string
		window, wait        time.Duration
		asJSON, rollback    bool
		insecure            bool
		rb                  rollbackFlags
	)
	cmd := &cobra.Command{
		Use:   "watch --device NAME --image REPO:TAG",
		Short: "Check that a board runs the promoted digest and stays healthy; roll the tag back when not",
		Long: `After the gate promoted a tag and Watchtower pulled it, watch connects to
the board over SSH, finds the container created from the tag, checks that it
runs exactly the digest the tag resolves to in the registry now (waiting up
to --rollout-timeout for the board to pull it and restart the app), and that
the same container keeps running for the window: not restarted, not exited,
never unhealthy, and healthy at the end when it has a healthcheck.

With --rollback, a failed window moves the tag back to the last digest with
a passing hil attestation, exactly as "hil rollback" does (same flags and
guards: the tag must still point at the digest that was watched), and
records why. A board that cannot be watched (no answer over SSH, Docker
failing there) is an error, and nothing is rolled back: hil does not know
whether the digest is bad.

Exit status: 0 the board runs the promoted digest and stayed healthy,
1 it does not (the report says why; with --rollback, whether the tag went
back), 2 watch could not run (or the rollback failed).`,
		Example: `  hil watch --devices devices.yaml --device pi-lab-1 --image registry.lan/app:latest --window 2m
  hil watch --devices devices.yaml --device pi-lab-1 --image registry.lan/app:latest \
            --rollout-timeout 5m --window 2m --rollback --key cosign.pub --sign-key cosign.key`,
		Args: noArgs("the board is --device NAME, the tag --image HOST/REPO:TAG"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The same registry access as every other verb: keychain,
			// retries, transport, plain HTTP only to loopback. The
			// reference first: plain HTTP off loopback is refused whatever
			// else is wrong.
			if err := requireRegistryRef("watch", ref); err != nil {
				return &exitError{2, err}
			}
			reg := registryAccess(insecure)
			tag, err := reg.ParseReference(ref)
			if err != nil {
				return &exitError{2, fmt.Errorf("--image: %w", err)}
			}
			inv, err := device.LoadInventory(devices)
			if err != nil {
				return &exitError{2, err}
			}
			b, err := inv.Machine(board)
			if err != nil {
				return &exitError{2, err}
			}
			var rbOpts []rollout.RollbackOption
			if rollback {
				if rbOpts, err = rb.options(cmd.ErrOrStderr(), "watch"); err != nil {
					return &exitError{2, err}
				}
			}
			desc, err := remote.Head(tag, reg.Remote(cmd.Context())...)
			if err != nil {
				return &exitError{2, fmt.Errorf("resolving %s in its registry: %w", ref, err)}
			}
			rep, err := device.WatchDigest(cmd.Context(), b, device.Expect{Ref: ref, Digest: desc.Digest.String(), Rollout: wait, Window: window})
			if err != nil {
				return &exitError{2, fmt.Errorf("watching board %s: %w (nothing was rolled back)", board, err)}
			}
			out := cmd.OutOrStdout()
			var d *rollout.RollbackDecision
			var rerr error
			if !rep.OK() && rollback {
				rbOpts = append(rbOpts, rollout.WithRegistry(reg), rollout.WithExpect(rep.PromotedDigest),
					rollout.WithReason(fmt.Sprintf("health window on board %s: %s", rep.Board, strings.Join(rep.Problems, "; ")),
						attest.BoardProblems{Board: rep.Board, Problems: rep.Problems}))
				d, rerr = rollout.Rollback(cmd.Context(), ref, rbOpts...)
			}
			if asJSON {
				_ = printJSON(out, watchJSON(rep, d, rerr))
			} else {
				printWatch(out, rep)
				if d != nil || rerr != nil {
					if d == nil {
						d = &rollout.RollbackDecision{Tag: ref}
					}
					printRollback(out, d, rerr)
				}
			}
			switch {
			case rerr != nil:
				return &exitError{2, rerr}
			case !rep.OK():
				return &exitError{code: 1}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetNormalizeFunc(normalizeFlags)
	addDevicesFlag(fl, &devices)
	fl.StringVar(&board, "device", "", "name of the board in --devices (required)")
	addImageFlag(fl, &ref, "the promoted reference in its registry, e.g. registry.lan/app:latest (required)")
	fl.DurationVar(&window, "window", time.Minute, "how long the container must stay running and healthy")
	fl.DurationVar(&wait, "rollout-timeout", 0, "how long the board may take to pull the promoted digest and restart the app (0: it must run it already)")
	fl.BoolVar(&rollback, "rollback", false, "when the window fails, move the tag back to the last digest with a passing hil attestation (as hil rollback)")
	fl.BoolVar(&insecure, "insecure", false, insecureUsage)
	addJSONFlag(fl, &asJSON)
	rb.register(cmd)
	_ = cmd.MarkFlagRequired("device")
	_ = cmd.MarkFlagRequired("image")
	rootCmd.AddCommand(cmd)
}

func printWatch(out io.Writer, rep *device.WatchReport) {
	fmt.Fprintf(out, "board %s, %s → %s\n", rep.Board, rep.Ref, rep.PromotedDigest)
	if rep.Container != "" {
		fmt.Fprintf(out, "container %.12s runs %v; %s; restarts in window: %d\n", rep.Container, rep.RunningDigests, rep.LastState, rep.Restarts)
	}
	if rep.Rollout > 0 {
		fmt.Fprintf(out, "the board ran it %s after the watch began\n", rep.Rollout)
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(out, "problem:", p)
	}
	if rep.OK() {
		fmt.Fprintf(out, "ok: promoted digest running and healthy for %s\n", rep.Window)
	}
}

// watchJSON is the watch report with the rollback it led to, if any.
func watchJSON(rep *device.WatchReport, d *rollout.RollbackDecision, rerr error) any {
	b, err := json.Marshal(rep)
	if err != nil {
		return rep
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return rep
	}
	m["ok"] = rep.OK()
	if d == nil && rerr != nil {
		d = &rollout.RollbackDecision{Tag: rep.Ref}
	}
	if d != nil {
		if d.Verdict == "" || rerr != nil {
			d.Settle(rerr)
		}
		m["rollback"] = d
	}
	return m
}
