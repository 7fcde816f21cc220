// Package scenariogate is the gate's test that runs hil's scenarios: it
// adapts the scenario runner to promote.Gate. The TestFunc it returns
// opens exactly the digest the gate pinned, runs every scenario on one
// target for every required platform (the static startup check first, as
// always), writes the runner's reports and returns each case's verdict as
// a promote.Outcome, with what the attestation records: the targets, the
// fixtures and every input by digest, and the results without the app's
// output or this host's directories.
//
// promote knows nothing of targets or scenarios; this package is where
// the two meet, beside promote/staticgate (the static check alone). hil
// gate is a thin caller of both:
//
//	test, err := scenariogate.Test(scenariogate.Config{Scenarios: "scenarios", Target: "system"})
//	...
//	d, err := promote.Gate(ctx, "registry.lan/app:candidate", "latest", test)
//
// FromResults decides from the merged reports of a sharded run instead,
// without running anything.
package scenariogate

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
)

// Config is what the gate's test runs and where its reports go.
type Config struct {
	// Scenarios is a scenario file or a directory of them.
	Scenarios string
	// Target is the registered name of the target the scenarios run on
	// (system, user, container, device).
	Target string
	// Devices is the board inventory and Device the board selection, for
	// the device target.
	Devices, Device string
	// Retries is how many times a case that ended in an infrastructure
	// error is run again (never a fail).
	Retries int
	// ReportDir, when set, receives the runner's reports (JUnit XML,
	// results.json, report.html).
	ReportDir string
	// Progress, when set, sees every case and step event.
	Progress func(scenario.Event)
	// Shard, when set, tests only that part of the cases (balanced by
	// Timings when set); the gate's decision then covers that part only,
	// so a sharded gate promotes nothing (see FromResults).
	Shard   *scenario.Shard
	Timings scenario.Timings
	// Version is the tester's version, Tag the tag the gate moves: both
	// for the reports.
	Version, Tag string
	// Logf, when set, receives notes (results FromResults does not judge).
	Logf func(format string, args ...any)
	// Boards, when set, are the boards every case runs as (the gate's
	// promote.WithBoards): each on the manifest the pin says it pulls.
	// Catalog resolves the scenarios' boards: names (nil: the built-in
	// profiles).
	Boards  []board.Board
	Catalog *board.Catalog
}

func (cfg Config) parseOptions() []scenario.ParseOption {
	if cfg.Catalog == nil {
		return nil
	}
	return []scenario.ParseOption{scenario.WithBoardCatalog(cfg.Catalog)}
}

// Test checks the gate's input before anything is pinned or booted (the
// scenarios parse and every fixture they replay scans, the target is
// registered and its boards are in the inventory): such an error is the
// input's, never a verdict on the image. The TestFunc then runs on the
// pinned digest.
func Test(cfg Config) (promote.TestFunc, error) {
	if _, err := os.Stat(cfg.Scenarios); err != nil {
		return nil, fmt.Errorf("scenarios %s: %w", cfg.Scenarios, err)
	}
	if _, err := scenario.LoadFiles([]string{cfg.Scenarios}, cfg.parseOptions()...); err != nil {
		return nil, fmt.Errorf("loading scenarios from %s: %w", cfg.Scenarios, err)
	}
	if _, err := target.New(cfg.Target, target.Params{Inventory: cfg.Devices, Boards: cfg.Device}); err != nil {
		return nil, err
	}
	return func(ctx context.Context, pin promote.Pinned) (promote.Result, error) {
		res := promote.Result{Started: time.Now(), ReportDir: cfg.ReportDir}
		retries := cfg.Retries
		s, err := harness.LoadSuite(harness.Config{
			// Exactly the pinned digest, through the gate's registry access.
			Image:        "registry:" + pin.Digest.String(),
			Scenarios:    []string{cfg.Scenarios},
			Targets:      []string{cfg.Target},
			Platforms:    platformStrings(pin),
			Boards:       cfg.Boards,
			BoardCatalog: cfg.Catalog,
			Retries:      &retries,
			ImageOptions: []image.Option{image.WithRegistry(pin.Registry)},
			Progress:     cfg.Progress,
			Devices:      cfg.Devices,
			Device:       cfg.Device,
			Shard:        cfg.Shard,
			Timings:      cfg.Timings,
		})
		if err != nil {
			return res, fmt.Errorf("loading scenarios from %s: %w", cfg.Scenarios, err)
		}
		_, img, err := s.Runner(ctx)
		if err != nil {
			return res, err
		}
		if img.Digest() != pin.Digest.DigestStr() {
			return res, fmt.Errorf("the runner opened %s, not the pinned %s", img.Digest(), pin.Digest.DigestStr())
		}
		results, err := s.RunAll(ctx, nil)
		if err != nil {
			return res, err
		}
		res.Finished = time.Now()
		res.Targets = s.TargetNames()
		res.Fixtures = map[string]string{}
		roots := Roots(cfg)
		for _, r := range results {
			res.Outcomes = append(res.Outcomes, Outcome(r, roots))
			for k, v := range r.Fixtures {
				res.Fixtures[attest.ScrubString(k, roots)] = v
			}
		}
		res.Configuration = append(attest.RunConfiguration(cfg.Scenarios, s.Scenarios(), results), attest.BoardConfiguration(cfg.Boards)...)
		if s.Planned() == 0 {
			return res, fmt.Errorf("no scenario in %s runs on target %s%s", cfg.Scenarios, cfg.Target, onBoards(cfg.Boards))
		}
		if cfg.ReportDir != "" {
			if err := writeReports(cfg, pin, results, s.Planned()); err != nil {
				return res, fmt.Errorf("writing the reports: %w", err)
			}
		}
		res.Report = AttestationReport(results, roots)
		return res, nil
	}, nil
}

