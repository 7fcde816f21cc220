package system

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/link/qemustream"
	"github.com/hilproject/hil/harness/target"
)

// drain reads Output until it closes (or the deadline) and returns the app
// lines.
func drain(t testing.TB, d target.App, timeout time.Duration) []target.Line {
	t.Helper()
	_, seen, _ := waitLine(t, d, timeout, func(target.Line) bool { return false })
	return seen
}

func TestCrashOnStart(t *testing.T) {
	img, cfg := sampleImage(t, "crash-on-start")
	ctx := testCtx(t, 60*time.Second)
	d, err := New(WithSnapshots(false)).Boot(ctx, img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close(); noLeftovers(t, d) }()
	lines := drain(t, d, 30*time.Second)
	e, err := d.Wait(ctx)
	if err != nil || e.Code != 1 {
		t.Fatalf("exit %v, %v; want exit 1 (app lines %v)", e, err, lines)
	}
	var stderr []string
	for _, l := range lines {
		if l.Stream == target.Stderr {
			stderr = append(stderr, l.Text)
		}
	}
	if len(stderr) == 0 || !strings.Contains(strings.Join(stderr, "\n"), "pcapwatch") {
		t.Fatalf("crash-on-start's stderr not reported; app lines %v", lines)
	}
}

// TestLoaderErrors: with the static check skipped, the guest's own dynamic
// loader must say what is wrong.
func TestLoaderErrors(t *testing.T) {
	// ld.so exits 127 when a library is missing and 1 when a symbol
	// version is.
	for _, tc := range []struct {
		image, want string
		code        int
	}{
		{"no-libpcap", "error while loading shared libraries: libpcap.so.0.8", 127},
		{"old-glibc", "version `GLIBC_2.34' not found", 1},
	} {
		t.Run(tc.image, func(t *testing.T) {
			img, cfg := sampleImage(t, tc.image)
			ctx := testCtx(t, 60*time.Second)
			d, err := New(WithSnapshots(false)).Boot(ctx, img, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { d.Close(); noLeftovers(t, d) }()
			lines := drain(t, d, 30*time.Second)
			e, err := d.Wait(ctx)
			if err != nil || e.Code != tc.code {
				t.Fatalf("exit %v, %v; want the loader's exit %d (lines %v)", e, err, tc.code, lines)
			}
			found := false
			for _, l := range lines {
				found = found || (l.Stream == target.Stderr && strings.Contains(l.Text, tc.want))
			}
			if !found {
				t.Fatalf("no stderr line containing %q; app lines %v", tc.want, lines)
			}
		})
	}
}

func TestSlowStartMissesBudget(t *testing.T) {
	img, cfg := sampleImage(t, "slow-start")
	ctx := testCtx(t, 60*time.Second)
	d, err := New(WithSnapshots(false)).Boot(ctx, img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close(); noLeftovers(t, d) }()
	if l, _, ok := waitLine(t, d, 4*time.Second, pcapwatchReady); ok {
		t.Fatalf("slow-start became ready within a 4 s budget: %v", l)
	}
}

func TestKernelPanicIsInfra(t *testing.T) {
	rootfs, img := capcountRootFS(t)
	ctx := testCtx(t, 60*time.Second)
	tmp := privateTmp(t)
	// No init where rdinit points: the kernel then panics (no root fs).
	_, err := New(WithRootFS(rootfs), WithSnapshots(false), WithKernelArgs("rdinit=/nonexistent")).
		Boot(ctx, img, target.RunConfig{Entrypoint: []string{"/bin/capcount"}})
	if err == nil || !target.IsInfra(err) || !strings.Contains(err.Error(), "kernel panic") {
		t.Fatalf("want an infra error naming the kernel panic, got %v", err)
	}
	t.Log(err)
	assertNothingLeft(t, tmp)
}

// privateTmp points TMPDIR at a fresh dir, so that what a boot leaves there
// is the test's own and not another concurrent user's.
func privateTmp(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return dir
}

// assertNothingLeft checks that no file or QEMU process refers to tmp.
func assertNothingLeft(t *testing.T, tmp string) {
	t.Helper()
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left behind in TMPDIR: %v", left)
	}
	if out, _ := exec.Command("pgrep", "-f", tmp).Output(); len(out) > 0 {
		t.Errorf("QEMU still running with %s: pids %s", tmp, out)
	}
}

