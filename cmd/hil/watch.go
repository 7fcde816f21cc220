package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/target/device"
)

func init() {
	var (
		devices, board, ref string
		window              time.Duration
		asJSON              bool
	)
	cmd := &cobra.Command{
		Use:   "watch --device NAME --image REPO:TAG",
		Short: "Check that a board runs the promoted digest and stays healthy",
		Long: `After the gate promoted a tag and Watchtower pulled it, watch connects to
the board over SSH, finds the container running the tag, checks that it runs
exactly the digest the tag resolves to in the registry now, and that it keeps
running (no restarts, not unhealthy) for the window.

Exit status: 0 the board runs the promoted digest and stayed healthy,
1 it does not (the report says why), 2 watch could not run.`,
		Example: `  hil watch --devices devices.yaml --device pi-lab-1 --image registry.lan/pcapwatch:latest --window 2m`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, err := device.LoadInventory(devices)
			if err != nil {
				return err
			}
			b, err := inv.Board(board)
			if err != nil {
				return err
			}
			// The same registry access as every other verb: keychain,
			// retries, transport, plain HTTP only to loopback.
			rep, err := device.Watch(cmd.Context(), b, ref, window, registryAccess(false).Remote(cmd.Context())...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				enc.Encode(rep)
			} else {
				fmt.Fprintf(out, "board %s, %s → %s\n", rep.Board, rep.Ref, rep.PromotedDigest)
				if rep.Container != "" {
					fmt.Fprintf(out, "container %.12s runs %v; %s; restarts in window: %d\n", rep.Container, rep.RunningDigests, rep.LastState, rep.Restarts)
				}
				for _, p := range rep.Problems {
					fmt.Fprintln(out, "problem:", p)
				}
				if rep.OK() {
					fmt.Fprintf(out, "ok: promoted digest running and healthy for %s\n", rep.Window)
				}
			}
			if !rep.OK() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&devices, "devices", "devices.yaml", "board inventory file")
	cmd.Flags().StringVar(&board, "device", "", "name of the board in the inventory (required)")
	cmd.Flags().StringVar(&ref, "image", "", "the promoted reference, e.g. registry.lan/app:latest (required)")
	cmd.Flags().DurationVar(&window, "window", time.Minute, "how long the container must stay running and healthy")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.MarkFlagRequired("device")
	cmd.MarkFlagRequired("image")
	rootCmd.AddCommand(cmd)
}