// platformStrings are the platforms to plan: the required ones, or none
// with boards (each board's case runs what the board pulls).
func platformStrings(pin promote.Pinned) []string {
	if len(pin.Boards) > 0 {
		return nil
	}
	var ps []string
	for _, p := range pin.Required {
		ps = append(ps, p.String())
	}
	return ps
}

// planner plans the gate's cases as its runner does: the target, the
// required platforms, and each board on the manifest the pin says it
// pulls.
func planner(cfg Config, pin promote.Pinned) scenario.Planner {
	p := scenario.Planner{Targets: []string{cfg.Target}, Platforms: platformStrings(pin), Boards: cfg.Boards}
	if len(cfg.Boards) > 0 {
		p.Pull = func(b board.Board) (board.Pulled, error) {
			for _, bp := range pin.Boards {
				if bp.Board.Key() == b.Key() && bp.Platform.Architecture != "" {
					return board.Pulled{Platform: bp.Platform, Note: bp.Note}, nil
				}
			}
			return board.Pulled{}, fmt.Errorf("%s pulls nothing from %s", b, pin.Digest)
		}
	}
	return p
}

func onBoards(bs []board.Board) string {
	if len(bs) == 0 {
		return ""
	}
	var names []string
	for _, b := range bs {
		names = append(names, b.String())
	}
	return " as a board of " + strings.Join(names, ", ")
}

// writeReports writes the runner's JUnit XML, JSON and HTML reports into
// cfg.ReportDir.
func writeReports(cfg Config, pin promote.Pinned, results []scenario.Result, planned int) error {
	opts := []report.Option{
		report.WithTitle("hil gate: " + pin.Ref),
		report.WithImage(pin.Ref, pin.Digest.DigestStr()),
		report.WithMeta("tested digest", pin.Digest.String()),
		report.WithMeta("target", cfg.Target),
	}
	if cfg.Version != "" {
		opts = append(opts, report.WithVersion(cfg.Version))
	}
	if cfg.Tag != "" {
		opts = append(opts, report.WithMeta("promote", cfg.Tag))
	}
	if cfg.Shard != nil {
		opts = append(opts, report.WithShard(*cfg.Shard, planned))
	}
	_, err := report.New(results, opts...).WriteDir(cfg.ReportDir)
	return err
}

