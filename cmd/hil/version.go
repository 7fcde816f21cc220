package main

import (
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/spf13/cobra"
)

// baseVersion is the release line this source is on. A build names itself
// baseVersion+g<commit> (semver build metadata), e.g. v0.1.0+g3cd917f2a1b4,
// with ".dirty" when the work tree had changes; that is what reports and
// attestations record.
const baseVersion = "v0.1.0"

// version, when set at build time (-ldflags "-X main.version=v0.1.0"),
// replaces baseVersion: release builds set it to their tag.
var version = ""

// commit is set by make (-ldflags "-X main.commit=<12 hex>[.dirty]").
var commit = ""

// Compiled on first use, not at package init, which every hil process pays for.
var commitRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{7,40}(\.dirty)?$`) })

// hilVersion is semver with the commit as build metadata: the stamped
// commit, else the one the Go toolchain recorded (go build with VCS
// stamping), else "unknown".
func hilVersion() string {
	v := baseVersion
	if version != "" {
		v = version
	}
	c := commit
	if c == "" {
		c = vcsCommit()
	}
	if !commitRE().MatchString(c) {
		return v + "+unknown"
	}
	return v + "+g" + c
}

func vcsCommit() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ".dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

func init() {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print hil's version",
		Long: `version prints hil's version: semver with the commit it was built from as
build metadata (v0.1.0+g3cd917f2a1b4, ".dirty" when the work tree had
changes; "+unknown" when the build recorded no commit). Reports and
attestations record the same string.`,
		Example: `  hil version
  hil --version
  hil version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]string{
					"version": hilVersion(), "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH,
				})
			}
			fmt.Fprintln(cmd.OutOrStdout(), versionLine())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as JSON")
	rootCmd.AddCommand(cmd)
	// hil --version says the same as hil version.
	rootCmd.Version = hilVersion()
	rootCmd.SetVersionTemplate(versionLine() + "\n")
}

func versionLine() string {
	return fmt.Sprintf("hil %s (%s, %s/%s)", hilVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
