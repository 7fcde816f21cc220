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
//	test, err := scenariogate.Test(scenariogate.Config{Scenarios: []string{"scenarios"}, Targets: []string{"system"}})
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
	// Scenarios are scenario files or directories of them (as hil run
	// takes them).
	Scenarios []string
	// Targets are the registered names of the targets the scenarios run
	// on (system, user, container, device; default system).
	Targets []string
	// Devices is the board inventory and Device the board selection, for
	// the device target.
	Devices, Device string
	// Retries is how many times a case that ended in an infrastructure
	// error is run again (never a fail).
	Retries int
	// Parallel runs up to this many cases at once (default 1).
	Parallel int
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

// withDefaults fills in the default target (system) and scenarios
// (./scenarios).
func (cfg Config) withDefaults() Config {
	if len(cfg.Targets) == 0 {
		cfg.Targets = []string{scenario.DefaultTarget}
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = []string{"scenarios"}
	}
	return cfg
}

func (cfg Config) scenarioNames() string { return strings.Join(cfg.Scenarios, ", ") }

// scenarioBase is the directory the attestation names scenario files
// relative to: the one scenario directory, or the common parent of
// several paths.
func (cfg Config) scenarioBase() string {
	if len(cfg.Scenarios) == 1 {
		return cfg.Scenarios[0]
	}
	var base string
	for i, p := range cfg.Scenarios {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "."
		}
		if st, err := os.Stat(abs); err == nil && !st.IsDir() {
			abs = filepath.Dir(abs)
		}
		if i == 0 {
			base = abs
			continue
		}
		for base != "/" && !strings.HasPrefix(abs+"/", base+"/") {
			base = filepath.Dir(base)
		}
	}
	return base
}