// FromResults is the test of a gate that decides from the merged results
// of a sharded run (hil report merge) in dir, without running anything.
// It vouches for the pinned digest only when the results are for exactly
// that digest and hold a result for every case cfg's scenarios plan on
// its target and the required platforms; a case without a result is an
// infra-error (hil cannot know how it went), so the gate refuses. Both
// inputs are read before anything is pinned.
func FromResults(cfg Config, dir string) (promote.TestFunc, error) {
	rep, err := report.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the merged results: %w", err)
	}
	scs, err := scenario.LoadFiles([]string{cfg.Scenarios}, cfg.parseOptions()...)
	if err != nil {
		return nil, fmt.Errorf("loading scenarios from %s: %w", cfg.Scenarios, err)
	}
	return func(ctx context.Context, pin promote.Pinned) (promote.Result, error) {
		res := promote.Result{Started: rep.Start, Finished: rep.Start.Add(rep.Duration), ReportDir: dir, Targets: []string{cfg.Target}}
		digest := pin.Digest.DigestStr()
		if rep.ImageDigest != digest {
			for _, p := range pin.Required {
				res.Outcomes = append(res.Outcomes, promote.Outcome{Platform: p.String(), Target: cfg.Target, Scenario: "(results)", Verdict: promote.InfraError,
					Reason: fmt.Sprintf("the results in %s are for %s (%s), not for the pinned candidate %s: they cannot vouch for it", dir, orNone(rep.ImageDigest), rep.ImageRef, digest)})
			}
			return res, nil
		}
		plan := planner(cfg, pin).Cases(scs)
		if len(plan) == 0 {
			return res, fmt.Errorf("no scenario in %s runs on target %s%s", cfg.Scenarios, cfg.Target, onBoards(cfg.Boards))
		}
		byKey := map[scenario.CaseKey]scenario.Result{}
		for _, r := range rep.Results {
			if r.ImageDigest == digest {
				byKey[r.Key()] = r
			}
		}
		var used []scenario.Result
		res.Fixtures = map[string]string{}
		roots := Roots(cfg)
		for _, c := range plan {
			k := c.Key()
			r, ok := byKey[k]
			if !ok {
				res.Outcomes = append(res.Outcomes, promote.Outcome{Platform: k.Platform, Target: k.Target, Board: k.Board, Scenario: k.Scenario, Verdict: promote.InfraError,
					Reason: fmt.Sprintf("no result for this case in %s: the merged shards do not cover every case the scenarios plan (a shard missing or interrupted?)", dir)})
				continue
			}
			delete(byKey, k)
			used = append(used, r)
			res.Outcomes = append(res.Outcomes, Outcome(r, roots))
			for k, v := range r.Fixtures {
				res.Fixtures[attest.ScrubString(k, roots)] = v
			}
		}
		if len(byKey) > 0 && cfg.Logf != nil {
			var extra []string
			for k := range byKey {
				extra = append(extra, k.String())
			}
			sort.Strings(extra)
			cfg.Logf("%d result(s) in %s are not cases of these scenarios on %s and are not judged: %s", len(extra), dir, cfg.Target, strings.Join(extra, ", "))
		}
		res.Configuration = append(attest.RunConfiguration(cfg.Scenarios, scs, used), attest.BoardConfiguration(cfg.Boards)...)
		res.Report = AttestationReport(used, roots)
		return res, nil
	}, nil
}

// Verdict is the gate's verdict for a scenario verdict. The two are
// separate types on purpose (promote knows nothing of scenarios), so the
// mapping is spelled out: a verdict this version does not know is an
// infra-error, which refuses, never a pass.
func Verdict(v scenario.Verdict) promote.Verdict {
	switch v {
	case scenario.Pass:
		return promote.Pass
	case scenario.Fail:
		return promote.Fail
	case scenario.Unsupported:
		return promote.Unsupported
	case scenario.InfraError:
		return promote.InfraError
	}
	return promote.InfraError
}

// Outcome is r as the gate judges it, its reason without the host
// directories roots name.
func Outcome(r scenario.Result, roots []attest.Root) promote.Outcome {
	o := promote.Outcome{
		Platform: r.Platform, Target: r.Target, Board: r.BoardOf(), Scenario: r.Scenario,
		Verdict: Verdict(r.Verdict), Reason: attest.ScrubString(r.Reason, roots), Attempts: r.Attempts,
	}
	if o.Verdict == promote.InfraError && r.Verdict != scenario.InfraError {
		o.Reason = fmt.Sprintf("the runner's verdict %q is not one this gate knows; %s", r.Verdict, o.Reason)
	}
	return o
}

// AttestationReport is the runner's results without the app's output (the
// attestation says what was tested and how it went; the full log stays in
// the report directory) and without this host's directories.
func AttestationReport(results []scenario.Result, roots []attest.Root) json.RawMessage {
	slim := make([]scenario.Result, len(results))
	for i, r := range results {
		r.Output, r.StaticCheck = nil, ""
		slim[i] = r
	}
	b, err := json.Marshal(slim)
	if err != nil {
		return nil
	}
	b, err = attest.ScrubJSON(b, roots)
	if err != nil {
		return nil
	}
	return b
}

// Roots are the host directories a gate's attestation must not name: the
// scenario and report directories, hil's cache, the working directory.
func Roots(cfg Config) []attest.Root {
	roots := attest.HostRoots()
	if abs, err := filepath.Abs(cfg.Scenarios); err == nil {
		roots = append(roots, attest.Root{Path: abs, Label: "."})
	}
	if cfg.ReportDir != "" {
		roots = append(roots, attest.Root{Path: cfg.ReportDir, Label: "$REPORT"})
	}
	return roots
}

// Board is the board a case without a board profile ran as on target, as
// the attestation names it: the system target's generic machine, "virt";
// "" for targets that model none. A case with a board names its board
// (scenario.Result.BoardOf).
func Board(target string) string {
	return (&scenario.Result{Target: target}).BoardOf()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
