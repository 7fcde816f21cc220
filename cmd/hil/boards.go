package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/board"
)

// boardCatalog is the built-in table plus the profile file, if any.
func boardCatalog(profiles string) (*board.Catalog, error) {
	c := board.Builtin()
	if profiles == "" {
		return c, nil
	}
	return c.WithFile(profiles)
}

func init() {
	var asJSON bool
	var profiles string
	cmd := &cobra.Command{
		Use:   "boards",
		Short: "List the board profiles: CPU and ISA, memory, OS word size, the platform each pulls, how each target models it",
		Long: `boards lists the board profiles hil knows. A board is named by its profile
name or an alias, optionally with the OS word size: pi3b+ (the default of
Raspberry Pi OS for that model, marked * below), pi3b+/32, pi4/64.

Each profile says what its CPU executes (the ISA the static check holds
every ELF to), its memory, which platform its container engine asks an
index for (containerd's matcher picks the manifest, with the fallbacks
arm64 -> arm/v8 -> v7 -> v6 -> v5), and how each target models it: the
QEMU machine, CPU and kernel of the system target, the qemu-user CPU of the
user and container targets.

Name boards with --board (also --boards) on hil check, run and gate, or
list them in a scenario (boards: [pi0w, pi3b+]) or a fleet file (hil gate
--fleet): each board's case runs the manifest its engine pulls, held to
its ISA, on each target's model of it. On the system target a 32-bit OS
on a 64-bit core runs under the linux32 personality on the arm64 kernel
(uname -m: armv8l); a 64-bit OS says aarch64, a Pi 2 armv7l. The device
target reads a real board's /proc/device-tree/model and refuses a profile
of another model (device_models in --json says how the model must begin).

A board that is not in the table goes in a profile file (--board-profiles
FILE; the format is in the README, section "Boards").`,
		Example: `  hil boards
  hil boards --json
  hil boards --board-profiles lab/boards.yaml`,
		Args: noArgs("name boards where they are used: hil check IMAGE --board NAME"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := boardCatalog(profiles)
			if err != nil {
				return &exitError{2, err}
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, struct {
					Boards []*board.Profile `json:"boards"`
				}{c.Profiles()})
			}
			return writeBoards(w, c.Profiles())
		},
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	cmd.Flags().StringVar(&profiles, "board-profiles", "", "a YAML file of board profiles to add to the table")
	rootCmd.AddCommand(cmd)
}

func writeBoards(w io.Writer, ps []*board.Profile) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BOARD\tALIASES\tMODEL\tCPU\tISA (32-bit)\tMEMORY\tOS\tPLATFORM\tSYSTEM TARGET\tUSER/CONTAINER")
	for _, p := range ps {
		first := true
		for _, bits := range p.WordSizes() {
			o := p.OS[bits]
			osCol := fmt.Sprintf("%d", bits)
			if bits == p.DefaultOS {
				osCol += "*"
			}
			sys := "unsupported"
			if o.System.Unsupported == "" {
				sys = fmt.Sprintf("%s -M %s -cpu %s, %s kernel", o.System.Emulator, o.System.Machine, o.System.CPU, o.System.Kernel)
				if o.System.Linux32 {
					sys += ", linux32"
				}
			}
			user := o.User.Emulator
			if o.User.CPU != "" {
				user += " -cpu " + o.User.CPU
			}
			name, aliases, model, cpu, isa, mem := "", "", "", "", "", ""
			if first {
				name, aliases, model, cpu = p.Name, strings.Join(p.Aliases, ","), p.Model, p.CPU
				isa = p.ISA.CPUSummary(strings.TrimSpace(p.ISA.Thumb.String()))
				if p.ISA.AArch64 != "" {
					isa += ", AArch64 " + p.ISA.AArch64
				}
				mem = fmt.Sprintf("%d MiB", p.MemoryMiB)
			}
			first = false
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, aliases, model, cpu, isa, mem, osCol, o.Platform, sys, user)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\n* the default OS word size (Raspberry Pi OS's default for the model); name another with /32 or /64, e.g. pi3b+/32.")
	// Why a system target is unsupported, once per reason.
	var reasons []string
	who := map[string][]string{}
	for _, p := range ps {
		for _, bits := range p.WordSizes() {
			if r := p.OS[bits].System.Unsupported; r != "" {
				if _, ok := who[r]; !ok {
					reasons = append(reasons, r)
				}
				who[r] = append(who[r], fmt.Sprintf("%s/%d", p.Name, bits))
			}
		}
	}
	for _, r := range reasons {
		fmt.Fprintf(w, "unsupported (%s): %s\n", strings.Join(who[r], ", "), r)
	}
	return nil
}
