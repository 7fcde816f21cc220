package main

import (
	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/target/device/agent"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "agent pause | link [--iface NAME]",
		Short: "Run hil's board agent (normally started by the device target on the board)",
		Long: `The device target ships this agent to a board as a one-file image built for
the board's architecture. "pause" holds the network namespace the app's
container joins; "link" creates the app's capture interface in it and relays
frames over stdin/stdout (4-byte big-endian length + frame). Run it by hand
only to debug a board.`,
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := agent.Main(cmd.Context(), args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	})
}
