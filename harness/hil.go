package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/startup"
	"github.com/hilproject/hil/harness/target"
	// The targets that come with the library: they register themselves.
	_ "github.com/hilproject/hil/harness/target/system"
	_ "github.com/hilproject/hil/harness/target/user"
)

// Image is the image under test, opened and pinned once; every case of a
// run uses its digest. It implements scenario.ImageSource.
type Image struct {
	Artifact *image.Artifact

	mu     sync.Mutex
	byPlat map[string]*platformImage
}

type platformImage struct {
	once   sync.Once
	img    *image.Image
	rootfs string
	err    error
}

// OpenImage resolves ref (oci:DIR, docker-archive:FILE, a registry
// reference, ...) to a digest once.
func OpenImage(ctx context.Context, ref string, opts ...image.Option) (*Image, error) {
	a, err := image.Open(ctx, ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", ref, err)
	}
	return &Image{Artifact: a, byPlat: map[string]*platformImage{}}, nil
}

// Ref is the reference as given.
func (i *Image) Ref() string { return i.Artifact.Ref }

// Digest is what the reference resolved to.
func (i *Image) Digest() string { return i.Artifact.Digest.String() }

// Platforms lists the image's platforms in index order (the runner plans
// what each board pulls from them).
func (i *Image) Platforms() []v1.Platform { return i.Artifact.Platforms() }

// Single reports whether the image is one manifest rather than an index.
func (i *Image) Single() bool { return i.Artifact.Index() == nil }

// Platform returns one platform's image and its flattened rootfs, flattening
// at most once per platform. A platform the image lacks, layers that try
// to escape the root, or bytes that are not what the image's digests pin
// (an *image.IntegrityError: retrying would read the same bytes) are the
// image's fault; other flattening errors are the host's (infra).
func (i *Image) Platform(ctx context.Context, platform string) (*image.Image, string, error) {
	i.mu.Lock()
	p, ok := i.byPlat[platform]
	if !ok {
		p = &platformImage{}
		i.byPlat[platform] = p
	}
	i.mu.Unlock()
	p.once.Do(func() {
		p.img, p.err = i.Artifact.Image(platform)
		if p.err != nil {
			return
		}
		p.rootfs, p.err = p.img.RootFS(ctx)
		var esc *image.EscapeError
		var big *image.SizeLimitError
		var bad *image.IntegrityError
		if p.err != nil && !errors.As(p.err, &esc) && !errors.As(p.err, &big) && !errors.As(p.err, &bad) {
			p.err = target.Infra(fmt.Errorf("flattening %s for %s: %w", i.Ref(), platform, p.err))
		}
	})
	if p.err != nil && target.IsInfra(p.err) {
		// Do not cache a host failure: a retry may succeed.
		i.mu.Lock()
		delete(i.byPlat, platform)
		i.mu.Unlock()
	}
	return p.img, p.rootfs, p.err
}

// StaticCheck is the static startup check of harness/startup as the
// runner's StaticChecker.
func StaticCheck() scenario.StaticChecker {
	return scenario.StaticCheckFunc(func(ctx context.Context, rootfs string, img *image.Image, cfg target.RunConfig) (string, []string, error) {
		rep, err := startup.Check(ctx, rootfs, startup.Config{
			Platform:   img.Platform.String(),
			Entrypoint: cfg.Entrypoint,
			Cmd:        cfg.Cmd,
			Env:        cfg.Env,
			WorkingDir: cfg.WorkingDir,
			Board:      cfg.Board,
		})
		if err != nil {
			return "", nil, err
		}
		var text strings.Builder
		_ = rep.Text(&text)
		var problems []string
		for _, p := range rep.Problems {
			problems = append(problems, p.Message)
		}
		return text.String(), problems, nil
	})
}

// NewTarget makes the target registered as name (see target.Register),
// for a target that needs no board. The system and user targets are
// always registered; the container and device targets are when their
// packages are imported (hil's CLI imports every target).
func NewTarget(name string) (target.Target, error) {
	ts, err := target.New(name, target.Params{})
	if err != nil {
		return nil, err
	}
	if len(ts) != 1 {
		return nil, fmt.Errorf("target %s stands for %d targets; expected one", name, len(ts))
	}
	return ts[0], nil
}

