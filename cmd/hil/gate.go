package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/promote/scenariogate"
	"github.com/hilproject/hil/harness/promote/staticgate"
	"github.com/hilproject/hil/harness/scenario"
)

// gateFlags are the flags of "hil gate"; the tester gets them too.
type gateFlags struct {
	image     string
	scenarios []string
	tag       string
	platforms []string
	targets   []string
	device    string
	report    string
	retries   int
	parallel  int
	dryRun    bool
	insecure  bool
	asJSON    bool
	noAttest  bool
	signKey   string
	runURL    string
	devices   string
	// shard, when set, tests only this part of the cases and decides
	// nothing (--shard, --timings); results, when set, decides from a
	// merged results directory instead of running (--results).
	shard      *scenario.Shard
	shardText  string
	timingFile string
	timings    scenario.Timings
	results    string
	// canary, when set, promotes to this tag first and moves --promote
	// only after the canary boards ran it through the window (canary.go).
	canary        string
	canaryBoards  string
	canaryWindow  time.Duration
	canaryRollout time.Duration
	// Board profiles every case runs as and that must each pass (--board,
	// --fleet), resolved with --board-profiles; not the device boards of
	// --device or --canary-boards.
	boardNames    []string
	fleet         string
	boardProfiles string
	fleetBoards   []board.Board
	catalog       *board.Catalog
	// progress receives one line per finished case (stderr).
	progress io.Writer
}

