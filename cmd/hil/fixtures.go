package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/internal/jsonfmt"
	"github.com/hilproject/hil/pcapfixtures"
)

func init() {
	var asJSON, paths bool
	cmd := &cobra.Command{
		Use: "fixtures [NAME]",
		Example: `  hil fixtures
  hil fixtures dns
  hil fixtures dns --path
  hil fixtures --json`,
		Short: "List the bundled pcap fixtures (or show one) and what pcapwatch must report for each",
		Long: `Fixtures lists the bundled pcap/pcapng fixtures: the generated ones
(synthetic, reproduced byte for byte by "go generate ./pcapfixtures") and
the ones recorded from real traffic between two network namespaces with
"hil record" (re-recorded by "go run ./pcapfixtures/cmd/record-real"; a
recorded entry says what made it). With NAME it prints that entry as JSON:
sha256, frames, span and what pcapwatch must report after seeing it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			fxs := pcapfixtures.Manifest()
			if len(args) == 1 {
				fx, err := pcapfixtures.Lookup(args[0])
				if err != nil {
					return &exitError{2, err}
				}
				if paths {
					p, err := fx.Path()
					if err != nil {
						return err
					}
					fmt.Fprintln(out, p)
					return nil
				}
				return printJSON(out, fixtureJSON(fx.Fixture))
			}
			if asJSON {
				all := []any{}
				for _, fx := range fxs {
					all = append(all, fixtureJSON(fx.Fixture))
				}
				return printJSON(out, map[string]any{"fixtures": all})
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tORIGIN\tFORMAT\tFRAMES\tOVER MTU\tSPAN\tSIZE\tEVENTS (device/dhcp/dns)\tDESCRIPTION")
			for _, fx := range fxs {
				e := fx.Expect
				origin := "generated"
				if fx.Recorded != nil {
					origin = "recorded"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%v\t%d KiB\t%d/%d/%d\t%s\n", fx.Name, origin, fx.Format, fx.Frames, fx.OversizeFrames,
					time.Duration(fx.DurationNS).Round(time.Microsecond), (fx.Size+1023)/1024,
					len(e.DeviceSeen), len(e.DHCPRequest), len(e.DNSQuery), fx.Description)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the whole manifest as JSON")
	cmd.Flags().BoolVar(&paths, "path", false, "with NAME: print a file path holding the fixture")
	rootCmd.AddCommand(cmd)
}

// fixtureJSON is a manifest entry as --json prints it: the manifest's
// duration_ns (exact, in the committed manifest) as duration_ms, the
// spelling of every duration hil prints.
func fixtureJSON(fx any) any {
	b, err := json.Marshal(fx)
	if err != nil {
		return fx
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return fx
	}
	if ns, ok := m["duration_ns"].(float64); ok {
		delete(m, "duration_ns")
		m["duration_ms"] = jsonfmt.Millis(time.Duration(ns))
	}
	return m
}
