package targettest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/replay"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
)

// Images is the runner's image source for one already opened image.
type Images struct {
	Img *image.Image
	// RootFS, when set, is the image's rootfs (else it is flattened).
	RootFS string
}

// Ref is the image's reference.
func (s Images) Ref() string { return s.Img.Ref }

// Digest is the image's digest.
func (s Images) Digest() string { return s.Img.Digest.String() }

// Platform returns the image and its flattened rootfs for any platform.
func (s Images) Platform(ctx context.Context, _ string) (*image.Image, string, error) {
	if s.RootFS != "" {
		return s.Img, s.RootFS, nil
	}
	rootfs, err := s.Img.RootFS(ctx)
	return s.Img, rootfs, err
}

// Replayer replays fixtures with harness/replay, as hil does.
var Replayer = scenario.ReplayFunc(func(ctx context.Context, l link.Link, rp *scenario.Replay) (scenario.ReplayStats, error) {
	opts := []replay.Option{replay.WithSchedule(rp.Schedule)}
	st, err := replay.Run(ctx, l, rp.Path, append(opts, replay.WithLoops(rp.Loops))...)
	return scenario.ReplayStats{FramesSent: int64(st.Frames), BytesSent: st.Bytes, Elapsed: st.Duration, PPS: st.PPS}, err
})

// BeforeReady is the Fault.Step of a fault injected right after the boot,
// before the runner looks for the ready line.
const BeforeReady = -1

// Fault is something done to a running device at a point of a scenario.
type Fault struct {
	// Step is the index of the scenario step the fault happens in, or
	// BeforeReady.
	Step int
	// After is how long after the step started; 0 injects the fault before
	// the step runs.
	After time.Duration
	// Do injects the fault into dev.
	Do func(t testing.TB, dev target.App)
}

// faultTarget hands every device it boots to inject.
type faultTarget struct {
	target.Target
	mu  sync.Mutex
	dev target.App
	f   *Fault
	t   testing.TB
}

func (ft *faultTarget) Boot(ctx context.Context, img *image.Image, cfg target.RunConfig) (target.App, error) {
	d, err := ft.Target.Boot(ctx, img, cfg)
	if err != nil {
		return nil, err
	}
	ft.mu.Lock()
	ft.dev = d
	ft.mu.Unlock()
	if ft.f != nil && ft.f.Step == BeforeReady {
		ft.f.Do(ft.t, d)
	}
	return d, nil
}

func (ft *faultTarget) device() target.App {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.dev
}

// RunCase runs the scenario in yaml (its targets must name tgt) on img
// through hil's runner, without retries, with f (may be nil) injected, and
// returns the verdict.
func RunCase(t *testing.T, tgt target.Target, img Images, yaml string, f *Fault, opts ...scenario.Option) scenario.Result {
	t.Helper()
	sc, err := scenario.Parse("fault.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return RunScenario(t, tgt, img, sc, f, opts...)
}

// RunScenario is RunCase for a parsed scenario.
func RunScenario(t *testing.T, tgt target.Target, img Images, sc *scenario.Scenario, f *Fault, opts ...scenario.Option) scenario.Result {
	t.Helper()
	ft := &faultTarget{Target: tgt, f: f, t: t}
	var wg sync.WaitGroup
	progress := func(e scenario.Event) {
		if f == nil || f.Step < 0 || e.Kind != scenario.StepStarted || e.Step.Index != f.Step {
			return
		}
		dev := ft.device()
		if f.After == 0 {
			f.Do(t, dev)
			return
		}
		wg.Add(1)
		time.AfterFunc(f.After, func() { defer wg.Done(); f.Do(t, dev) })
	}
	r := scenario.NewRunner(img, append([]scenario.Option{
		scenario.WithTarget(ft), scenario.WithRetries(0), scenario.WithReplayer(Replayer),
		scenario.WithProgress(progress), scenario.WithCaseTimeout(3 * time.Minute),
	}, opts...)...)
	cases := r.Plan(sc)
	if len(cases) == 0 {
		t.Fatalf("scenario %s has no case on target %s", sc.Name, tgt.Name())
	}
	res := r.Run(context.Background(), cases[0])
	wg.Wait()
	return res
}

// PID is the device's process as its Info names it ("pid").
func PID(t testing.TB, dev target.App) int {
	t.Helper()
	pid, ok := dev.Info().Int("pid")
	if !ok || pid <= 0 {
		t.Fatalf("device info names no pid: %v", dev.Info())
	}
	return int(pid)
}

// Kill sends sig to pid from outside hil, as an operator or the OOM killer
// would. For SIGKILL it waits until the process is gone (reaped, or a
// zombie waiting for its parent), so that the fault has happened when Kill
// returns.
func Kill(t testing.TB, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Errorf("kill -%d %d: %v", sig, pid, err)
		return
	}
	if sig != syscall.SIGKILL {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i:]), ") Z") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("pid %d still runs 10s after SIGKILL", pid)
}

// KillDevice is a Fault.Do that kills the device's process (Info "pid")
// with sig from outside hil.
func KillDevice(sig syscall.Signal) func(testing.TB, target.App) {
	return func(t testing.TB, dev target.App) { Kill(t, PID(t, dev), sig) }
}
