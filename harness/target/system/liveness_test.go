package system

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/targettest"
	"github.com/hilproject/hil/internal/hilproc"
	"github.com/hilproject/hil/internal/testenv"
)

// The repro: an upper-bound and absence steps after a wait, the
// kind of scenario that passed when the emulator was killed under it.
const absenceSteps = `name: absence
targets: [system]
startup: {budget: 30s, ready: {regex: "^ready iface=eth0$"}}
steps:
  - wait: 3s
  - expect_frames: {filter: ip6, count: "== 0", within: 3s, settle: 2s}
  - expect_output: {regex: error, count: "== 0", within: 3s, settle: 2s}
  - expect_no_output: {regex: error}
`

// A replay that lasts about three seconds (294 frames at 100 pps).
const replaySteps = `name: replay
targets: [system]
startup: {budget: 30s, ready: {regex: "^ready iface=eth0$"}}
steps:
  - replay: {fixture: arp-sweep, schedule: 100pps}
  - expect_output: {json: {event: device_seen}, count: ">= 1", within: 5s}
`

// TestEmulatorFaultsAreInfraErrors kills (and stops) the real QEMU under
// the real runner at every kind of step: each case must end as an
// infra-error that names what died and how, never a pass and never an
// app failure, and never with an exit status hil did not see.
func TestEmulatorFaultsAreInfraErrors(t *testing.T) {
	img, _ := sampleImage(t, "pcapwatch")
	tg := New(WithSnapshotDir(t.TempDir()))
	startup, err := scenario.ParseFile(filepath.Join(testenv.RepoRoot(t), "scenarios", "startup.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kill := targettest.KillDevice(syscall.SIGKILL)
	parse := func(y string) *scenario.Scenario {
		sc, err := scenario.Parse("fault.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	for _, tc := range []struct {
		name  string
		sc    *scenario.Scenario
		fault targettest.Fault
		// want are substrings of the reason.
		want []string
	}{
		{"kill -9 during wait", parse(absenceSteps), targettest.Fault{Step: 0, After: time.Second, Do: kill},
			[]string{"killed by signal 9 (SIGKILL)", "during step 1 (wait 3s)"}},
		{"kill -9 during expect_frames == 0", parse(absenceSteps), targettest.Fault{Step: 1, After: 500 * time.Millisecond, Do: kill},
			[]string{"killed by signal 9 (SIGKILL)", "during step 2 (expect frames"}},
		{"kill -9 during expect_output == 0", parse(absenceSteps), targettest.Fault{Step: 2, After: 500 * time.Millisecond, Do: kill},
			[]string{"killed by signal 9 (SIGKILL)", "during step 3 (expect output"}},
		{"kill -9 during expect_no_output", parse(absenceSteps), targettest.Fault{Step: 3, Do: kill},
			[]string{"killed by signal 9 (SIGKILL)", "during step 4 (expect no output"}},
		{"kill -9 during a replay", parse(replaySteps), targettest.Fault{Step: 0, After: time.Second, Do: kill},
			[]string{"killed by signal 9 (SIGKILL)", "during step 1 (replay"}},
		{"kill -9 before ready", parse(absenceSteps), targettest.Fault{Step: targettest.BeforeReady, Do: kill},
			[]string{"killed by signal 9 (SIGKILL)", "during the startup"}},
		{"kill -9 in the bundled startup scenario's settle", startup, targettest.Fault{Step: 0, After: 100 * time.Millisecond, Do: kill},
			[]string{"killed by signal 9 (SIGKILL)", "during step 1"}},
		{"SIGSTOP during wait", parse(absenceSteps), targettest.Fault{Step: 0, After: 500 * time.Millisecond, Do: targettest.KillDevice(syscall.SIGSTOP)},
			[]string{"the emulator", "during step 1 (wait 3s)"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			res := targettest.RunScenario(t, tg, targettest.Images{Img: img}, tc.sc, &tc.fault)
			t.Logf("%s: %s: %s", tc.name, res.Verdict, firstLine(res.Reason))
			if res.Verdict != scenario.InfraError {
				t.Fatalf("verdict %s, want infra-error: %s", res.Verdict, res.Reason)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.Reason, w) {
					t.Errorf("reason does not say %q: %s", w, res.Reason)
				}
			}
			if strings.Contains(res.Reason, "exit 0") {
				t.Errorf("reason reports an exit status hil never saw: %s", res.Reason)
			}
			if res.Exit != nil && res.Exit.Observed {
				t.Errorf("result reports an observed exit (%s) of an app whose emulator was killed", res.Exit)
			}
		})
	}
}

// A healthy case still passes, cold (the snapshots pause the VM on
// purpose), from the app-level snapshot and from the base snapshot (the
// restored hil-init beats on, and starts the app after the restore): the
// case lasts longer than the liveness timeout. It reports the exit it saw.
func TestLiveCasePasses(t *testing.T) {
	img, _ := sampleImage(t, "pcapwatch")
	tg := New(WithSnapshotDir(t.TempDir()))
	steps := absenceSteps + "  - signal: TERM\n  - expect_exit: 0\n"
	for _, c := range []struct{ boot, yaml string }{
		{"cold", steps},
		{"app", steps},
		// Other app arguments: the base snapshot.
		{"base", strings.Replace(steps, "targets: [system]\n", "targets: [system]\napp: {env: {HIL_CASE: other}}\n", 1)},
	} {
		res := targettest.RunCase(t, tg, targettest.Images{Img: img}, c.yaml, nil)
		if res.Verdict != scenario.Pass || res.Device["boot"] != c.boot {
			t.Fatalf("%s boot (%s): verdict %s: %s", c.boot, res.Device["boot"], res.Verdict, res.Reason)
		}
		if res.Exit == nil || !res.Exit.Observed || res.Exit.Code != 0 || res.Exit.String() != "exit 0" {
			t.Errorf("%s boot: exit %v, want the observed exit 0", c.boot, res.Exit)
		}
	}
}

// A guest that hangs while QEMU runs on (real-time spinners starve the
// guest's init) answers QMP "running": only the heartbeat catches it, and
// the runner makes the case an infra-error naming it.
func TestHungGuestFailsTheHeartbeat(t *testing.T) {
	rootfs, img := capcountRootFS(t)
	tg := New(WithRootFS(rootfs), WithSnapshots(false))
	ctx := testCtx(t, 90*time.Second)
	d, err := tg.Boot(ctx, img, target.RunConfig{Entrypoint: []string{"/bin/capcount"}, Cmd: []string{"hog"}, Ready: readyLine})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close(); noLeftovers(t, d) }()
	if _, _, ok := waitLine(t, d, 30*time.Second, readyLine); !ok {
		t.Fatal("capcount hog never ready")
	}
	dev := d.(*VM)
	if err := dev.Alive(ctx); err != nil {
		t.Fatalf("Alive right after ready: %v", err)
	}
	var aerr error
	for deadline := time.Now().Add(30 * time.Second); aerr == nil && time.Now().Before(deadline); {
		go drain(t, d, time.Second) // keep the output flowing, as the runner does
		time.Sleep(500 * time.Millisecond)
		aerr = dev.Alive(ctx)
	}
	var de *target.DeadError
	if !errors.As(aerr, &de) || !strings.Contains(de.What, "hil-init") || !strings.Contains(de.How, "gave no sign of life") {
		t.Fatalf("Alive of a hung guest: %v; want the heartbeat named", aerr)
	}
	if st, err := dev.queryStatus(ctx, 5*time.Second); err != nil || st != "running" {
		t.Errorf("QMP says %q, %v; the test wants a hang QEMU does not see", st, err)
	}
	t.Log(aerr)

	res := targettest.RunCase(t, tg, targettest.Images{Img: img, RootFS: rootfs}, `name: hog
targets: [system]
app: {args: [hog]}
startup: {budget: 30s, ready: {regex: "^ready"}}
steps:
  - wait: 10s
`, nil)
	t.Logf("%s: %s", res.Verdict, firstLine(res.Reason))
	if res.Verdict != scenario.InfraError || !strings.Contains(res.Reason, "gave no sign of life") || !strings.Contains(res.Reason, "during step 1 (wait 10s)") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// A QEMU killed from outside while it restores a snapshot (the fault
// suite's kill during the boot) is an infra-error naming the kill: it used
// to be taken for a stale snapshot, which Boot dropped before booting cold
// behind the runner's back, so the case passed on another VM and every
// later boot paid a cold boot and a new snapshot.
func TestKilledRestoreIsInfraAndKeepsTheSnapshot(t *testing.T) {
	rootfs, img := capcountRootFS(t)
	snaps := t.TempDir()
	tg := New(WithRootFS(rootfs), WithSnapshotDir(snaps))
	cfg := target.RunConfig{Entrypoint: []string{"/bin/capcount"}, Cmd: []string{"capture", "lan0"}, Iface: "lan0", Ready: readyLine}
	boot := func() (target.App, error) {
		d, err := tg.Boot(testCtx(t, 90*time.Second), img, cfg)
		if err == nil {
			t.Cleanup(func() { d.Close(); noLeftovers(t, d) })
		}
		return d, err
	}
	d, err := boot()
	if err != nil {
		t.Fatal(err)
	}
	if _, seen, ok := waitLine(t, d, 30*time.Second, readyLine); !ok {
		t.Fatalf("cold boot never ready: %v", seen)
	}
	// The cold boot saves the base snapshot (hil-init idle) and the
	// app-level one (ready); the next boot of the same case restores the
	// app level, and that restore is killed.
	var snap, all []string
	for deadline := time.Now().Add(30 * time.Second); len(snap) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		all, _ = filepath.Glob(filepath.Join(snaps, "*.vmstate"))
		snap = slices.DeleteFunc(slices.Clone(all), func(p string) bool { return strings.HasPrefix(filepath.Base(p), "base-") })
	}
	if len(snap) != 1 || len(all) != 2 {
		t.Fatalf("after the cold boot: snapshots %v; want one base and one app-level", all)
	}
	// Kill the restoring QEMU as soon as it shows up.
	killed := make(chan int, 1)
	go func() {
		defer close(killed)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			for _, pid := range hilproc.ProcsWith("-incoming") {
				// QEMU reads the snapshot from its fd 3.
				if f, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", pid)); f != snap[0] {
					continue
				}
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed <- pid
					return
				}
			}
		}
	}()
	d, err = boot()
	pid := <-killed
	if pid == 0 {
		t.Fatal("no restoring QEMU showed up to kill")
	}
	if err == nil {
		t.Fatalf("QEMU %d killed during the restore, Boot returned a %s-booted device (%v): the kill was hidden", pid, d.Info().String("boot"), d.Info())
	}
	if !target.IsInfra(err) || !strings.Contains(err.Error(), "killed by signal 9 (SIGKILL)") {
		t.Fatalf("Boot: %v; want an infra error naming the SIGKILL", err)
	}
	if _, serr := os.Stat(snap[0]); serr != nil {
		t.Fatalf("the snapshot was dropped after a kill from outside: %v", serr)
	}
	// The snapshot still restores.
	if d, err = boot(); err != nil || d.Info().String("boot") != "app" {
		t.Fatalf("the next boot: %v, %v; want one from the app-level snapshot", err, d)
	}
}
