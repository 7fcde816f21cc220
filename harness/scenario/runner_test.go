package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/activity"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/target"
)

// The runner's verdict logic is tested here against a scripted device: the
// faults it covers (a boot that fails with an infra error, a lost device,
// an emulator gap) cannot be produced on demand with a real target. The
// real targets run the same runner in the root suite (suite_test.go).

type fakeImages struct{}

func (fakeImages) Ref() string    { return "oci:fake" }
func (fakeImages) Digest() string { return "sha256:feed" }
func (fakeImages) Platform(_ context.Context, platform string) (*image.Image, string, error) {
	if platform == "linux/s390x" {
		return nil, "", fmt.Errorf("no platform %s in the image; it has linux/arm/v7", platform)
	}
	return &image.Image{Ref: "oci:fake", Config: v1.Config{Entrypoint: []string{"/app"}}}, "/nonexistent", nil
}

// fakeTarget boots fakeDevices that run script.
type fakeTarget struct {
	mu      sync.Mutex
	boots   int
	closed  int
	bootErr []error // per boot, nil for success
	script  func(d *fakeDevice)
	caps    *target.Capabilities
	gap     string
	link    *fakeLink
	// doing is reported through harness/activity while booting.
	doing string
	// rx, when set, makes the devices count what their interface
	// received (target.DeliveryCounter): the nth read of a boot, since
	// the first. diag is their DeliveryDiagnosis then.
	rx   func(n int, since time.Duration) link.Counters
	diag func() (string, bool)
}

// fakeLink hands out the frames the "device" sent.
type fakeLink struct {
	ch   chan link.Frame
	once sync.Once
}

func (l *fakeLink) WriteFrame([]byte) error   { return nil }
func (l *fakeLink) Frames() <-chan link.Frame { return l.ch }
func (l *fakeLink) MTU() int                  { return 1500 }
func (l *fakeLink) Close() error {
	l.once.Do(func() { close(l.ch) })
	return nil
}

func (t *fakeTarget) Name() string { return "fake" }

func (t *fakeTarget) Boot(ctx context.Context, img *image.Image, cfg target.RunConfig) (target.App, error) {
	t.mu.Lock()
	n := t.boots
	t.boots++
	t.mu.Unlock()
	if n < len(t.bootErr) && t.bootErr[n] != nil {
		return nil, t.bootErr[n]
	}
	if t.doing != "" {
		activity.Report(ctx, "%s", t.doing)
	}
	d := &fakeDevice{t: t, out: make(chan target.Line, 1000), sig: make(chan syscall.Signal, 4), exited: make(chan struct{}), closed: make(chan struct{}), cfg: cfg}
	go func() {
		defer close(d.out)
		t.script(d)
	}()
	if t.rx != nil {
		return &countingDevice{fakeDevice: d}, nil
	}
	return d, nil
}

// countingDevice is a fakeDevice whose interface counters can be read.
type countingDevice struct {
	*fakeDevice
	reads int
	first time.Time
}

func (d *countingDevice) RxCounters(context.Context) (link.Counters, error) {
	d.reads++
	if d.first.IsZero() {
		d.first = time.Now()
	}
	return d.t.rx(d.reads, time.Since(d.first)), nil
}

func (d *countingDevice) DeliveryDiagnosis(context.Context) (string, bool) {
	if d.t.diag == nil {
		return "", false
	}
	return d.t.diag()
}

type fakeDevice struct {
	t         *fakeTarget
	cfg       target.RunConfig
	out       chan target.Line
	sig       chan syscall.Signal
	exitOnce  sync.Once
	exited    chan struct{}
	exit      target.Exit
	exitErr   error
	closeOnce sync.Once
	closed    chan struct{}
}