func TestQEMUKilledIsInfra(t *testing.T) {
	rootfs, img := capcountRootFS(t)
	ctx := testCtx(t, 60*time.Second)
	d, err := New(WithRootFS(rootfs), WithSnapshots(false)).
		Boot(ctx, img, target.RunConfig{Entrypoint: []string{"/bin/capcount"}, Ready: readyLine})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close(); noLeftovers(t, d) }()
	if _, _, ok := waitLine(t, d, 20*time.Second, readyLine); !ok {
		t.Fatal("capcount never ready")
	}
	syscall.Kill(d.(*VM).cmd.Process.Pid, syscall.SIGKILL)
	ex, err := d.Wait(ctx)
	var de *target.DeadError
	if err == nil || !target.IsInfra(err) || !errors.As(err, &de) || !strings.Contains(err.Error(), "qemu-system-arm") || !strings.Contains(err.Error(), "was killed by signal 9 (SIGKILL)") {
		t.Fatalf("want an infra error saying QEMU was killed by signal 9, got %v", err)
	}
	if ex.Observed || ex.String() == "exit 0" {
		t.Errorf("exit %s: hil never saw the app end", ex)
	}
	if aerr := d.(*VM).Alive(ctx); aerr == nil || !strings.Contains(aerr.Error(), "was killed by signal 9") {
		t.Errorf("Alive after the kill: %v", aerr)
	}
	t.Log(err)
}

func TestHungGuestHitsDeadline(t *testing.T) {
	rootfs, img := capcountRootFS(t)
	ctx := testCtx(t, 60*time.Second)
	d, err := New(WithRootFS(rootfs), WithSnapshots(false)).
		Boot(ctx, img, target.RunConfig{Entrypoint: []string{"/bin/capcount"}, Ready: readyLine})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close(); noLeftovers(t, d) }()
	if _, _, ok := waitLine(t, d, 20*time.Second, readyLine); !ok {
		t.Fatal("capcount never ready")
	}
	// Freeze the guest's CPUs: from the harness's side a hung guest.
	mon, err := d.(*VM).qmp()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qmpRun(mon, "stop", nil); err != nil {
		t.Fatal(err)
	}
	mon.Disconnect()
	d.Signal(syscall.SIGTERM)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := d.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a hung guest: want the deadline, got %v", err)
	}
}

