package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/internal/cache"
)

func init() {
	cacheCmd := &cobra.Command{
		Use:   "cache",
		Short: "Show and trim hil's cache (kernels, rootfs, snapshots, initramfs, logs, ...)",
		Long: `hil caches downloads and work under $HIL_CACHE (default ~/.cache/hil):
Debian kernels, flattened image root filesystems, system target snapshots
and boot images, console logs, apt trees and more. Everything there can be
recreated; it only saves time.

  hil cache du                        size of each kind, and the total
  hil cache prune --older-than 14d    remove what was not used for 14 days
  hil cache rm snapshots logs         remove every entry of these kinds
  hil cache rm --all                  remove every entry

Removal is safe while other hil processes run: an entry another process
holds (a snapshot being restored, a rootfs being flattened, an apt tree
being updated) is skipped and listed. The snapshot cache also has a cap of
its own (HIL_SNAPSHOT_CACHE_MAX, default 1GiB): after each new snapshot the
least recently used ones go.`,
	}
	var asJSON bool
	du := &cobra.Command{
		Use: "du [KIND...]",
		Example: `  hil cache du
  hil cache du snapshots rootfs --json`,
		Short: "Show the size of each kind of cache content",
		RunE: func(cmd *cobra.Command, args []string) error {
			root, kinds, err := cacheKinds(args, true)
			if err != nil {
				return &exitError{2, err}
			}
			return cacheDU(cmd.OutOrStdout(), root, kinds, asJSON)
		},
	}
	du.Flags().BoolVar(&asJSON, "json", false, "print as JSON")

	var olderThan string
	prune := &cobra.Command{
		Use: "prune --older-than DURATION [KIND...]",
		Example: `  hil cache prune --older-than 14d
  hil cache prune --older-than 36h snapshots logs`,
		Short: "Remove cache entries not used for a while (all kinds unless named)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if olderThan == "" {
				return &exitError{2, errors.New("--older-than is required, like --older-than 14d or 36h")}
			}
			age, err := parseAge(olderThan)
			if err != nil {
				return &exitError{2, fmt.Errorf("--older-than: %w", err)}
			}
			root, kinds, err := cacheKinds(args, true)
			if err != nil {
				return &exitError{2, err}
			}
			return cacheRemove(cmd.OutOrStdout(), root, kinds, time.Now().Add(-age))
		},
	}
	prune.Flags().StringVar(&olderThan, "older-than", "", "remove entries last used longer ago than this: 14d, 36h, 90m")

	var all bool
	rm := &cobra.Command{
		Use: "rm KIND... | --all",
		Example: `  hil cache rm snapshots logs
  hil cache rm --all`,
		Short: "Remove every entry of the named kinds (or of all with --all)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !all {
				names := []string{}
				for _, k := range cache.Kinds {
					names = append(names, k.Name)
				}
				return &exitError{2, fmt.Errorf("name the kinds to remove (%s) or give --all", strings.Join(names, ", "))}
			}
			if len(args) > 0 && all {
				return &exitError{2, errors.New("give kinds or --all, not both")}
			}
			root, kinds, err := cacheKinds(args, all)
			if err != nil {
				return &exitError{2, err}
			}
			// Everything is older than a moment from now.
			return cacheRemove(cmd.OutOrStdout(), root, kinds, time.Now().Add(time.Hour))
		},
	}
	rm.Flags().BoolVar(&all, "all", false, "remove every entry of every kind")

	cacheCmd.AddCommand(du, prune, rm)
	rootCmd.AddCommand(cacheCmd)
}

// cacheKinds resolves kind names (none: every kind present when all).
func cacheKinds(names []string, all bool) (string, []cache.Kind, error) {
	root, err := cache.Root()
	if err != nil {
		return "", nil, err
	}
	if len(names) == 0 && all {
		return root, cache.PresentKinds(root), nil
	}
	var kinds []cache.Kind
	for _, n := range names {
		k, err := cache.KindOf(root, n)
		if err != nil {
			return "", nil, err
		}
		kinds = append(kinds, k)
	}
	return root, kinds, nil
}

type duRow struct {
	Kind    string    `json:"kind"`
	Desc    string    `json:"desc"`
	Path    string    `json:"path"`
	Entries int       `json:"entries"`
	Bytes   int64     `json:"bytes"`
	LastUse time.Time `json:"last_used,omitzero"`
}

func cacheDU(w io.Writer, root string, kinds []cache.Kind, asJSON bool) error {
	var rows []duRow
	var total int64
	for _, k := range kinds {
		ents, err := cache.List(root, k)
		if err != nil {
			return &exitError{2, err}
		}
		r := duRow{Kind: k.Name, Desc: k.Desc, Path: root + "/" + k.Name, Entries: len(ents), Bytes: cache.Usage(root, k)}
		for _, e := range ents {
			if e.LastUse.After(r.LastUse) {
				r.LastUse = e.LastUse
			}
		}
		total += r.Bytes
		rows = append(rows, r)
	}
	if asJSON {
		if rows == nil {
			rows = []duRow{}
		}
		return printJSON(w, struct {
			Root       string  `json:"root"`
			Kinds      []duRow `json:"kinds"`
			TotalBytes int64   `json:"total_bytes"`
		}{root, rows, total})
	}
	fmt.Fprintf(w, "hil cache: %s\n", root)
	fmt.Fprintf(w, "%-10s %8s %11s  %-16s  %s\n", "KIND", "ENTRIES", "SIZE", "LAST USED", "WHAT")
	for _, r := range rows {
		last := "-"
		if !r.LastUse.IsZero() {
			last = r.LastUse.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(w, "%-10s %8d %11s  %-16s  %s\n", r.Kind, r.Entries, humanBytes(r.Bytes), last, r.Desc)
	}
	fmt.Fprintf(w, "%-10s %8s %11s\n", "total", "", humanBytes(total))
	return nil
}

// cacheRemove removes the entries of kinds last used before cutoff and
// says what it removed and what it left because another process uses it.
func cacheRemove(w io.Writer, root string, kinds []cache.Kind, cutoff time.Time) error {
	var removed, busy int
	var freed int64
	for _, k := range kinds {
		gone, inUse, err := cache.Prune(root, k, cutoff)
		for _, e := range gone {
			freed += e.Size
		}
		removed += len(gone)
		busy += len(inUse)
		if len(gone) > 0 || len(inUse) > 0 {
			fmt.Fprintf(w, "%-10s removed %d (%s)", k.Name, len(gone), humanBytes(sum(gone)))
			if len(inUse) > 0 {
				fmt.Fprintf(w, "; kept %d in use by another process:", len(inUse))
				for _, e := range inUse {
					fmt.Fprintf(w, " %s", e.Path)
				}
			}
			fmt.Fprintln(w)
		}
		if err != nil {
			return &exitError{2, err}
		}
	}
	fmt.Fprintf(w, "removed %d entr%s, %s freed", removed, plural(removed, "y", "ies"), humanBytes(freed))
	if busy > 0 {
		fmt.Fprintf(w, "; %d in use, kept", busy)
	}
	fmt.Fprintln(w)
	return nil
}

func sum(es []cache.Entry) int64 {
	var n int64
	for _, e := range es {
		n += e.Size
	}
	return n
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// parseAge is time.ParseDuration plus whole days ("14d").
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err == nil && n >= 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: expected a duration like 14d, 36h or 90m", s)
	}
	return d, nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
