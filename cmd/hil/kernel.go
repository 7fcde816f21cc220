package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/kernel"
)

func init() {
	kernelCmd := &cobra.Command{
		Use:   "kernel",
		Short: "Manage the guest kernels of the system target",
	}
	var arch, suite string
	var asJSON bool
	fetch := &cobra.Command{
		Use: "fetch",
		Example: `  hil kernel fetch
  hil kernel fetch --arch arm64`,
		Short: "Resolve Debian's current kernel through apt, download it (sha256 checked) and cache it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := kernel.Fetch(cmd.Context(), kernel.WithArch(arch), kernel.WithSuite(suite), kernel.WithUpdate())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n  image   %s\n", k.Package, k.Image)
			for _, m := range k.Modules {
				fmt.Fprintf(cmd.OutOrStdout(), "  module  %s\n", m.Path)
			}
			return nil
		},
	}
	fetch.Flags().StringVar(&arch, "arch", "armhf", "Debian architecture: armhf (armmp kernel, qemu-system-arm) or arm64 (qemu-system-aarch64)")
	fetch.Flags().StringVar(&suite, "suite", "bookworm", "Debian release")
	list := &cobra.Command{
		Use: "list",
		Example: `  hil kernel list
  hil kernel list --json`,
		Short: "List the cached kernels",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, err := kernel.List()
			if err != nil {
				return err
			}
			if asJSON {
				if ks == nil {
					ks = []*kernel.Kernel{}
				}
				return printJSON(cmd.OutOrStdout(), struct {
					Kernels []*kernel.Kernel `json:"kernels"`
				}{ks})
			}
			if len(ks) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no kernel cached; run: hil kernel fetch")
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ARCH\tRELEASE\tPACKAGE\tIMAGE")
			for _, k := range ks {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", k.Arch, k.Release, k.Package, k.Image)
			}
			return w.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the cached kernels as JSON")
	kernelCmd.AddCommand(fetch, list)
	rootCmd.AddCommand(kernelCmd)
}