func init() {
	f := &gateFlags{}
	cmd := &cobra.Command{
		Use:   "gate [SCENARIO...] --image HOST/REPO:TAG --promote TAG",
		Short: "Test an image by digest and promote a tag to exactly that digest when everything passed",
		Long: `gate pins --image (a registry reference) to a digest once, requires every
--platform to be in it, runs the static startup check and every scenario
(SCENARIO, or --scenarios; default ./scenarios) on each --target for each
required platform (infra-errors are retried --retries times), and only
when everything passed re-resolves --image (refusing if it
moved meanwhile) and points --promote at the tested digest, pushing the
manifest or index as-is so the digest and every platform go along.

The result is attached to the tested digest as in-toto statements (the
standard test-result predicate https://in-toto.io/attestation/test-result/v0.1
and hil's detail predicate) in DSSE envelopes, signed with --sign-key (a
cosign key pair file, password in COSIGN_PASSWORD, or a PKCS#8 PEM key),
stored as an OCI referrer and at cosign's tag sha256-<hex>.att, where
cosign verify-attestation, Kyverno and policy-controller find them. Without
--sign-key the attestation is stored unsigned and no verifier accepts it.
See "hil attest".

--promote is a tag name in the image's repository (latest) or a full
reference (host/repo:tag). Credentials come from the Docker config and its
credential helpers. The scenarios (and every fixture they replay) and the
--report directory are checked before anything is pinned or booted; what
killed hil processes left on the host is removed first. SIGTERM or SIGINT
tears down and exits without promoting. Exit 0 promoted (or would be, with
--dry-run), 1 refused, 2 error.


A sharded gate (a CI matrix, a Kubernetes Indexed Job): each shard runs
"hil gate --shard i/n --report DIR_i" with the same --image, --scenarios,
--target and --platforms; it pins the digest, tests its part of the cases
and promotes nothing (exit 0 when its part passed, 1 when not). Then "hil
report merge DIR_1 ... --out MERGED" and "hil gate --results MERGED
--promote TAG" decide from the merged results without running anything:
the candidate is pinned again and must be the digest the results are for;
every case the scenarios plan must have a result, and every one must pass.
The candidate tag is checked again before the write, as always.

A canary stage: with --canary TAG the tested digest goes to TAG first (the
tag the canary boards' Watchtower pulls), then hil watches every board of
--canary-boards (names or tag:LABEL in --devices) for --canary-window: each
must run exactly that digest (within --canary-rollout) in the same
container, never restarted or exited, never unhealthy, healthy at the end
when it has a healthcheck. Only then does --promote move (if it still
points where it did before the gate; read back and verified). A failed
window stops there: --promote is untouched, TAG goes back to what it
pointed at before, the failure is recorded on the digest (so no rollback
ever returns to it) and the report names each board and what it showed
(exit 1). A canary board that does not answer is an infra-error (exit 2):
checked before anything is tested, and --promote is never moved.

Boards. --board pi0w,pi3b+ (also --boards), or --fleet FILE listing the
boards a fleet has (boards: [pi0w, pi3b+, pi4/64]), makes the boards the
requirement instead of --platform: each board's engine must find a
manifest in the candidate (containerd's matcher; a single-manifest image
is pulled whatever it is), that manifest is what is tested for the board,
held to the board's instruction set, on the target's model of the board,
and the gate promotes only when every board passed. The refusal names the
board: "static-check [static pi0w linux/arm/v7]: fail: libc.so.6 needs
ARMv7 ...", "board pi0w pulls nothing from ...". With --target static
each board's pull gets the static check alone, which any board can; QEMU
cannot model a Pi Zero or Pi 1 on the system target (unsupported: gate
those with --target static or user). The attestation names every test
scenario/target/board/platform (pi4/64 is written pi4-64) and lists the
board profiles by digest.`,
		Example: `  hil gate --image registry.lan/pcapwatch:candidate --promote latest
  hil gate scenarios/startup.yaml scenarios/arp-sweep.yaml --image registry.lan/pcapwatch:candidate \
           --target system --platform linux/arm/v7 --promote latest --report build/gate --sign-key cosign.key
  hil gate --image registry.lan/pcapwatch:candidate --target static --promote latest --json
  hil gate --image registry.lan/pcapwatch:candidate --target static,user --board pi0w,pi3b+ --promote latest
  hil gate --image registry.lan/pcapwatch:candidate --target static --fleet fleet.yaml --promote latest
  hil gate --image registry.lan/pcapwatch:candidate --shard 2/3 --report shard-2   # then hil report merge, and:
  hil gate --image registry.lan/pcapwatch:candidate --results merged --promote latest`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.scenarios = scenarioArgs(args, f.scenarios)
			return runGate(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.SetNormalizeFunc(normalizeFlags)
	addImageFlag(fl, &f.image, "candidate image in a registry: host/repo:tag or host/repo@sha256:... (required)")
	addScenariosFlag(fl, &f.scenarios)
	fl.StringVar(&f.tag, "promote", "", "tag to move to the tested digest: a tag name (latest) or host/repo:tag (required)")
	addPlatformFlag(fl, &f.platforms, []string{promote.DefaultPlatform.String()}, "each must be in the image and pass (not with --board or --fleet)")
	addBoardFlag(fl, &f.boardNames, "each must pass, testing the manifest its engine pulls (instead of --platform)")
	fl.StringVar(&f.fleet, "fleet", "", "a YAML file listing the boards a fleet has (boards: [pi0w, pi3b+]); like --board")
	fl.StringVar(&f.boardProfiles, "board-profiles", "", "a YAML file of board profiles to add to the table")
	fl.StringSliceVar(&f.targets, "target", []string{"system"}, targetUsage+", or static (the static startup check only)")
	fl.StringVar(&f.device, "device", "", "the board(s) for the device target: a name in --devices, names separated by commas, or tag:LABEL")
	addDevicesFlag(fl, &f.devices)
	fl.StringVar(&f.report, "report", "hil-report", "directory for the reports (JUnit, JSON, HTML) and the gate decision")
	addRetriesFlag(fl, &f.retries)
	addParallelFlag(fl, &f.parallel)
	fl.BoolVar(&f.dryRun, "dry-run", false, "do everything but write the tag and the attestation")
	fl.BoolVar(&f.insecure, "insecure", false, insecureUsage)
	addJSONFlag(fl, &f.asJSON)
	fl.BoolVar(&f.noAttest, "no-attest", false, "do not attach the test result to the digest (for registries that refuse OCI artifacts)")
	fl.StringVar(&f.shardText, "shard", "", "test only part i of n of the cases (i/n) and promote nothing; decide later with --results over the merged reports")
	fl.StringVar(&f.timingFile, "timings", "", "with --shard: balance the shards by the case durations in this results.json (or report directory) of an earlier run")
	fl.StringVar(&f.results, "results", "", "decide from this merged report directory (hil report merge) instead of running the scenarios")
	fl.StringVar(&f.signKey, "sign-key", "", "private key that signs the attestation: a cosign key pair file (password in $COSIGN_PASSWORD) or a PKCS#8 PEM key; KMS URIs are not supported. Without it the attestation is UNSIGNED")
	fl.StringVar(&f.canary, "canary", "", "promote to this canary tag first (a tag name or host/repo:tag) and move --promote only after the canary boards ran it healthily for --canary-window")
	fl.StringVar(&f.canaryBoards, "canary-boards", "", "with --canary: the canary boards in --devices, by name (pi-1,pi-2) or tag:LABEL")
	fl.DurationVar(&f.canaryWindow, "canary-window", 2*time.Minute, "with --canary: how long each canary board must run the digest healthily")
	fl.DurationVar(&f.canaryRollout, "canary-rollout", 5*time.Minute, "with --canary: how long a canary board may take to pull the digest and restart the app")
	fl.StringVar(&f.runURL, "run-url", "", "URL of the CI run, recorded in the attestation (default: the GitHub Actions run from $GITHUB_SERVER_URL/$GITHUB_REPOSITORY/$GITHUB_RUN_ID)")
	_ = cmd.MarkFlagRequired("image")
	rootCmd.AddCommand(cmd)
}

func runGate(cmd *cobra.Command, f *gateFlags) error {
	if err := requireRegistryRef("gate", f.image); err != nil {
		return &exitError{2, err}
	}
	if err := gateBoards(f, cmd.Flags().Changed("platform")); err != nil {
		return &exitError{2, err}
	}
	platforms, err := promote.ParsePlatforms(strings.Join(f.platforms, ","))
	if err != nil {
		return &exitError{2, fmt.Errorf("--platform: %w", err)}
	}
	if err := checkParallel(f.parallel); err != nil {
		return err
	}
	if f.retries < 0 {
		return &exitError{2, fmt.Errorf("--retries %d: want 0 or more", f.retries)}
	}
	if len(f.targets) == 0 {
		f.targets = []string{"system"}
	}
	if slices.Contains(f.targets, staticgate.Target) && len(f.targets) > 1 {
		return &exitError{2, fmt.Errorf("--target %s: static runs the static check alone; give it without other targets", strings.Join(f.targets, ","))}
	}
	if slices.Contains(f.targets, "device") && f.device == "" {
		return &exitError{2, fmt.Errorf("--target device needs --device NAME (the board to test on)")}
	}
	if f.shard, f.timings, err = shardFlags(f.shardText, f.timingFile); err != nil {
		return &exitError{2, err}
	}
	switch {
	case f.results != "" && f.shard != nil:
		return &exitError{2, errors.New("--results decides from the merged shards; --shard runs one: give one of them")}
	case f.results != "" && f.static():
		return &exitError{2, errors.New("--results holds scenario results; --target static runs no scenario")}
	case f.shard != nil && f.static():
		return &exitError{2, errors.New("--target static runs no scenario to shard")}
	case f.tag == "" && f.shard == nil:
		return &exitError{2, errors.New(`--promote is required: the tag to move to the tested digest (a shard, --shard, promotes nothing and needs none)`)}
	}
	canaryBoards, err := canaryBoards(f)
	if err != nil {
		return &exitError{2, err}
	}
	report, err := filepath.Abs(f.report)
	if err != nil {
		return &exitError{2, err}
	}
	f.report = report
	if err := checkWritable("--report", f.report); err != nil {
		return &exitError{2, err}
	}
	f.progress = cmd.ErrOrStderr()
	// The key is input: a missing or unreadable one stops the gate before
	// anything is pinned, tested or written.
	attester, err := gateAttester(f)
	if err != nil {
		return &exitError{2, err}
	}
	var test promote.TestFunc
	if f.results != "" {
		test, err = resultsTester(f)
	} else {
		test, err = gateTester(f)
	}
	if err != nil {
		return &exitError{2, err}
	}
	removeLeftovers(cmd.ErrOrStderr())
	reg := registryAccess(f.insecure)
	if f.shard != nil {
		return runGateShard(cmd, f, test, reg, platforms)
	}
	opts := []promote.Option{
		promote.WithRegistry(reg),
		promote.WithPlatforms(platforms...),
		promote.WithBoards(f.fleetBoards...),
		// The runner retries each case's infra errors itself; the gate
		// re-runs the whole test only for the static check.
		promote.WithRetries(gateRetries(f)),
		promote.WithVersion(hilVersion()),
		promote.WithLog(func(format string, args ...any) {
			fmt.Fprintf(cmd.ErrOrStderr(), "hil gate: "+format+"\n", args...)
		}),
	}
	if f.dryRun {
		opts = append(opts, promote.WithDryRun())
	}
	if attester != nil {
		opts = append(opts, promote.WithAttester(attester))
		if !attester.Signed() && !f.dryRun {
			fmt.Fprintln(cmd.ErrOrStderr(), "hil gate: WARNING: no --sign-key: the attestation will be stored UNSIGNED; cosign, policy engines and \"hil attest verify\" will not accept it")
		}
	}
	if f.canary != "" {
		return runCanary(cmd, f, test, opts, attester, canaryBoards)
	}
	d, gerr := promote.Gate(cmd.Context(), f.image, f.tag, test, opts...)
	if d != nil {
		if werr := scenariogate.WriteDecision(f.report, d, gerr); werr != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "hil gate: warning: %v\n", werr)
		}
		out := cmd.OutOrStdout()
		if f.asJSON {
			_ = printJSON(out, d)
		} else {
			printDecision(out, d, f.report, gerr)
		}
	}
	switch {
	case gerr != nil:
		return &exitError{2, gerr}
	case d.Promoted || (d.DryRun && d.Passed):
		return nil
	default:
		return &exitError{1, nil}
	}
}