// Config is what RunScenarios needs.
type Config struct {
	// Image is the reference of the image under test.
	Image string
	// Scenarios are scenario files or directories of them.
	Scenarios []string
	// Targets to run on (default: system), by their registered names. A
	// scenario runs on the targets it lists that are also here.
	Targets []string
	// Platforms, when set, replace every scenario's platform list.
	Platforms []string
	// Boards, when set, are the boards every scenario runs as (a scenario
	// with boards: runs as those of them it lists): each board's case runs
	// the manifest its engine pulls, held to its instruction set, on the
	// targets' model of the board. Planning what each board pulls opens
	// the image (LoadSuite).
	Boards []board.Board
	// BoardCatalog resolves the scenarios' boards: names (default: the
	// built-in profiles; a catalog with a profile file's boards).
	BoardCatalog *board.Catalog
	// Retries of infra errors per case (default 1).
	Retries *int
	// Parallel runs up to this many cases at once (default 1; see
	// scenario.WithParallel).
	Parallel int
	// Progress, when set, receives every case and step event.
	Progress func(scenario.Event)
	// ImageOptions are passed to image.Open.
	ImageOptions []image.Option
	// Devices is the board inventory (devices.yaml) and Device the board
	// selection the device target runs on: a name, names separated by
	// commas, or "tag:LABEL" (several boards run in parallel).
	Devices, Device string
	// Shard, when set, runs only that part of the planned cases (each case
	// is in exactly one shard of a split), balanced by Timings when set
	// (the durations of an earlier run: scenario.ReadTimings).
	Shard   *scenario.Shard
	Timings scenario.Timings
}

// targets makes the runner's targets: every name of cfg.Targets, each
// through the target registry with the board inventory and selection.
func (cfg Config) targets() ([]target.Target, error) {
	names := cfg.Targets
	if len(names) == 0 {
		names = []string{scenario.DefaultTarget}
	}
	var out []target.Target
	for _, n := range names {
		ts, err := target.New(n, target.Params{Inventory: cfg.Devices, Boards: cfg.Device})
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

// NewRunner opens the image and makes a runner with the static check, the
// replay engine and the named targets. It first removes what killed hil
// processes left on the host (RemoveLeftovers; a failure there does not
// stop the run).
func NewRunner(ctx context.Context, cfg Config) (*scenario.Runner, *Image, error) {
	ts, err := cfg.targets()
	if err != nil {
		return nil, nil, err
	}
	return newRunner(ctx, cfg, ts)
}

func newRunner(ctx context.Context, cfg Config, ts []target.Target) (*scenario.Runner, *Image, error) {
	_, _ = RemoveLeftovers()
	img, err := OpenImage(ctx, cfg.Image, cfg.ImageOptions...)
	if err != nil {
		return nil, nil, err
	}
	opts := []scenario.Option{scenario.WithStaticCheck(StaticCheck()), scenario.WithReplayer(Replayer())}
	for _, t := range ts {
		opts = append(opts, scenario.WithTarget(t))
	}
	if len(cfg.Platforms) > 0 {
		opts = append(opts, scenario.WithPlatforms(cfg.Platforms...))
	}
	if len(cfg.Boards) > 0 {
		opts = append(opts, scenario.WithBoards(cfg.Boards...))
	}
	if cfg.Retries != nil {
		opts = append(opts, scenario.WithRetries(*cfg.Retries))
	}
	if cfg.Parallel > 1 {
		opts = append(opts, scenario.WithParallel(cfg.Parallel))
	}
	if cfg.Progress != nil {
		opts = append(opts, scenario.WithProgress(cfg.Progress))
	}
	return scenario.NewRunner(img, opts...), img, nil
}

// RunScenarios loads the scenarios, opens the image and runs every case
// (of cfg.Shard, when set), one after the other. A scenario file with
// errors stops the run before anything boots.
func RunScenarios(ctx context.Context, cfg Config) ([]scenario.Result, error) {
	s, err := LoadSuite(cfg)
	if err != nil {
		return nil, err
	}
	return s.RunAll(ctx, nil)
}
