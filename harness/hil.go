package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/startup"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/container"
	"github.com/hilproject/hil/harness/target/device"
	"github.com/hilproject/hil/harness/target/user"
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

// Image returns one platform's image and its flattened rootfs, flattening
// at most once per platform. A platform the image lacks, layers that try
// to escape the root, or bytes that are not what the image's digests pin
// (an *image.IntegrityError: retrying would read the same bytes) are the
// image's fault; other flattening errors are the host's (infra).
func (i *Image) Image(ctx context.Context, platform string) (*image.Image, string, error) {
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
			Platform:   platformString(img),
			Entrypoint: cfg.Entrypoint,
			Cmd:        cfg.Cmd,
			Env:        cfg.Env,
			WorkingDir: cfg.WorkingDir,
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

func platformString(img *image.Image) string {
	p := img.Platform.OS + "/" + img.Platform.Architecture
	if img.Platform.Variant != "" {
		p += "/" + img.Platform.Variant
	}
	return p
}

// TargetNames lists the targets NewTarget knows.
var TargetNames = []string{"system", "user", "container", "device"}

// NewTarget makes a target by the name scenarios use. The device target
// needs a board: use NewDeviceTarget (or Config.Devices and Config.Device).
func NewTarget(name string) (target.Target, error) {
	switch name {
	case "device":
		return nil, errors.New("the device target needs a board: give the inventory and the board's name (--devices FILE --device NAME)")
	case "system":
		return newSystemTarget()
	case "user":
		return user.New(), nil
	case "container":
		return container.New(), nil
	}
	return nil, fmt.Errorf("unknown target %q; expected one of %s", name, strings.Join(TargetNames, ", "))
}

// Config is what RunScenarios needs.
type Config struct {
	// Image is the reference of the image under test.
	Image string
	// Scenarios are scenario files or directories of them.
	Scenarios []string
	// Targets to run on (default: system). A scenario runs on the targets
	// it lists that are also here.
	Targets []string
	// Platforms, when set, replace every scenario's platform list.
	Platforms []string
	// Retries of infra errors per case (default 1).
	Retries *int
	// Progress, when set, receives every case and step event.
	Progress func(scenario.Event)
	// ImageOptions are passed to image.Open.
	ImageOptions []image.Option
	// Devices is the board inventory (devices.yaml) and Device the board
	// selection the device target runs on: a name, names separated by
	// commas, or "tag:LABEL" (several boards run in parallel).
	Devices, Device string
}

// NewDeviceTarget is the device target for the board called name in the
// inventory file devices.
func NewDeviceTarget(devices, name string) (target.Target, error) {
	ts, err := NewDeviceTargets(devices, name)
	if err != nil {
		return nil, err
	}
	if len(ts) != 1 {
		return nil, fmt.Errorf("%q selects %d boards; expected one", name, len(ts))
	}
	return ts[0], nil
}

// NewDeviceTargets are the device targets for a board selection in the
// inventory file devices: a name, names separated by commas, or
// "tag:LABEL". One board is the target "device"; several are
// "device@NAME" each, which the runner runs in parallel, one case at a
// time per board.
func NewDeviceTargets(devices, selection string) ([]target.Target, error) {
	inv, err := device.LoadInventory(devices)
	if err != nil {
		return nil, err
	}
	boards, err := inv.Resolve(selection)
	if err != nil {
		return nil, err
	}
	if len(boards) == 1 {
		return []target.Target{device.New(boards[0])}, nil
	}
	var ts []target.Target
	for _, b := range boards {
		ts = append(ts, instance{Target: device.New(b), name: "device@" + b.Name})
	}
	return ts, nil
}

// instance is one of several targets of a kind (boards), named KIND@NAME.
type instance struct {
	target.Target
	name string
}

func (i instance) Name() string { return i.name }

// NewRunner opens the image and makes a runner with the static check, the
// replay engine and the named targets. It first removes what killed hil
// processes left on the host (RemoveLeftovers; a failure there does not
// stop the run).
func NewRunner(ctx context.Context, cfg Config) (*scenario.Runner, *Image, error) {
	_, _ = RemoveLeftovers()
	img, err := OpenImage(ctx, cfg.Image, cfg.ImageOptions...)
	if err != nil {
		return nil, nil, err
	}
	names := cfg.Targets
	if len(names) == 0 {
		names = []string{scenario.DefaultTarget}
	}
	opts := []scenario.Option{scenario.WithStaticCheck(StaticCheck()), scenario.WithReplayer(Replayer())}
	for _, n := range names {
		var ts []target.Target
		var err error
		if n == "device" && cfg.Device != "" {
			ts, err = NewDeviceTargets(cfg.Devices, cfg.Device)
		} else {
			var t target.Target
			t, err = NewTarget(n)
			ts = []target.Target{t}
		}
		if err != nil {
			return nil, nil, err
		}
		for _, t := range ts {
			opts = append(opts, scenario.WithTarget(t))
		}
	}
	if len(cfg.Platforms) > 0 {
		opts = append(opts, scenario.WithPlatforms(cfg.Platforms...))
	}
	if cfg.Retries != nil {
		opts = append(opts, scenario.WithRetries(*cfg.Retries))
	}
	if cfg.Progress != nil {
		opts = append(opts, scenario.WithProgress(cfg.Progress))
	}
	return scenario.NewRunner(img, opts...), img, nil
}

// RunScenarios loads the scenarios, opens the image and runs every case,
// one after the other. A scenario file with errors stops the run before
// anything boots.
func RunScenarios(ctx context.Context, cfg Config) ([]scenario.Result, error) {
	if len(cfg.Scenarios) == 0 {
		return nil, errors.New("no scenarios given")
	}
	scs, err := scenario.LoadFiles(cfg.Scenarios)
	if err != nil {
		return nil, err
	}
	r, _, err := NewRunner(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return r.RunAll(ctx, scs), nil
}