func TestCaptureAndWarmRestore(t *testing.T) {
	rootfs, img := capcountRootFS(t)
	snaps := t.TempDir()
	tg := New(WithRootFS(rootfs), WithSnapshotDir(snaps))
	cfg := target.RunConfig{Entrypoint: []string{"/bin/capcount"}, Cmd: []string{"capture", "lan0"}, Iface: "lan0", Ready: readyLine}
	run := func(wantBoot string, cfg target.RunConfig) {
		ctx := testCtx(t, 60*time.Second)
		t0 := time.Now()
		d, err := tg.Boot(ctx, img, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { d.Close(); noLeftovers(t, d) }()
		if _, seen, ok := waitLine(t, d, 20*time.Second, readyLine); !ok {
			t.Fatalf("%s boot: never ready; lines %v", wantBoot, seen)
		}
		t.Logf("%s boot: ready after %v (info %v)", wantBoot, time.Since(t0), d.Info())
		if got := d.Info().String("boot"); got != wantBoot {
			t.Fatalf("boot mode %q, want %q", got, wantBoot)
		}
		// Where a boot's time went: restoring (snapshot boots) and starting
		// the app (cold and base boots: an app snapshot has it running).
		info := d.Info()
		_, restored := info["restored_ms"]
		_, started := info["app_start_ms"]
		if restored != (wantBoot != "cold") || started != (wantBoot != "app") {
			t.Errorf("%s boot: restored_ms %v, app_start_ms %v", wantBoot, info["restored_ms"], info["app_start_ms"])
		} else if ms := func(k string) float64 { f, _ := strconv.ParseFloat(info.String(k), 64); return f }; restored && (ms("restored_ms") <= 0 || ms("restored_ms") >= ms("boot_ms")) {
			t.Errorf("%s boot: restored after %v of a %v ms boot", wantBoot, info["restored_ms"], info["boot_ms"])
		}
		if got := d.Info()["rx_offload"]; got != "off" {
			t.Errorf("%s boot: rx_offload %q, want off (%s)", wantBoot, got, d.Info()["rx_offload_features"])
		}
		// The base snapshot is taken at idle: with the kernel's free of the
		// modules' init sections still to come, every restore would redo
		// it (0.3-1 s of TLB flushes on armhf) before the app started.
		if got, ok := info["module_init_free"]; ok != (wantBoot == "cold") || ok && got != "freed" {
			t.Errorf("%s boot: module_init_free %q (%v), want freed on the cold boot only (after %v ms)", wantBoot, got, ok, info["module_init_free_ms"])
		}
		before, err := d.(target.DeliveryCounter).RxCounters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		usedBefore := virtioUsed(t, d.(target.DeliveryDiagnoser))
		frame := make([]byte, 60)
		copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
		for i := 0; i < 1000; i++ {
			if err := d.Link().WriteFrame(frame); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Link().(*qemustream.Link).Drain(ctx); err != nil {
			t.Fatal(err)
		}
		// Drained by QEMU is not yet received by the guest's kernel: on a
		// loaded host that takes a while.
		var after link.Counters
		for deadline := time.Now().Add(10 * time.Second); ; {
			if after, err = d.(target.DeliveryCounter).RxCounters(ctx); err != nil {
				t.Fatal(err)
			}
			if after.Sub(before).RxPackets >= 1000 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		// With coalescing off hil-init does not count what a capture sees
		// (-1): its counting sockets cost the guest's receive path.
		if got := after.Sub(before); got.RxPackets != 1000 || got.RxDropped != 0 || got.Seen != -1 || got.SeenOverMTU != -1 || got.Iface != "lan0" {
			t.Errorf("%s boot: the guest counted %+v; want 1000 received, none dropped, on lan0, and what a capture saw not counted (-1)", wantBoot, got)
		}
		// QEMU's view of the same frames: 1000 more buffers used.
		if used := virtioUsed(t, d.(target.DeliveryDiagnoser)); used-usedBefore != 1000 {
			t.Errorf("%s boot: QEMU's receive queue used index went from %d to %d; want 1000 more", wantBoot, usedBefore, used)
		}
		if err := d.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		l, seen, ok := waitLine(t, d, 20*time.Second, func(l target.Line) bool { return strings.HasPrefix(l.Text, "summary") })
		if !ok || l.Text != "summary frames=1000 drops=0" {
			t.Fatalf("%s boot: summary %q, want frames=1000 drops=0 (lines %v)", wantBoot, l.Text, seen)
		}
		// A restored guest's clock resumes from the snapshot's moment
		// unless hil-init sets it from the host.
		l, seen, ok = waitLine(t, d, 20*time.Second, func(l target.Line) bool { return strings.HasPrefix(l.Text, "clock ") })
		if !ok {
			t.Fatalf("%s boot: no clock line (lines %v)", wantBoot, seen)
		}
		guest, err := strconv.ParseFloat(strings.TrimPrefix(l.Text, "clock "), 64)
		if err != nil {
			t.Fatal(err)
		}
		if skew := float64(l.Time.UnixNano())/1e9 - guest; skew > 1 || skew < -1 {
			t.Fatalf("%s boot: guest clock off the host's by %.2f s", wantBoot, skew)
		}
		if e, err := d.Wait(ctx); err != nil || e.Code != 0 {
			t.Fatalf("%s boot: exit %v, %v", wantBoot, e, err)
		}
	}
	run("cold", cfg)
	base, _ := filepath.Glob(filepath.Join(snaps, "base-*.vmstate"))
	all, _ := filepath.Glob(filepath.Join(snaps, "*.vmstate"))
	if len(base) != 1 || len(all) != 2 {
		t.Fatalf("after the cold boot reached ready: snapshots %v; want one base and one app-level", all)
	}
	// Make a stale clock visible: the snapshots are now >= 2 s old.
	time.Sleep(2 * time.Second)
	run("app", cfg)
	// Other app arguments: the base snapshot, and the app started after
	// the restore with them.
	other := cfg
	other.Env = []string{"CAPCOUNT_CASE=2"}
	run("base", other)
	if all, _ := filepath.Glob(filepath.Join(snaps, "*.vmstate")); len(all) != 3 {
		t.Errorf("after a base boot reached ready: snapshots %v; want its app-level one too", all)
	}
}

// TestArm64 boots an arm64 rootfs on Debian's arm64 kernel under
// qemu-system-aarch64, the same way as arm/v7.
func TestArm64(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-aarch64"); err != nil {
		t.Skip("qemu-system-aarch64 not installed (package qemu-system-arm)")
	}
	rootfs, img := capcountRootFSFor(t, "arm64")
	ctx := testCtx(t, 5*time.Minute) // the first run fetches the kernel
	d, err := New(WithRootFS(rootfs), WithSnapshots(false)).
		Boot(ctx, img, target.RunConfig{Entrypoint: []string{"/bin/capcount"}, Ready: readyLine})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close(); noLeftovers(t, d) }()
	if _, seen, ok := waitLine(t, d, 30*time.Second, readyLine); !ok {
		t.Fatalf("arm64 capcount never ready: %v (console %s)", seen, d.Info().String("console_log"))
	}
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
	for i := 0; i < 500; i++ {
		if err := d.Link().WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Link().(*qemustream.Link).Drain(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	d.Signal(syscall.SIGTERM)
	l, seen, ok := waitLine(t, d, 20*time.Second, func(l target.Line) bool { return strings.HasPrefix(l.Text, "summary") })
	if !ok || l.Text != "summary frames=500 drops=0" {
		t.Fatalf("summary %q, want frames=500 drops=0 (lines %v)", l.Text, seen)
	}
	if e, err := d.Wait(ctx); err != nil || e.Code != 0 {
		t.Fatalf("exit %v, %v", e, err)
	}
	if !strings.Contains(d.Info().String("kernel"), "arm64") {
		t.Fatalf("booted kernel %q, want Debian's arm64", d.Info().String("kernel"))
	}
	if b := d.Info().String("boot"); b != "cold" {
		t.Fatalf("boot %q without snapshots, want cold", b)
	}
	if got := d.Info()["module_init_free"]; got != "freed" {
		t.Errorf("arm64 cold boot: module_init_free %q, want freed", got)
	}
}

// TestParallelVMs: two guests at once get their own sockets and temp dirs
// and both capture their own frames.
func TestParallelVMs(t *testing.T) {
	rootfs, img := capcountRootFS(t)
	tg := New(WithRootFS(rootfs), WithSnapshots(false), WithCPUs(1))
	ctx := testCtx(t, 90*time.Second)
	devs := make([]target.App, 2)
	errs := make(chan error, 2)
	for i := range devs {
		go func(i int) {
			d, err := tg.Boot(ctx, img, target.RunConfig{Entrypoint: []string{"/bin/capcount"}, Ready: readyLine})
			devs[i] = d
			errs <- err
		}(i)
	}
	for range devs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, d := range devs {
			d.Close()
			noLeftovers(t, d)
		}
	}()
	if devs[0].(*VM).tmp == devs[1].(*VM).tmp {
		t.Fatal("two VMs share a temp dir")
	}
	for i, d := range devs {
		if _, _, ok := waitLine(t, d, 30*time.Second, readyLine); !ok {
			t.Fatalf("VM %d never ready", i)
		}
		frame := make([]byte, 60)
		copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
		for j := 0; j < 100*(i+1); j++ {
			d.Link().WriteFrame(frame)
		}
		d.Link().(*qemustream.Link).Drain(ctx)
	}
	time.Sleep(200 * time.Millisecond)
	for i, d := range devs {
		d.Signal(syscall.SIGTERM)
		want := "summary frames=" + strconv.Itoa(100*(i+1)) + " drops=0"
		if l, seen, ok := waitLine(t, d, 20*time.Second, func(l target.Line) bool { return strings.HasPrefix(l.Text, "summary") }); !ok || l.Text != want {
			t.Fatalf("VM %d: %q, want %q (lines %v)", i, l.Text, want, seen)
		}
	}
}

// TestCancelDuringBoot: cancelling the boot's context kills QEMU and
// leaves nothing behind.
func TestCancelDuringBoot(t *testing.T) {
	rootfs, img := capcountRootFS(t)
	tmp := privateTmp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := New(WithRootFS(rootfs), WithSnapshots(false)).
		Boot(ctx, img, target.RunConfig{Entrypoint: []string{"/bin/capcount"}})
	if err == nil || !target.IsInfra(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want an infra error wrapping the deadline, got %v", err)
	}
	assertNothingLeft(t, tmp)
}

// TestInitFailureIsInfra: what hil-init cannot set up is the harness's
// problem, not the app's.
func TestInitFailureIsInfra(t *testing.T) {
	rootfs, img := capcountRootFS(t)
	ctx := testCtx(t, 60*time.Second)
	tmp := privateTmp(t)
	_, err := New(WithRootFS(rootfs), WithSnapshots(false)).
		Boot(ctx, img, target.RunConfig{Entrypoint: []string{"/bin/capcount"}, Iface: "a-name-much-too-long-for-linux"})
	defer assertNothingLeft(t, tmp)
	if err == nil || !target.IsInfra(err) || !strings.Contains(err.Error(), "guest init failed") || !strings.Contains(err.Error(), "longer than 15") {
		t.Fatalf("want an infra error from hil-init about the interface name, got %v", err)
	}
}

// virtioUsed is the used index in d's DeliveryDiagnosis: one used entry
// per frame for frames this small (no mergeable buffers needed). The test
// app counts with a packet socket, not in promiscuous mode: the NIC
// filters by address (the test's frames are broadcast).
func virtioUsed(t *testing.T, d target.DeliveryDiagnoser) uint16 {
	t.Helper()
	diag, filters := d.DeliveryDiagnosis(context.Background())
	if !filters || !strings.HasSuffix(diag, "; the guest's NIC is not promiscuous: QEMU drops unicast frames not for 52:54:00:12:34:56") {
		t.Errorf("delivery diagnosis %q, filters %v: want the NIC's filter named", diag, filters)
	}
	m := regexp.MustCompile(`^QEMU's virtio-net receive queue: avail index \d+, taken (\d+), used index (\d+), signalled \d+, in use 0;`).FindStringSubmatch(diag)
	if m == nil || m[1] != m[2] {
		t.Fatalf("delivery diagnosis %q: want every buffer QEMU took used, none in use", diag)
	}
	n, _ := strconv.Atoi(m[2])
	return uint16(n)
}

// hil-init's idle line becomes the cold boot's module_init_free facts; a
// line the host cannot read says so rather than leaving them out.
func TestIdleLineBecomesDeviceFacts(t *testing.T) {
	for js, want := range map[string]string{
		`{"module_init_free":"freed","module_init_free_us":21395}`: "freed",
		`{"module_init_free":"no modules"}`:                        "no modules",
		`not json`:                                                 "unknown (hil-init said not json)",
		``:                                                         "unknown (hil-init said nothing)",
	} {
		d := &VM{info: target.Info{}}
		d.onIdle(js)
		if got := d.info["module_init_free"]; got != want {
			t.Errorf("idle %q: module_init_free %q, want %q", js, got, want)
		}
	}
	d := &VM{info: target.Info{}}
	d.onIdle(`{"module_init_free":"freed","module_init_free_us":21395}`)
	if got := d.info["module_init_free_ms"]; got != 21.395 {
		t.Errorf("module_init_free_ms %v, want 21.395", got)
	}
}
