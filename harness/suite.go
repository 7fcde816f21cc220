package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
)

// Suite is a planned run: the scenarios, the targets and the cases they
// make, known before the image is opened or anything boots. That is what
// a test framework needs while it builds its tree of tests (Ginkgo builds
// the whole tree in every parallel process before any spec runs); the
// image is opened, and the runner made, once per process, by the first
// Run. The test helpers (harness/hiltest, harness/hilginkgo) and the
// scenario gate (harness/promote/scenariogate) are built on it.
type Suite struct {
	cfg       Config
	scenarios []*scenario.Scenario
	targets   []target.Target
	planned   []scenario.Case
	cases     []scenario.Case

	// plannedDigest is the image's digest when boards were planned on it.
	plannedDigest string

	once   sync.Once
	runner *scenario.Runner
	img    *Image
	err    error
}

// LoadSuite loads cfg.Scenarios (a file with errors stops everything, with
// file:line:column of each problem), makes cfg's targets (by their
// registered names, with the board inventory and selection) and plans the
// cases with the runner's own planner (scenario.Planner): each
// scenario's targets that cfg has (T also matches the board instances
// T@NAME) × its platforms, or cfg.Platforms; or, with boards (cfg.Boards
// or a scenario's boards:), × each board on the manifest its engine
// pulls. With cfg.Shard only that shard's cases are the suite's Cases.
// Nothing is booted; the image is opened only when boards need planning
// (what each board pulls depends on the image's platforms), and the
// runner then refuses another digest than the one planned on.
func LoadSuite(cfg Config) (*Suite, error) {
	if len(cfg.Scenarios) == 0 {
		return nil, errors.New("no scenarios given")
	}
	var popts []scenario.ParseOption
	if cfg.BoardCatalog != nil {
		popts = append(popts, scenario.WithBoardCatalog(cfg.BoardCatalog))
	}
	scs, err := scenario.LoadFiles(cfg.Scenarios, popts...)
	if err != nil {
		return nil, err
	}
	if cfg.Timings != nil && cfg.Shard == nil {
		return nil, errors.New("timings balance shards: give a shard (i/n) too")
	}
	ts, err := cfg.targets()
	if err != nil {
		return nil, err
	}
	s := &Suite{cfg: cfg, scenarios: scs, targets: ts}
	p := scenario.Planner{Targets: s.TargetNames(), Platforms: cfg.Platforms, Boards: cfg.Boards}
	if needsPull(cfg, scs) {
		// What each board pulls depends on the image's platforms. The
		// image opened here only plans (an image reads through the context
		// it was opened with); the runner opens it again and must find the
		// same digest.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		img, err := OpenImage(ctx, cfg.Image, cfg.ImageOptions...)
		if err != nil {
			return nil, fmt.Errorf("planning what each board pulls: %w", err)
		}
		s.plannedDigest = img.Digest()
		platforms, single := img.Platforms(), img.Single()
		p.Pull = func(b board.Board) (board.Pulled, error) { return b.Pull(platforms, single) }
	}
	s.planned = p.Cases(scs)
	s.cases = s.planned
	if cfg.Shard != nil {
		s.cases = cfg.Shard.Select(s.planned, cfg.Timings)
	}
	return s, nil
}

// Scenarios are the suite's scenarios, as parsed. A caller may adjust them
// (a shorter startup budget, say) before the first Run.
func (s *Suite) Scenarios() []*scenario.Scenario { return s.scenarios }

// TargetNames are the names of the suite's targets, one per board of a
// board selection ("device@pi-lab-1").
func (s *Suite) TargetNames() []string {
	var ns []string
	for _, t := range s.targets {
		ns = append(ns, t.Name())
	}
	return ns
}

// Cases are the cases this suite runs: every planned case, or this
// shard's.
func (s *Suite) Cases() []scenario.Case { return s.cases }

// Planned is how many cases all shards together plan (len(Cases) when the
// suite is not sharded).
func (s *Suite) Planned() int { return len(s.planned) }

// Config is the configuration the suite was loaded with.
func (s *Suite) Config() Config { return s.cfg }

// Timeout bounds one case of the suite from the first boot to the last
// teardown: its scenario's Timeout (the runner's bound on one attempt)
// for every attempt the retries allow, and a minute for opening and
// flattening the image on the first case and the last teardown.
func (s *Suite) Timeout(c scenario.Case) time.Duration {
	attempts := 2 // the runner's default: one retry
	if s.cfg.Retries != nil {
		attempts = *s.cfg.Retries + 1
	}
	return time.Duration(attempts)*c.Scenario.Timeout() + time.Minute
}

// needsPull reports whether planning needs the image: a board to plan.
func needsPull(cfg Config, scs []*scenario.Scenario) bool {
	if len(cfg.Boards) > 0 {
		return true
	}
	for _, sc := range scs {
		if len(sc.Boards) > 0 {
			return true
		}
	}
	return false
}

// Runner opens the image (once) and makes the runner with the suite's
// targets. It first removes what killed hil processes left on the host.
// When boards were planned on the image's platforms, the image must still
// be the digest they were planned on (a tag that moved meanwhile is an
// error, not a run of cases planned for another image).
func (s *Suite) Runner(ctx context.Context) (*scenario.Runner, *Image, error) {
	s.once.Do(func() {
		s.runner, s.img, s.err = newRunner(ctx, s.cfg, s.targets)
		if s.err == nil && s.plannedDigest != "" && s.img.Digest() != s.plannedDigest {
			s.runner, s.err = nil, fmt.Errorf("%s was %s when the board cases were planned and is %s now: plan and run one digest (give the image by digest)", s.cfg.Image, s.plannedDigest, s.img.Digest())
		}
	})
	return s.runner, s.img, s.err
}

// Run runs one case (usually one of Cases) and returns its result; err
// says that the image could not be opened, so nothing ran.
func (s *Suite) Run(ctx context.Context, c scenario.Case) (scenario.Result, error) {
	r, _, err := s.Runner(ctx)
	if err != nil {
		return scenario.Result{}, err
	}
	return r.Run(ctx, c), nil
}

// RunAll runs every case of Cases the way the runner does (one after the
// other; board instances side by side, one case at a time each); each,
// when set, sees every result as it comes.
func (s *Suite) RunAll(ctx context.Context, each func(scenario.Result)) ([]scenario.Result, error) {
	r, _, err := s.Runner(ctx)
	if err != nil {
		return nil, err
	}
	return r.RunCases(ctx, s.cases, each), nil
}

// CaseName names a case in one word-ish string without "/" (which nests
// Go subtests and is not allowed in Ginkgo labels): "arp-sweep on system
// linux-arm-v7", with a board "arp-sweep on system pi4-64 linux-arm64".
func CaseName(c scenario.Case) string {
	if c.Board != nil {
		return fmt.Sprintf("%s on %s %s %s", c.Scenario.Name, c.Target, c.Board.Label(), strings.ReplaceAll(c.Platform, "/", "-"))
	}
	return fmt.Sprintf("%s on %s %s", c.Scenario.Name, c.Target, strings.ReplaceAll(c.Platform, "/", "-"))
}