func (d *fakeDevice) say(s string) {
	select {
	case d.out <- target.Line{Stream: target.Stdout, Text: s, Time: time.Now()}:
	case <-d.closed:
	}
}
func (d *fakeDevice) end(e target.Exit, err error) {
	d.exitOnce.Do(func() { d.exit, d.exitErr = e, err; close(d.exited) })
}
func (d *fakeDevice) Output() <-chan target.Line { return d.out }
func (d *fakeDevice) Link() link.Link {
	if d.t.link != nil {
		return d.t.link
	}
	return nil
}
func (d *fakeDevice) Signal(s syscall.Signal) error {
	d.sig <- s
	return nil
}
func (d *fakeDevice) Wait(ctx context.Context) (target.Exit, error) {
	select {
	case <-d.exited:
		return d.exit, d.exitErr
	case <-ctx.Done():
		return target.Exit{}, ctx.Err()
	}
}
func (d *fakeDevice) Info() target.Info { return target.Info{"emulator": "fake 1.0"} }
func (d *fakeDevice) Close() error {
	d.closeOnce.Do(func() {
		close(d.closed)
		d.end(target.NotObserved("stopped by hil"), nil)
		if d.t.link != nil {
			d.t.link.Close()
		}
		d.t.mu.Lock()
		d.t.closed++
		d.t.mu.Unlock()
	})
	return nil
}
func (d *fakeDevice) Capabilities() target.Capabilities {
	if d.t.caps != nil {
		return *d.t.caps
	}
	return target.Capabilities{Capture: true}
}
func (d *fakeDevice) EmulatorGap() (string, bool) { return d.t.gap, d.t.gap != "" }

// app is a well-behaved app: ready, n events, summary and exit 0 on TERM.
func app(n int) func(d *fakeDevice) {
	return func(d *fakeDevice) {
		d.say("ready iface=" + d.cfg.Iface)
		for i := 0; i < n; i++ {
			d.say(fmt.Sprintf(`{"event":"device_seen","mac":"02:00:00:00:00:%02x"}`, i))
		}
		select {
		case <-d.sig:
			d.say(fmt.Sprintf(`{"event":"summary","frames":%d,"counts":{"device_seen":%d}}`, n, n))
			d.end(target.Exited(0), nil)
		case <-d.closed:
		}
	}
}

const stopSteps = `
  - signal: TERM
  - expect_output: {json: {event: summary, counts.device_seen: {is: ">= 0"}}, count: "== 1", within: 2s, settle: 10ms}
  - expect_exit: {code: 0, within: 2s}
  - expect_no_output: {regex: "panic|fatal"}
`