func printDecision(w io.Writer, d *promote.Decision, reportDir string, gerr error) {
	if d.Verdict == "" {
		d.Settle(gerr)
	}
	verdict := d.Verdict
	if verdict == promote.WouldPromote {
		verdict += " (dry run)"
	}
	fmt.Fprintf(w, "gate: %s\n", colour(w, verdictColour(d.Verdict), verdict))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  candidate\t%s\n", d.Candidate)
	if d.Tested != "" {
		fmt.Fprintf(tw, "  tested\t%s\n", d.Tested)
	}
	if len(d.Platforms) > 0 {
		fmt.Fprintf(tw, "  platforms\t%s\n", strings.Join(d.Platforms, ", "))
	}
	if len(d.Boards) > 0 {
		fmt.Fprintf(tw, "  boards\t%s\n", strings.Join(d.Boards, ", "))
	}
	if n := len(d.Result.Outcomes); n > 0 {
		counts := map[promote.Verdict]int{}
		for _, o := range d.Result.Outcomes {
			counts[o.Verdict]++
		}
		var parts []string
		for _, v := range []promote.Verdict{promote.Pass, promote.Fail, promote.Unsupported, promote.InfraError} {
			if counts[v] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", counts[v], v))
			}
		}
		fmt.Fprintf(tw, "  verdicts\t%s (attempts: %d)\n", strings.Join(parts, ", "), d.Attempts)
	}
	fmt.Fprintf(tw, "  tag\t%s\n", d.Tag)
	fmt.Fprintf(tw, "  old digest\t%s\n", orNone(d.OldDigest))
	fmt.Fprintf(tw, "  new digest\t%s\n", orNone(d.NewDigest))
	if d.Attestation != "" {
		fmt.Fprintf(tw, "  attestation\t%s\n", d.Attestation)
	}
	for _, c := range d.Result.StaticChecks {
		if !c.OK {
			fmt.Fprintf(tw, "  static check %s\t%d problem(s):\n", c.ID, len(c.Problems))
			for _, p := range c.Problems {
				fmt.Fprintf(tw, "    - %s\n", indent(p, "      "))
			}
		}
	}
	rd := d.Result.ReportDir
	if rd == "" {
		rd = reportDir
	}
	fmt.Fprintf(tw, "  report\t%s\n", rd)
	if html := findHTML(rd); html != "" {
		fmt.Fprintf(tw, "  html report\t%s\n", html)
	}
	tw.Flush()
	reason := d.Reason
	if gerr != nil {
		reason = gerr.Error()
	}
	fmt.Fprintf(w, "  reason: %s\n", indent(reason, "    "))
	if len(d.Failures) > 1 {
		// Cases failing for the same reason (a static check problem fails
		// every scenario) are listed once.
		type key struct {
			verdict promote.Verdict
			reason  string
		}
		var order []key
		cases := map[key][]string{}
		for _, o := range d.Failures {
			k := key{o.Verdict, o.Reason}
			if _, ok := cases[k]; !ok {
				order = append(order, k)
			}
			cases[k] = append(cases[k], fmt.Sprintf("%s [%s]", o.Scenario, o.Where()))
		}
		for _, k := range order {
			fmt.Fprintf(w, "    - %s: %s: %s\n", strings.Join(cases[k], ", "), k.verdict, indent(k.reason, "      "))
		}
	}
}