// Test checks the gate's input before anything is pinned or booted (the
// scenarios parse and every fixture they replay scans, the target is
// registered and its boards are in the inventory): such an error is the
// input's, never a verdict on the image. The TestFunc then runs on the
// pinned digest.
func Test(cfg Config) (promote.TestFunc, error) {
	cfg = cfg.withDefaults()
	for _, p := range cfg.Scenarios {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("scenarios %s: %w", p, err)
		}
	}
	if _, err := scenario.LoadFiles(cfg.Scenarios, cfg.parseOptions()...); err != nil {
		return nil, fmt.Errorf("loading scenarios from %s: %w", cfg.scenarioNames(), err)
	}
	for _, t := range cfg.Targets {
		if _, err := target.New(t, target.Params{Inventory: cfg.Devices, Boards: cfg.Device}); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context, pin promote.Pinned) (promote.Result, error) {
		res := promote.Result{Started: time.Now(), ReportDir: cfg.ReportDir}
		retries := cfg.Retries
		s, err := harness.LoadSuite(harness.Config{
			// Exactly the pinned digest, through the gate's registry access.
			Image:        "registry:" + pin.Digest.String(),
			Scenarios:    cfg.Scenarios,
			Targets:      cfg.Targets,
			Platforms:    platformStrings(pin),
			Boards:       cfg.Boards,
			BoardCatalog: cfg.Catalog,
			Retries:      &retries,
			Parallel:     cfg.Parallel,
			ImageOptions: []image.Option{image.WithRegistry(pin.Registry)},
			Progress:     cfg.Progress,
			Devices:      cfg.Devices,
			Device:       cfg.Device,
			Shard:        cfg.Shard,
			Timings:      cfg.Timings,
		})
		if err != nil {
			return res, fmt.Errorf("loading scenarios from %s: %w", cfg.scenarioNames(), err)
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
		res.Configuration = append(attest.RunConfiguration(cfg.scenarioBase(), s.Scenarios(), results), attest.BoardConfiguration(cfg.Boards)...)
		if s.Planned() == 0 {
			return res, fmt.Errorf("no scenario in %s runs on target %s%s", cfg.scenarioNames(), strings.Join(cfg.Targets, ", "), onBoards(cfg.Boards))
		}
		rep := report.New(results, reportOptions(cfg, pin, s.Planned())...)
		if cfg.ReportDir != "" {
			if _, err := rep.WriteDir(cfg.ReportDir); err != nil {
				return res, fmt.Errorf("writing the reports: %w", err)
			}
		}
		res.StaticChecks = StaticChecks(rep, roots)
		res.Report = AttestationReport(rep.Results, roots)
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

// planner plans the gate's cases as its runner does: the targets, the
// required platforms, and each board on the manifest the pin says it
// pulls.
func planner(cfg Config, pin promote.Pinned) scenario.Planner {
	p := scenario.Planner{Targets: cfg.Targets, Platforms: platformStrings(pin), Boards: cfg.Boards}
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

// reportOptions are the options of the runner's report of a gate.
func reportOptions(cfg Config, pin promote.Pinned, planned int) []report.Option {
	opts := []report.Option{
		report.WithTitle("hil gate: " + pin.Ref),
		report.WithImage(pin.Ref, pin.Digest.DigestStr()),
		report.WithMeta("tested digest", pin.Digest.String()),
		report.WithMeta("target", strings.Join(cfg.Targets, ", ")),
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
	return opts
}

// StaticChecks are the report's static checks as the decision and the
// attestation list them: once each, problems without host directories,
// without the startup tree (the report has it).
func StaticChecks(rep *report.Report, roots []attest.Root) []promote.StaticCheck {
	var out []promote.StaticCheck
	for _, c := range rep.StaticChecks {
		sc := promote.StaticCheck{ID: c.ID, Platform: c.Platform, ManifestDigest: c.ManifestDigest, OK: c.OK}
		for _, p := range c.Problems {
			sc.Problems = append(sc.Problems, attest.ScrubString(p, roots))
		}
		out = append(out, sc)
	}
	return out
}

// WriteDecision leaves the gate's decision in dir: decision.json, and the
// report (report.html, results.json, junit.xml) opening with it. A gate
// that refused before anything was tested (a platform missing) gets a
// report of its own with the decision alone. err is the error Gate
// returned with d.
func WriteDecision(dir string, d *promote.Decision, err error) error {
	if d.Verdict == "" || (err != nil && d.Verdict != promote.Error) {
		d.Settle(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the report directory: %w", err)
	}
	b, jerr := json.MarshalIndent(d, "", "  ")
	if jerr != nil {
		return jerr
	}
	if err := os.WriteFile(filepath.Join(dir, DecisionFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", DecisionFile, err)
	}
	reason := d.Reason
	if d.Error != "" {
		reason = d.Error
	}
	rd := report.Decision{
		Verdict: d.Verdict, Candidate: d.Candidate, Tested: d.Tested, Tag: d.Tag,
		OldDigest: d.OldDigest, NewDigest: d.NewDigest, Attestation: d.Attestation, Reason: reason,
	}
	rep, rerr := report.ReadDir(dir)
	if rerr != nil {
		if _, statErr := os.Stat(filepath.Join(dir, report.JSONFile)); statErr == nil {
			return fmt.Errorf("adding the decision to the report: %w", rerr)
		}
		rep = report.New(nil, report.WithTitle("hil gate: "+d.Candidate))
	}
	report.WithDecision(rd)(rep)
	if _, err := rep.WriteDir(dir); err != nil {
		return fmt.Errorf("adding the decision to the report: %w", err)
	}
	return nil
}

// DecisionFile is the name of the decision WriteDecision writes.
const DecisionFile = "decision.json"

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
	cfg = cfg.withDefaults()
	scs, err := scenario.LoadFiles(cfg.Scenarios, cfg.parseOptions()...)
	if err != nil {
		return nil, fmt.Errorf("loading scenarios from %s: %w", cfg.scenarioNames(), err)
	}
	return func(ctx context.Context, pin promote.Pinned) (promote.Result, error) {
		res := promote.Result{Started: rep.Start, Finished: rep.Start.Add(rep.Duration), ReportDir: dir, Targets: cfg.Targets}
		digest := pin.Digest.DigestStr()
		if rep.ImageDigest != digest {
			for _, p := range pin.Required {
				res.Outcomes = append(res.Outcomes, promote.Outcome{Platform: p.String(), Target: strings.Join(cfg.Targets, ","), Scenario: "(results)", Verdict: promote.InfraError,
					Reason: fmt.Sprintf("the results in %s are for %s (%s), not for the pinned candidate %s: they cannot vouch for it", dir, orNone(rep.ImageDigest), rep.ImageRef, digest)})
			}
			return res, nil
		}
		plan := planner(cfg, pin).Cases(scs)
		if len(plan) == 0 {
			return res, fmt.Errorf("no scenario in %s runs on target %s%s", cfg.scenarioNames(), strings.Join(cfg.Targets, ", "), onBoards(cfg.Boards))
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
			cfg.Logf("%d result(s) in %s are not cases of these scenarios on %s and are not judged: %s", len(extra), dir, strings.Join(cfg.Targets, ", "), strings.Join(extra, ", "))
		}
		res.Configuration = append(attest.RunConfiguration(cfg.scenarioBase(), scs, used), attest.BoardConfiguration(cfg.Boards)...)
		rep := report.New(used)
		res.StaticChecks = StaticChecks(rep, roots)
		res.Report = AttestationReport(rep.Results, roots)
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
		// The static checks are listed once beside it (StaticChecks); the
		// results name theirs.
		r.Output, r.StaticCheck = nil, nil
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
	for _, p := range cfg.Scenarios {
		if abs, err := filepath.Abs(p); err == nil {
			roots = append(roots, attest.Root{Path: abs, Label: "."})
		}
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