func runOne(t *testing.T, tg *fakeTarget, yaml string, opts ...Option) Result {
	t.Helper()
	sc, err := Parse("t.yaml", []byte(yaml), WithFixtures(nil), WithKnownTargets("fake"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRunner(fakeImages{}, append([]Option{WithTarget(tg)}, opts...)...)
	cases := r.Plan(sc)
	if len(cases) != 1 {
		t.Fatalf("plan: %d cases", len(cases))
	}
	res := r.Run(context.Background(), cases[0])
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.closed != tg.boots-countErrs(tg.bootErr) {
		t.Errorf("booted %d devices, closed %d: teardown skipped", tg.boots-countErrs(tg.bootErr), tg.closed)
	}
	return res
}

func countErrs(es []error) int {
	n := 0
	for _, e := range es {
		if e != nil {
			n++
		}
	}
	return n
}

func head(extra string) string {
	return "name: t\ntargets: [fake]\nstartup: {budget: 2s}\nsteps:\n" + extra
}

func TestRunnerPass(t *testing.T) {
	tg := &fakeTarget{script: app(24)}
	res := runOne(t, tg, head(`  - expect_output: {json: {event: device_seen}, count: "== 24", settle: 50ms}`+stopSteps))
	if res.Verdict != Pass {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
	var kinds []string
	for _, s := range res.Steps {
		kinds = append(kinds, string(s.Kind))
	}
	if got := strings.Join(kinds, ","); got != "image,boot,ready,expect_output,signal,expect_output,expect_exit,expect_no_output,teardown" {
		t.Errorf("step timeline %s", got)
	}
	if res.Exit == nil || res.Exit.Code != 0 || len(res.Output) != 26 || res.Device["emulator"] != "fake 1.0" {
		t.Errorf("result exit=%v output=%d device=%v", res.Exit, len(res.Output), res.Device)
	}
}

// What a slow step does (a target fetching its kernel while it boots)
// reaches the progress as a StepActivity event of that step.
func TestRunnerReportsActivity(t *testing.T) {
	tg := &fakeTarget{script: app(0), doing: "fetching Debian's kernel"}
	var mu sync.Mutex
	var got []Event
	res := runOne(t, tg, head(stopSteps), WithProgress(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Kind == StepActivity {
			got = append(got, e)
		}
	}))
	if res.Verdict != Pass {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
	if len(got) != 1 || got[0].Activity != "fetching Debian's kernel" || got[0].Step == nil || got[0].Step.Kind != PhaseBoot || got[0].Scenario != "t" {
		t.Errorf("activity events %+v, want one of the boot step", got)
	}
}

func TestRunnerCountTooMany(t *testing.T) {
	tg := &fakeTarget{script: app(25)}
	res := runOne(t, tg, head(`  - expect_output: {json: {event: device_seen}, count: "== 24", within: 3s}`))
	if res.Verdict != Fail || !strings.Contains(res.Reason, "expected count == 24") || !strings.Contains(res.Reason, "saw 25") || !strings.Contains(res.Reason, "t.yaml:5:5") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}

func TestRunnerCountTooFewWithinDeadline(t *testing.T) {
	tg := &fakeTarget{script: app(3)}
	start := time.Now()
	res := runOne(t, tg, head(`  - expect_output: {contains: device_seen, count: ">= 4", within: 300ms}`))
	if res.Verdict != Fail || !strings.Contains(res.Reason, "within 300ms, saw 3") || !strings.Contains(res.Reason, "last app output") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("failing step took %s; its deadline was 300ms", time.Since(start))
	}
}

func TestRunnerCrashBeforeReady(t *testing.T) {
	tg := &fakeTarget{script: func(d *fakeDevice) {
		d.out <- target.Line{Stream: target.Stderr, Text: "pcapwatch: boom"}
		d.end(target.Exited(1), nil)
	}}
	res := runOne(t, tg, head("  - wait: 1ms\n"))
	if res.Verdict != Fail || !strings.Contains(res.Reason, "ended (exit 1) before printing a line matching regex \"^ready \"") || !strings.Contains(res.Reason, "pcapwatch: boom") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}

func TestRunnerNotReadyWithinBudget(t *testing.T) {
	tg := &fakeTarget{script: func(d *fakeDevice) { d.say("starting..."); <-d.closed }}
	res := runOne(t, tg, "name: t\ntargets: [fake]\nstartup: {budget: 200ms}\nsteps: [{wait: 1ms}]\n")
	if res.Verdict != Fail || !strings.Contains(res.Reason, "not ready within the startup budget of 200ms") || !strings.Contains(res.Reason, "starting...") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}

func TestRunnerWrongExit(t *testing.T) {
	tg := &fakeTarget{script: func(d *fakeDevice) {
		d.say("ready iface=eth0")
		<-d.sig
		d.end(target.Exited(3), nil)
	}}
	res := runOne(t, tg, head("  - signal: INT\n  - expect_exit: {code: 0, within: 1s}\n"))
	if res.Verdict != Fail || !strings.Contains(res.Reason, "expected exit 0, the app ended with exit 3") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}

func TestRunnerNoOutputOverWholeRun(t *testing.T) {
	tg := &fakeTarget{script: func(d *fakeDevice) {
		d.say("ready iface=eth0")
		<-d.sig
		d.say("panic: runtime error")
		d.end(target.Exited(0), nil)
	}}
	// The forbidden line comes after the expect_no_output step: it still fails.
	res := runOne(t, tg, head("  - expect_no_output: {contains: \"panic:\"}\n  - signal: TERM\n  - expect_exit: 0\n"))
	if res.Verdict != Fail || !strings.Contains(res.Reason, `line appeared later in the run: "panic: runtime error"`) {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}

func TestRunnerInfraRetriedThenReported(t *testing.T) {
	boom := target.Infra(errors.New("qemu died"))
	tg := &fakeTarget{script: app(0), bootErr: []error{boom, boom, boom}}
	var retries int
	res := runOne(t, tg, head("  - wait: 1ms\n"), WithRetries(2), WithProgress(func(e Event) {
		if e.Kind == CaseRetrying {
			retries++
		}
	}))
	if res.Verdict != InfraError || res.Attempts != 3 || len(res.Retried) != 2 || retries != 2 || !strings.Contains(res.Reason, "qemu died") {
		t.Fatalf("verdict %s attempts %d retried %v: %s", res.Verdict, res.Attempts, res.Retried, res.Reason)
	}
}

func TestRunnerInfraRetrySucceeds(t *testing.T) {
	tg := &fakeTarget{script: app(0), bootErr: []error{target.Infra(errors.New("flake"))}}
	res := runOne(t, tg, head("  - wait: 1ms\n"))
	if res.Verdict != Pass || res.Attempts != 2 || len(res.Retried) != 1 {
		t.Fatalf("verdict %s attempts %d: %s", res.Verdict, res.Attempts, res.Reason)
	}
}

func TestRunnerLostDeviceIsInfra(t *testing.T) {
	tg := &fakeTarget{script: func(d *fakeDevice) {
		d.say("ready iface=eth0")
		d.end(target.Exit{}, target.Infra(errors.New("kernel panic - not syncing")))
		<-d.closed
	}}
	res := runOne(t, tg, head("  - expect_output: {contains: never, within: 5s}\n"), WithRetries(0))
	if res.Verdict != InfraError || !strings.Contains(res.Reason, "kernel panic") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}

func TestRunnerUnsupportedBoot(t *testing.T) {
	tg := &fakeTarget{script: app(0), bootErr: []error{&target.UnsupportedError{Target: "fake", What: "arm64", Reason: "no emulator"}}}
	res := runOne(t, tg, head("  - wait: 1ms\n"))
	if res.Verdict != Unsupported || !strings.Contains(res.Reason, "no emulator") || res.Attempts != 1 {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}

// An app that dies of the emulator's capture gap is unsupported, and a
// replay on a device without capture is unsupported, never failed.
func TestRunnerEmulatorGap(t *testing.T) {
	tg := &fakeTarget{gap: "qemu-user has no SIOCETHTOOL", script: func(d *fakeDevice) {
		d.out <- target.Line{Stream: target.Stderr, Text: "SIOCETHTOOL(ETHTOOL_GET_TS_INFO) ioctl failed: Function not implemented"}
		d.end(target.Exited(2), nil)
	}}
	res := runOne(t, tg, head("  - wait: 1ms\n"))
	if res.Verdict != Unsupported || !strings.Contains(res.Reason, "qemu-user has no SIOCETHTOOL") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}

	tg = &fakeTarget{caps: &target.Capabilities{Capture: false, Reason: "PACKET_RX_RING rejected"}, script: app(0)}
	fixture := copyFixture(t, "dns", t.TempDir(), "f.pcap")
	sc := head("  - replay: {fixture: " + fixture + "}\n")
	res = runOne(t, tg, sc)
	if res.Verdict != Unsupported || !strings.Contains(res.Reason, "does not support packet capture, which replay needs: PACKET_RX_RING rejected") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}

func TestRunnerStaticCheckFailsWithoutBoot(t *testing.T) {
	tg := &fakeTarget{script: app(0)}
	check := StaticCheckFunc(func(context.Context, string, *image.Image, target.RunConfig) (string, []string, error) {
		return "", []string{"libpcap.so.0.8 (needed by /opt/pcapwatch) not found"}, nil
	})
	res := runOne(t, tg, head("  - wait: 1ms\n"), WithStaticCheck(check))
	if res.Verdict != Fail || !strings.Contains(res.Reason, "libpcap.so.0.8 (needed by /opt/pcapwatch) not found") || tg.boots != 0 {
		t.Fatalf("verdict %s boots %d: %s", res.Verdict, tg.boots, res.Reason)
	}
}

func TestRunnerMissingPlatformFails(t *testing.T) {
	tg := &fakeTarget{script: app(0)}
	res := runOne(t, tg, "name: t\ntargets: [fake]\nplatforms: [linux/s390x]\nsteps: [{wait: 1ms}]\n")
	if res.Verdict != Fail || !strings.Contains(res.Reason, "no platform linux/s390x") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}

func TestRunnerAppOverrides(t *testing.T) {
	var got target.RunConfig
	tg := &fakeTarget{script: func(d *fakeDevice) { got = d.cfg; app(0)(d) }}
	res := runOne(t, tg, "name: t\ntargets: [fake]\napp: {args: [--iface, wlan0], env: {A: b}, iface: wlan0}\nstartup: {ready: {contains: \"ready iface=wlan0\"}}\nsteps: [{wait: 1ms}]\n")
	if res.Verdict != Pass {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
	if strings.Join(got.Entrypoint, " ") != "/app" || strings.Join(got.Cmd, " ") != "--iface wlan0" || got.Iface != "wlan0" || strings.Join(got.Env, ",") != "A=b" {
		t.Errorf("run config %+v", got)
	}
}

// A cancelled context ends a case promptly as an infra error, with teardown.
func TestRunnerCancelled(t *testing.T) {
	tg := &fakeTarget{script: app(0)}
	sc, _ := Parse("t.yaml", []byte(head("  - wait: 1m\n")), WithKnownTargets("fake"))
	r := NewRunner(fakeImages{}, WithTarget(tg))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := r.Run(ctx, r.Plan(sc)[0])
	if res.Verdict != InfraError || time.Since(start) > 5*time.Second || tg.closed != 1 {
		t.Fatalf("verdict %s after %s, closed %d: %s", res.Verdict, time.Since(start), tg.closed, res.Reason)
	}
}

func TestRunnerExpectFrames(t *testing.T) {
	arp := make([]byte, 42)
	copy(arp[6:], []byte{2, 0, 0, 0, 0, 1})
	arp[12], arp[13] = 0x08, 0x06
	ip6 := make([]byte, 54)
	ip6[12], ip6[13] = 0x86, 0xdd
	fl := &fakeLink{ch: make(chan link.Frame, 10)}
	fl.ch <- link.Frame{Data: arp, Time: time.Now()}
	fl.ch <- link.Frame{Data: ip6, Time: time.Now()}
	fl.ch <- link.Frame{Data: arp, Time: time.Now()}
	tg := &fakeTarget{script: app(0), link: fl}
	res := runOne(t, tg, head(`  - expect_frames: {filter: "arp and ether src 02:00:00:00:00:01", count: "== 2", settle: 20ms}
  - expect_frames: {filter: "ip6", count: ">= 1"}
`))
	if res.Verdict != Pass {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
	res = runOne(t, &fakeTarget{script: app(0), link: &fakeLink{ch: make(chan link.Frame)}}, head(`  - expect_frames: {filter: "ip6", count: "== 0", within: 100ms, settle: 20ms}
  - expect_frames: {filter: "arp", within: 100ms}
`))
	if res.Verdict != Fail || !strings.Contains(res.Reason, `expected count >= 1 of frames sent by the device matching "arp" within 100ms, saw 0`) {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}

// liveFake is a fakeDevice with a liveness check the test controls.
type liveFake struct {
	*fakeDevice
	mu   sync.Mutex
	dead error
}

func (d *liveFake) Alive(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dead
}

func (d *liveFake) die(err error) {
	d.mu.Lock()
	d.dead = err
	d.mu.Unlock()
}

type liveTarget struct {
	*fakeTarget
	mu   sync.Mutex
	devs []*liveFake
}

func (t *liveTarget) Boot(ctx context.Context, img *image.Image, cfg target.RunConfig) (target.App, error) {
	d, err := t.fakeTarget.Boot(ctx, img, cfg)
	if err != nil {
		return nil, err
	}
	lf := &liveFake{fakeDevice: d.(*fakeDevice)}
	t.mu.Lock()
	t.devs = append(t.devs, lf)
	t.mu.Unlock()
	return lf, nil
}

func (t *liveTarget) last() *liveFake {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.devs[len(t.devs)-1]
}

// A device that dies after the last step's own check (between it and the
// end of the case) is still caught: the case is an infra-error, with the
// cause as the device gave it even when that is no target.DeadError. A
// real emulator cannot be killed at exactly that point on demand.
func TestRunnerDeathAtTheEndOfTheCase(t *testing.T) {
	tg := &liveTarget{fakeTarget: &fakeTarget{script: app(0)}}
	sc, err := Parse("t.yaml", []byte(head("  - expect_no_output: {contains: panic}\n")), WithKnownTargets("fake"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRunner(fakeImages{}, WithTarget(tg), WithRetries(0), WithProgress(func(e Event) {
		if e.Kind == StepFinished && e.Step.Index == 0 {
			tg.last().die(errors.New("the lab's power switch cut the board"))
		}
	}))
	res := r.Run(context.Background(), r.Plan(sc)[0])
	if res.Verdict != InfraError || !strings.Contains(res.Reason, "lost the device during the end of the case, after the last step: the lab's power switch cut the board") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
	if res.Exit == nil || res.Exit.Observed || res.Exit.String() != "not observed (the device died before the app ended)" {
		t.Errorf("exit %v", res.Exit)
	}
}

// A pass whose app hil stopped at teardown reports the exit as not
// observed, never as exit 0; a death found by the poll ends a long wait
// early, and is retried.
func TestRunnerExitNotObservedAndEarlyDeath(t *testing.T) {
	tg := &liveTarget{fakeTarget: &fakeTarget{script: app(0)}}
	res := runOne(t, tg.fakeTarget, head("  - wait: 1ms\n"))
	if res.Verdict != Pass || res.Exit == nil || res.Exit.String() != "not observed (stopped by hil)" {
		t.Fatalf("verdict %s exit %v: %s", res.Verdict, res.Exit, res.Reason)
	}
	b, _ := json.Marshal(res.Exit)
	// No code at all: an exit nobody saw must not read as exit 0.
	if string(b) != `{"observed":false,"note":"stopped by hil","text":"not observed (stopped by hil)"}` {
		t.Errorf("exit as JSON: %s", b)
	}

	sc, err := Parse("t.yaml", []byte(head("  - wait: 1m\n")), WithKnownTargets("fake"))
	if err != nil {
		t.Fatal(err)
	}
	var retried []string
	// The case timeout is far below the wait: only the death ends it in time.
	r := NewRunner(fakeImages{}, WithTarget(tg), WithRetries(1), WithCaseTimeout(20*time.Second), WithProgress(func(e Event) {
		if e.Kind == StepStarted && e.Step.Index == 0 {
			tg.last().die(target.Dead("the fake board", "lost power"))
		}
		if e.Kind == CaseRetrying {
			retried = append(retried, e.Result.Reason)
		}
	}))
	res = r.Run(context.Background(), r.Plan(sc)[0])
	if res.Verdict != InfraError || res.Reason != "the fake board lost power during step 1 (wait 1m0s) at t.yaml:5:5" || res.Attempts != 2 || len(retried) != 1 {
		t.Fatalf("verdict %s after %d attempts (retried %v): %s", res.Verdict, res.Attempts, retried, res.Reason)
	}
}