func findHTML(dir string) string {
	if dir == "" {
		return ""
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.html"))
	sort.Strings(matches)
	for _, m := range matches {
		if filepath.Base(m) == "index.html" || filepath.Base(m) == "report.html" {
			return m
		}
	}
	if len(matches) > 0 {
		return matches[0]
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// gateAttester is the attester the flags ask for: nil with --no-attest,
// else one that signs with --sign-key (or stores unsigned without it).
func gateAttester(f *gateFlags) (*attest.Attester, error) {
	if f.noAttest {
		if f.signKey != "" {
			return nil, errors.New("--sign-key and --no-attest contradict each other: drop one")
		}
		return nil, nil
	}
	runURL := f.runURL
	if runURL != "" {
		u, err := url.Parse(runURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("--run-url %q: want an http(s) URL of the CI run", runURL)
		}
	} else {
		runURL = attest.RunURLFromEnv()
	}
	tool, err := attest.ExecutableResource("hil", hilVersion())
	if err != nil {
		// The version still names the tester; only the digest is missing.
		tool = promote.Resource{Name: "hil", Kind: "hil", Annotations: map[string]string{"version": hilVersion()}}
	}
	opts := []attest.Option{attest.WithRunURL(runURL), attest.WithTool(tool)}
	if f.signKey != "" {
		s, err := attest.LoadSigner(f.signKey, attest.PasswordFromEnv)
		if err != nil {
			return nil, fmt.Errorf("--sign-key: %w", err)
		}
		opts = append(opts, attest.WithSigner(s))
	}
	return attest.NewAttester(opts...), nil
}

// gateTester builds the test the gate runs on the pinned digest (a variable
// so that the CLI's tests can gate with a test of their own).
var gateTester = scenarioTester

// scenarioTester is the scenario gate (harness/promote/scenariogate) on
// --target, or with --target static the static check alone.
func scenarioTester(f *gateFlags) (promote.TestFunc, error) {
	if f.static() {
		return staticgate.Test(), nil
	}
	return scenariogate.Test(gateConfig(f))
}

// resultsTester is the test of "hil gate --results DIR": no boot, the
// verdicts come from a merged results.json (scenariogate.FromResults).
func resultsTester(f *gateFlags) (promote.TestFunc, error) {
	test, err := scenariogate.FromResults(gateConfig(f), f.results)
	if err != nil {
		return nil, fmt.Errorf("--results %s: %w", f.results, err)
	}
	return test, nil
}

// gateConfig is what the flags ask the scenario gate for.
func gateConfig(f *gateFlags) scenariogate.Config {
	cfg := scenariogate.Config{
		Scenarios: f.scenarios, Targets: f.targets, Devices: f.devices, Device: f.device,
		Retries: f.retries, Parallel: f.parallel, ReportDir: f.report, Progress: gateProgress(f),
		Shard: f.shard, Timings: f.timings, Version: hilVersion(), Tag: f.tag,
		Boards: f.fleetBoards, Catalog: f.catalog,
	}
	if w := f.progress; w != nil {
		cfg.Logf = func(format string, args ...any) { fmt.Fprintf(w, "hil gate: "+format+"\n", args...) }
	}
	return cfg
}

// gateProgress prints one line per finished case on stderr.
func gateProgress(f *gateFlags) func(scenario.Event) {
	w := f.progress
	if w == nil {
		return nil
	}
	var mu sync.Mutex
	return func(ev scenario.Event) {
		if ev.Kind != scenario.CaseFinished && ev.Kind != scenario.CaseRetrying || ev.Result == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		what := string(ev.Result.Verdict)
		if ev.Kind == scenario.CaseRetrying {
			what = "retrying after " + what
		}
		where := ev.Platform
		if ev.Board != "" {
			where = ev.Board + " " + ev.Platform
		}
		line := fmt.Sprintf("hil gate: %-16s %-9s %-13s %s (%s)", ev.Scenario, ev.Target, where, what, ev.Elapsed.Round(time.Millisecond))
		if ev.Result.Verdict != scenario.Pass && ev.Result.Reason != "" {
			line += ": " + ev.Result.Reason
		}
		fmt.Fprintln(w, line)
	}
}

// gateBoards resolves --board and --fleet (with --board-profiles) into
// f.fleetBoards; they replace --platform, which must then not be given.
func gateBoards(f *gateFlags, platformsGiven bool) error {
	f.fleetBoards, f.catalog = nil, nil // what an earlier run in this process resolved
	if len(f.boardNames) == 0 && f.fleet == "" && f.boardProfiles == "" {
		return nil
	}
	cat, err := boardCatalog(f.boardProfiles)
	if err != nil {
		return err
	}
	f.catalog = cat
	if len(f.boardNames) > 0 {
		if f.fleetBoards, err = cat.LookupList(f.boardNames...); err != nil {
			return err
		}
	}
	if f.fleet != "" {
		fleet, err := cat.LoadFleet(f.fleet)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, b := range f.fleetBoards {
			seen[b.Key()] = true
		}
		for _, b := range fleet {
			if !seen[b.Key()] {
				f.fleetBoards = append(f.fleetBoards, b)
			}
		}
	}
	if len(f.fleetBoards) > 0 && platformsGiven {
		return errors.New("--platform and --board/--fleet: a board tests the manifest its engine pulls; give one of them")
	}
	return nil
}

// static reports whether the gate runs the static check alone.
func (f *gateFlags) static() bool {
	return len(f.targets) == 1 && f.targets[0] == staticgate.Target
}

func gateRetries(f *gateFlags) int {
	if f.static() {
		return f.retries
	}
	return 0
}

// indent puts prefix before every line of s but the first.
func indent(s, prefix string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
