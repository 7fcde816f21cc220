package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
)

func init() {
	var (
		imageRef         string
		targets          []string
		platforms        []string
		reportDir        string
		retries          int
		parallel         int
		insecure         bool
		allowUnsupported bool
		progressMode     string
		devices, device  string
		shard, timings   string
		scenarios        []string
		boards           []string
		boardProfiles    string
	)
	cmd := &cobra.Command{
		Use: "run [SCENARIO...] --image REF",
		Example: `  hil run --image oci:build/images/pcapwatch                       # ./scenarios on the system target
  hil run scenarios/startup.yaml --image oci:build/images/pcapwatch --target user --platform linux/amd64
  hil run --image registry.lan/pcapwatch:candidate --target system,user --report build/report
  hil run --image oci:build/images/pcapwatch --target system,user --board pi0w,pi3b+
  hil run --image oci:build/images/pcapwatch --progress json > events.jsonl   # for CI systems
  hil run --image REF --shard 2/3 --timings last/results.json --report shard-2`,
		Short: "Run scenarios against an image on targets and report the verdicts",
		Long: `run boots the image on each target and runs every scenario on it: the
static startup check first, then boot, readiness, and the scenario's steps
(replay fixtures, expect output, frames, exit). SCENARIO is a scenario file
or a directory of them (default: ./scenarios).

A verdict per scenario × target × board × platform: pass, fail (the step, the
expectation and what was seen), unsupported (the target cannot do what a
step needs), infra-error (the harness or host failed, or the device died
during the case: named with the step, retried --retries times, never a
pass). With --report DIR, junit.xml, results.json and report.html go there;
the directory is checked writable before anything boots.

A scenario is refused before anything boots, with file:line:col, when it
is malformed, when a fixture it replays is not an Ethernet pcap/pcapng or
is broken (the record and byte offset are named), when its replays and
waits cannot fit its timeout (default 5m), or when it is over the size
limits (1 MiB, 100000 YAML nodes, 1000 steps, 4096 env entries, 4096
entrypoint+args words, 64 KiB per string). See scenarios/README.md.

SIGTERM or SIGINT stops the run and tears everything down (QEMU,
namespaces, veth pairs, temp dirs) within seconds; a second signal exits
at once. At start, hil removes what hil processes that were killed left
behind (their QEMU socket dirs, veth pairs, namespaces, cache locks); a
live run's are never touched.

Progress is a redrawn line on a terminal (as wide as the terminal, long
names shortened in the middle, coloured unless NO_COLOR is set), plain
lines otherwise (CI), or with --progress json one JSON object per line
(case_start, step_start, step_activity, step, case_retry, verdict; the
field names of results.json; schemas/cli.schema.json#/$defs/progress_event).
A first run says what it is fetching or building while it boots (the
Debian kernel, the guest init, the boot image).

The device target runs on a real board over SSH: --target device
--devices devices.yaml --device pi-lab-1 (see the README's "Testing on a
real Pi").

Boards. --board pi0w,pi3b+ (also --boards) runs every case as each board
(a scenario's boards: keeps those of them it lists; without --board a
scenario runs as its own boards, or as none): the board's engine picks
the manifest from the image (containerd's matcher; none is a fail that
lists what the index has), the static check holds it to the board's
instruction set, and the targets model the board: system boots the
board's QEMU machine, CPU, memory and kernel (QEMU cannot model the
ARM1176 of a Pi Zero or Pi 1: unsupported there), user and container run
qemu-user with the board's CPU (qemu-arm -cpu arm1176 for a Pi Zero), and
device refuses a board of another model. A SIGILL on a board fails the
case as "illegal instruction on BOARD (CPU)". A case is then scenario ×
target × board × platform everywhere: progress, reports, shards. See
"hil boards".

--shard i/n runs only the i-th of n parts of the cases (scenario × target
× platform), for CI matrices and Kubernetes Indexed Jobs: every process
plans the same cases and takes its part, so each case runs in exactly one
shard. The parts have equal counts, or equal expected time with --timings
(a results.json of an earlier run, or its report directory). Put each
shard's --report in its own directory and join them with "hil report
merge"; "hil gate --results" decides from the merged results.

Exit status: 0 every case passed, 1 a case failed (or was unsupported,
unless --allow-unsupported), 2 infra errors or the run could not start.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if imageRef == "" {
				return &exitError{2, errNeedImage}
			}
			if err := checkParallel(parallel); err != nil {
				return err
			}
			args = scenarioArgs(args, scenarios)
			switch progressMode {
			case "auto", "line", "plain", "json", "none":
			default:
				return &exitError{2, fmt.Errorf("--progress %q: want auto, line, plain, json or none", progressMode)}
			}
			removeLeftovers(cmd.ErrOrStderr())
			iopts := []image.Option{image.WithRegistry(registryAccess(insecure))}
			o := runOptions{
				image: imageRef, scenarios: args, targets: targets, platforms: platforms,
				reportDir: reportDir, retries: retries, parallel: parallel, imageOpts: iopts,
				allowUnsupported: allowUnsupported, progress: progressMode,
				devices: devices, device: device, errOut: cmd.ErrOrStderr(),
			}
			if len(boards) > 0 || boardProfiles != "" {
				cat, err := boardCatalog(boardProfiles)
				if err != nil {
					return &exitError{2, err}
				}
				o.catalog = cat
				if len(boards) > 0 {
					if len(platforms) > 0 {
						return &exitError{2, errors.New("--platform and --board: a board runs the manifest its engine pulls; give one of them")}
					}
					if o.boards, err = cat.LookupList(boards...); err != nil {
						return &exitError{2, err}
					}
				}
			}
			var err error
			if o.shard, o.timings, err = shardFlags(shard, timings); err != nil {
				return &exitError{2, err}
			}
			return runScenarios(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.SetNormalizeFunc(normalizeFlags)
	addImageFlag(f, &imageRef, "")
	addScenariosFlag(f, &scenarios)
	addTargetFlag(f, &targets)
	addDevicesFlag(f, &devices)
	f.StringVar(&device, "device", "", "the board(s) for the device target: a name in --devices, names separated by commas, or tag:LABEL (several boards run in parallel)")
	addBoardFlag(f, &boards, "run every case as these boards, each on the manifest its engine pulls (instead of --platform)")
	f.StringVar(&boardProfiles, "board-profiles", "", "a YAML file of board profiles to add to the table")
	addPlatformFlag(f, &platforms, nil, "run these instead of the scenarios' own")
	f.StringVar(&reportDir, "report", "", "write junit.xml, results.json, report.html and the console logs into this directory")
	addRetriesFlag(f, &retries)
	addParallelFlag(f, &parallel)
	f.BoolVar(&insecure, "insecure", false, insecureUsage)
	f.BoolVar(&allowUnsupported, "allow-unsupported", false, "exit 0 when every case passed or was unsupported")
	f.StringVar(&progressMode, "progress", "auto", "progress output: auto (line on a terminal, plain otherwise), line, plain, json (one event per line, for CI systems), none (verdicts only)")
	f.StringVar(&shard, "shard", "", "run only part i of n of the cases (i/n, like 2/3); merge the shards' reports with hil report merge")
	f.StringVar(&timings, "timings", "", "with --shard: balance the shards by the case durations in this results.json (or report directory) of an earlier run")
	rootCmd.AddCommand(cmd)
}

// shardFlags reads --shard and --timings (HIL_SHARD is the Ginkgo suite's).
func shardFlags(shard, timings string) (*scenario.Shard, scenario.Timings, error) {
	if shard == "" {
		if timings != "" {
			return nil, nil, errors.New("--timings balances shards: give --shard i/n too")
		}
		return nil, nil, nil
	}
	s, err := scenario.ParseShard(shard)
	if err != nil {
		return nil, nil, fmt.Errorf("--shard: %w", err)
	}
	var t scenario.Timings
	if timings != "" {
		if t, err = scenario.ReadTimings(timings); err != nil {
			return nil, nil, fmt.Errorf("--timings: %w", err)
		}
	}
	return &s, t, nil
}

type runOptions struct {
	image            string
	scenarios        []string
	targets          []string
	platforms        []string
	reportDir        string
	retries          int
	parallel         int
	imageOpts        []image.Option
	allowUnsupported bool
	progress         string
	errOut           io.Writer // the run's own lines with --progress json
	devices, device  string
	shard            *scenario.Shard
	timings          scenario.Timings
	boards           []board.Board
	catalog          *board.Catalog // nil: the built-in profiles
}

func runScenarios(ctx context.Context, out io.Writer, o runOptions) error {
	var popts []scenario.ParseOption
	if o.catalog != nil {
		popts = append(popts, scenario.WithBoardCatalog(o.catalog))
	}
	scs, err := scenario.LoadFiles(o.scenarios, popts...)
	if err != nil {
		return &exitError{2, err}
	}
	if o.reportDir != "" {
		if err := checkWritable("--report", o.reportDir); err != nil {
			return &exitError{2, err}
		}
	}
	mode := o.progress
	if mode == "auto" {
		mode = "plain"
		if f, ok := out.(*os.File); ok && isTerminal(f) {
			mode = "line"
		}
	}
	pr := newProgress(out, mode)
	if o.errOut != nil {
		pr.info = o.errOut
	}
	retries := o.retries
	runner, img, err := harness.NewRunner(ctx, harness.Config{
		Image: o.image, Targets: o.targets, Platforms: o.platforms,
		Retries: &retries, Parallel: o.parallel, Progress: pr.event, ImageOptions: o.imageOpts,
		Devices: o.devices, Device: o.device, Boards: o.boards,
	})
	if err != nil {
		return &exitError{2, err}
	}
	var cases []scenario.Case
	for _, sc := range scs {
		cases = append(cases, runner.Plan(sc)...)
	}
	if len(cases) == 0 {
		if len(o.boards) > 0 {
			return &exitError{2, fmt.Errorf("no case to run: none of the %d scenarios lists a target of %s and a board of %s", len(scs), strings.Join(o.targets, ", "), boardNames(o.boards))}
		}
		return &exitError{2, fmt.Errorf("no case to run: none of the %d scenarios lists a target of %s", len(scs), strings.Join(o.targets, ", "))}
	}
	planned := len(cases)
	shardNote := ""
	if o.shard != nil {
		cases = o.shard.Select(cases, o.timings)
		shardNote = fmt.Sprintf(", shard %s: %d of %d case(s)", o.shard, len(cases), planned)
	}
	pr.println("hil run: %s (%s), %d scenario(s), %d case(s) on %s%s", img.Ref(), img.Digest(), len(scs), planned, strings.Join(runner.Targets(), ", "), shardNote)
	pr.total = len(cases)
	start := time.Now()
	results := runner.RunCases(ctx, cases, nil)
	pr.stop()
	sum := scenario.Summarize(results)
	pr.println("%d case(s) in %s: %d pass, %d fail, %d unsupported, %d infra-error",
		sum.Total, time.Since(start).Round(10*time.Millisecond), sum.Pass, sum.Fail, sum.Unsupported, sum.InfraError)
	if o.reportDir != "" {
		ropts := []report.Option{report.WithVersion(hilVersion()), report.WithImage(img.Ref(), img.Digest())}
		if o.shard != nil {
			// An empty shard still reports: the merge checks every shard
			// is there, and which image it tested.
			ropts = append(ropts, report.WithShard(*o.shard, planned))
		}
		rep := report.New(results, ropts...)
		paths, err := rep.WriteDir(o.reportDir)
		if err != nil {
			return &exitError{2, err}
		}
		pr.println("reports: %s", strings.Join(paths, " "))
	}
	switch {
	case ctx.Err() != nil:
		return &exitError{2, fmt.Errorf("interrupted after %d of %d case(s)", len(results), len(cases))}
	case sum.Fail > 0:
		return &exitError{1, fmt.Errorf("%d case(s) failed", sum.Fail)}
	case sum.InfraError > 0:
		return &exitError{2, fmt.Errorf("%d case(s) ended in infra errors (not a verdict on the app)", sum.InfraError)}
	case sum.Unsupported > 0 && !o.allowUnsupported:
		return &exitError{1, fmt.Errorf("%d case(s) unsupported on their target (--allow-unsupported to accept)", sum.Unsupported)}
	}
	return nil
}

func boardNames(bs []board.Board) string {
	var s []string
	for _, b := range bs {
		s = append(s, b.String())
	}
	return strings.Join(s, ", ")
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
