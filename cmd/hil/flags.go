package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// One CLI grammar: the flags that several verbs share are declared here,
// once, with one name, shape and default. Lists are string slices: a flag
// may be repeated (--target system --target user) or given a comma list
// (--target system,user).

const (
	targetUsage   = "target(s) to run on: system, user, container, device (repeat the flag or separate with commas)"
	platformUsage = "platform(s), e.g. linux/arm/v7 (repeat the flag or separate with commas)"
	boardUsage    = "board(s), e.g. pi0w,pi3b+/32 (repeat the flag or separate with commas; see hil boards)"
	scenarioUsage = "scenario file(s) or directories of them, as the arguments (repeat the flag or separate with commas; default ./scenarios)"
	retriesUsage  = "how many times a case that ended in an infrastructure error is run again (never a fail)"
	imageUsage    = "image under test: oci:DIR, docker-archive:FILE, docker-daemon:NAME or a registry reference"
	devicesUsage  = "board inventory for the device target (see the README's \"Testing on a real Pi\")"
	jsonUsage     = "print the result as JSON (schemas/README.md); a failure prints {\"error\": {...}}"
)

// defaultRetries is the one retries default of run and gate (and of the
// library: scenario.WithRetries).
const defaultRetries = 1

func addTargetFlag(fs *pflag.FlagSet, p *[]string) {
	fs.StringSliceVar(p, "target", []string{"system"}, targetUsage)
}

func addPlatformFlag(fs *pflag.FlagSet, p *[]string, def []string, what string) {
	fs.StringSliceVar(p, "platform", def, platformUsage+": "+what)
}

func addBoardFlag(fs *pflag.FlagSet, p *[]string, what string) {
	fs.StringSliceVar(p, "board", nil, boardUsage+": "+what)
}

func addScenariosFlag(fs *pflag.FlagSet, p *[]string) {
	fs.StringSliceVar(p, "scenarios", nil, scenarioUsage)
}

func addRetriesFlag(fs *pflag.FlagSet, p *int) {
	fs.IntVar(p, "retries", defaultRetries, retriesUsage)
}

func addParallelFlag(fs *pflag.FlagSet, p *int) {
	fs.IntVar(p, "parallel", 1, "run up to this many cases at once (a fleet run over several boards overlaps one case's waiting with another's emulation; keep it at or below the cores)")
}

// checkParallel refuses a --parallel below 1.
func checkParallel(n int) error {
	if n < 1 {
		return &exitError{2, fmt.Errorf("--parallel %d: want 1 or more", n)}
	}
	return nil
}

func addImageFlag(fs *pflag.FlagSet, p *string, usage string) {
	if usage == "" {
		usage = imageUsage
	}
	fs.StringVar(p, "image", "", usage)
}

func addDevicesFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "devices", "devices.yaml", devicesUsage)
}

func addJSONFlag(fs *pflag.FlagSet, p *bool) {
	fs.BoolVar(p, "json", false, jsonUsage)
}

// oldSpellings are the plural flag names of earlier releases, accepted
// as aliases until v0.2.0 (with a note on stderr).
var oldSpellings = map[string]string{
	"targets":        "target",
	"platforms":      "platform",
	"boards":         "board",
	"require-boards": "require-board",
}

var (
	oldUsedMu sync.Mutex
	oldUsed   = map[string]bool{}
)

// normalizeFlags maps an old plural spelling to the flag's name, and
// remembers that it was used.
func normalizeFlags(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	if to, ok := oldSpellings[name]; ok {
		oldUsedMu.Lock()
		oldUsed[name] = true
		oldUsedMu.Unlock()
		name = to
	}
	return pflag.NormalizedName(name)
}

// noteOldSpellings says on stderr which old spellings the command line
// used.
func noteOldSpellings(cmd *cobra.Command) {
	oldUsedMu.Lock()
	var used []string
	for n := range oldUsed {
		used = append(used, n)
	}
	clear(oldUsed)
	oldUsedMu.Unlock()
	sort.Strings(used)
	for _, n := range used {
		fmt.Fprintf(cmd.ErrOrStderr(), "hil: note: --%s is spelled --%s now (the old spelling is accepted until v0.2.0)\n", n, oldSpellings[n])
	}
}

// scenarioArgs is the scenarios of run and gate: the arguments and
// --scenarios together, ./scenarios when neither names any.
func scenarioArgs(args, flag []string) []string {
	out := append(append([]string(nil), args...), flag...)
	if len(out) == 0 {
		out = []string{"scenarios"}
	}
	return out
}

// needArgs is an Args check that says what is expected instead of cobra's
// "accepts 1 arg(s), received 0": "check needs an IMAGE: ...".
func needArgs(min, max int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		verb := cmd.CommandPath()
		verb = strings.TrimPrefix(verb, "hil ")
		switch {
		case len(args) < min && len(args) == 0:
			return fmt.Errorf("%s needs %s", verb, what)
		case len(args) < min:
			return fmt.Errorf("%s needs %s; got only %s", verb, what, strings.Join(args, " "))
		case max >= 0 && len(args) > max:
			return fmt.Errorf("%s takes %s; got %d arguments (%s): flags go before or after, each as --name value", verb, what, len(args), strings.Join(args, " "))
		}
		return nil
	}
}

// noArgs is cobra.NoArgs, saying which flag the argument probably meant.
func noArgs(hint string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("%s takes no arguments (got %s): %s", strings.TrimPrefix(cmd.CommandPath(), "hil "), strings.Join(args, " "), hint)
		}
		return nil
	}
}

// requireRegistryRef refuses what is not a registry reference, for the
// verbs that move tags (gate, watch, rollback): "gate needs a registry
// reference such as host/repo:tag; got an OCI layout (oci:DIR)".
func requireRegistryRef(verb, ref string) error {
	kind := ""
	switch {
	case ref == "":
		return fmt.Errorf("%s needs a registry reference such as host/repo:tag (--image)", verb)
	case strings.HasPrefix(ref, "oci:"):
		kind = "an OCI layout"
	case strings.HasPrefix(ref, "docker-archive:"):
		kind = "a docker save archive"
	case strings.HasPrefix(ref, "docker-daemon:"):
		kind = "an image in a Docker engine"
	default:
		if st, err := os.Stat(ref); err == nil {
			kind = "a local path"
			if st.IsDir() {
				kind = "a local directory"
			}
		}
	}
	if kind == "" {
		return nil
	}
	return fmt.Errorf("%s needs a registry reference such as host/repo:tag; got %s (%s): push it to a registry first (a registry on loopback works with --insecure)", verb, kind, ref)
}

var errNeedImage = errors.New("--image is required, e.g. --image oci:build/images/pcapwatch or --image registry.lan/app:1.4")
