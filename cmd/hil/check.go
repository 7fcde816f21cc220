package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/startup"
)

// checkResult is one platform's outcome in `hil check --json`.
type checkResult struct {
	Platform       string          `json:"platform"`
	ManifestDigest string          `json:"manifestDigest"`
	RootFS         string          `json:"rootfs"`
	CheckSeconds   float64         `json:"checkSeconds"`
	Report         *startup.Report `json:"report"`
}

type checkOutput struct {
	Ref     string        `json:"ref"`
	Digest  string        `json:"digest"`
	OK      bool          `json:"ok"`
	Results []checkResult `json:"results"`
}

func init() {
	var platforms []string
	var asJSON, insecure bool
	cmd := &cobra.Command{
		Use:   "check IMAGE",
		Short: "Check statically that the image's entrypoint can start (loader, libraries, glibc versions, arch)",
		Long: `check resolves the image's entrypoint inside its flattened rootfs the way
the kernel and ld.so would (PATH, #! scripts, ELF machine/class/float ABI,
PT_INTERP, DT_NEEDED through RPATH/LD_LIBRARY_PATH/RUNPATH/ld.so.cache and
the default dirs, and every symbol version against the providing library)
without running anything. Every platform of an index is checked unless
--platform is given.

IMAGE is oci:DIR, docker-archive:FILE[:TAG], docker-daemon:NAME[:TAG], a
registry reference, or a path to an OCI layout dir or docker archive.

Exit status: 0 the image can start, 1 problems found, 2 the check could not
run (bad reference, unreadable image).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd, args[0], platforms, asJSON, []image.Option{image.WithRegistry(registryAccess(insecure))})
		},
	}
	cmd.Flags().StringSliceVar(&platforms, "platform", nil, "platform(s) to check, e.g. linux/arm/v7 (default: every platform of the image)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the reports as JSON")
	cmd.Flags().BoolVar(&insecure, "insecure", false, insecureUsage)
	rootCmd.AddCommand(cmd)
}

func runCheck(cmd *cobra.Command, ref string, platforms []string, asJSON bool, opts []image.Option) error {
	ctx := cmd.Context()
	art, err := image.Open(ctx, ref, opts...)
	if err != nil {
		return &exitError{2, fmt.Errorf("check: opening %s: %w", ref, err)}
	}
	if len(platforms) == 0 {
		for _, p := range art.Platforms() {
			platforms = append(platforms, startup.PlatformString(p))
		}
		if len(platforms) == 0 {
			return &exitError{2, fmt.Errorf("check: %s names no platform", ref)}
		}
	}
	out := checkOutput{Ref: ref, Digest: art.Digest.String(), OK: true}
	for _, p := range platforms {
		img, err := art.Image(p)
		if err != nil {
			return &exitError{2, fmt.Errorf("check: %w", err)}
		}
		dir, err := img.RootFS(ctx)
		if err != nil {
			return &exitError{2, fmt.Errorf("check: flattening %s for %s: %w", ref, p, err)}
		}
		start := time.Now()
		rep, err := startup.Check(ctx, dir, startup.ConfigFor(p, img.Config))
		if err != nil {
			return &exitError{2, fmt.Errorf("check: %s for %s: %w", ref, p, err)}
		}
		elapsed := time.Since(start)
		out.OK = out.OK && rep.OK()
		out.Results = append(out.Results, checkResult{
			Platform: p, ManifestDigest: img.ManifestDigest.String(), RootFS: dir,
			CheckSeconds: elapsed.Seconds(), Report: rep,
		})
	}
	w := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return &exitError{2, err}
		}
	} else if err := writeCheckText(w, out); err != nil {
		return &exitError{2, err}
	}
	if !out.OK {
		var failed []string
		for _, r := range out.Results {
			if !r.Report.OK() {
				failed = append(failed, r.Platform)
			}
		}
		return &exitError{1, errors.New("check: the image cannot start on " + strings.Join(failed, ", "))}
	}
	return nil
}

func writeCheckText(w io.Writer, out checkOutput) error {
	fmt.Fprintf(w, "image %s\ndigest %s\n", out.Ref, out.Digest)
	for _, r := range out.Results {
		fmt.Fprintf(w, "\n== %s (manifest %s, checked in %s)\n", r.Platform, r.ManifestDigest, time.Duration(r.CheckSeconds*float64(time.Second)).Round(10*time.Microsecond))
		if err := r.Report.Text(w); err != nil {
			return err
		}
	}
	return nil
}
