// Package target defines how hil boots an image and talks to the running
// app. Implementations live in the sub-packages: system (qemu-system-arm,
// the high-fidelity default), user (qemu-user in a network namespace),
// container (a Docker engine through its API) and device (a real
// board over SSH).
//
// # Liveness: no pass without a live device
//
// A step that waits for something not to happen (`count: "== 0"`,
// expect_no_output, a wait) proves nothing if the device died under it. So
// every App of hil's targets also implements Liveness: Alive says
// whether the device is still running the app, or what died and how (a
// *DeadError). The scenario runner asks it at the end of every step window
// and at the end of the case (and polls it while steps wait, to stop
// early); a device found dead turns the case into an infra-error naming
// what died, during which step, which the runner retries and never counts
// as a pass or as the app's failure. Once the app's own exit was observed
// the device has done its job: Alive is nil from then on (an exit that was
// a kill from outside, see below, is no such exit).
//
// What each target checks:
//
//   - system: the QEMU process has not exited; QMP query-status answers
//     within the liveness timeout and says "running" (a QEMU that is
//     stopped or hung does not answer); and hil-init, PID 1 of the guest,
//     beats: it writes "beat" on its virtio-serial report port every
//     200 ms, and the host takes any line on that port as a sign of life.
//     No sign for longer than the liveness timeout (3 s by default) means
//     the guest no longer runs, even when QEMU does. The time hil itself
//     pauses the VM (the snapshot at ready) does not count.
//   - user: the app's process (qemu-user, or the native program) is not
//     stopped, and did not end on a SIGKILL that hil did not send (kill -9
//     from outside, the OOM killer): the app cannot raise SIGKILL on
//     itself by accident, so that is the host's doing.
//   - container: the container, through the Docker API: it exists, is not
//     paused, was not OOM-killed and did not end on a SIGKILL hil did not
//     send (docker kill, docker rm -f).
//   - device (a board over SSH): the SSH connection (a keepalive round
//     trip) and hil's agent on the board (a round trip through its frame
//     channel: a sync marker the agent echoes after everything before
//     it); and, as for the container, no SIGKILL of the app container
//     that hil did not send.
//
// # Optional interfaces
//
// An App may do more than the App interface asks; the runner looks
// for these (as net/http does for http.Flusher) and works without them:
//
//   - Liveness: Alive says whether the device still runs the app (below).
//     Without it, what Wait and Output say is all the runner knows.
//   - CapabilityReporter: Capabilities says what the device cannot do
//     (packet capture under qemu-user), so steps that need it are
//     unsupported, not failed. Without it, the device can do everything.
//   - GapReporter: EmulatorGap says the app failed only because of the
//     emulator, so the case is unsupported, not failed.
//
// Its Link may implement link.Drainer and link.FDWriter (see harness/link).
// targettest.Conformance checks a target against this contract.
//
// # Exit status: observed or not
//
// Exit.Observed says whether hil saw the app end. A device that died, or an
// app that hil's teardown stopped, has no exit status: its Exit is not
// observed (String says "not observed (stopped by hil)"), never exit 0.
package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/link"
)

// Target can boot an image and run its entrypoint.
type Target interface {
	// Name is the target's short name as scenarios and reports spell it:
	// "system", "user", "container", "device".
	Name() string
	// Boot starts the app of img with cfg and returns once the app process
	// has been started (not once it is ready: readiness is the runner's
	// business, judged from Output).
	Boot(ctx context.Context, img *image.Image, cfg RunConfig) (App, error)
}

// RunConfig is what to run: the image config with the scenario's overrides
// already applied.
type RunConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	// Iface is the name the app's capture interface gets inside the device
	// (eth0 by default).
	Iface string
	// RxOffload is how the capture interface coalesces received frames:
	// "" or "off" (every frame sent is one frame captured: GRO, LRO and
	// the like off) or "gro" (GRO on, as on a board whose NIC driver does
	// it: back-to-back TCP segments may reach the app merged, larger than
	// the MTU). Targets that cannot set it say so when asked for gro.
	RxOffload string
	// Ready reports whether an output line means "the app is ready". Targets
	// that snapshot a booted guest (system) take their snapshot then.
	Ready func(Line) bool
	// Board, when set, is the board the case runs as, and each target
	// models it as closely as it can: system boots the board's QEMU
	// machine, CPU, memory and kernel (or reports the board unsupported,
	// with the profile's reason); user and container run qemu-user with
	// the board's CPU; device refuses a board of another model. nil is
	// the target's own default (system: QEMU virt, Cortex-A15, 512 MiB).
	Board *board.Board
}

// BoardName is the name of cfg's board, or "" without one.
func (cfg RunConfig) BoardName() string {
	if cfg.Board == nil {
		return ""
	}
	return cfg.Board.String()
}

// Stream names where a line of output came from.
type Stream string

const (
	Stdout  Stream = "stdout"
	Stderr  Stream = "stderr"
	Console Stream = "console" // the kernel / emulator console, not the app
)

// Line is one line of output.
type Line struct {
	Stream Stream    `json:"stream"`
	Text   string    `json:"text"`
	Time   time.Time `json:"time"`
}

// Exit is how the app ended, as far as hil saw it.
type Exit struct {
	// Observed is true when hil saw the app end: Code and Signal are then
	// what its process returned. The zero Exit is not observed, so that an
	// exit status nobody saw can never read as exit 0 (in JSON an exit
	// that was not observed has no code).
	Observed bool `json:"observed"`
	// Code is the exit code (128+N when signal N killed the app, where the
	// target reports it so).
	Code int `json:"code"`
	// Signal names the signal that killed the app ("SIGSEGV"), if one did.
	Signal string `json:"signal,omitempty"`
	// Note says, when the exit was not observed, why not ("stopped by hil",
	// "the device died first").
	Note string `json:"note,omitempty"`
}

// MarshalJSON writes code only for an observed exit, and the exit as a
// person reads it ("exit 1", "killed by SIGSEGV", "not observed (stopped
// by hil)") as text.
func (e Exit) MarshalJSON() ([]byte, error) {
	type plain Exit
	var code *int
	if e.Observed {
		code = &e.Code
	}
	return json.Marshal(struct {
		plain
		Code *int   `json:"code,omitempty"`
		Text string `json:"text"`
	}{plain(e), code, e.String()})
}

// Exited is the observed exit of an app that returned code.
func Exited(code int) Exit { return Exit{Observed: true, Code: code} }

// KilledBy is the observed end of an app killed by the signal named sig
// ("SIGSEGV"); code is what the target reports with it (128+N, or 0).
func KilledBy(sig string, code int) Exit { return Exit{Observed: true, Code: code, Signal: sig} }

// NotObserved is the Exit of an app whose end hil did not see, and why.
func NotObserved(why string) Exit { return Exit{Note: why} }

func (e Exit) String() string {
	switch {
	case !e.Observed && e.Note != "":
		return "not observed (" + e.Note + ")"
	case !e.Observed:
		return "not observed"
	case e.Signal != "":
		return "killed by " + e.Signal
	}
	return fmt.Sprintf("exit %d", e.Code)
}

// App is a booted image with its app running.
type App interface {
	// Output streams the app's stdout and stderr lines (and, where there is
	// one, console lines). It is closed once the app has exited and its
	// output is drained, or by Close.
	Output() <-chan Line
	// Link is the harness's end of the app's capture interface.
	Link() link.Link
	// Signal delivers sig to the app.
	Signal(sig syscall.Signal) error
	// Wait blocks until the app exits or ctx is done. It returns the
	// observed Exit, or an error (with an Exit that is not observed) when
	// the device ended without the app's exit being seen: never a made-up
	// exit status.
	Wait(ctx context.Context) (Exit, error)
	// Info describes the device for reports (emulator and kernel versions,
	// boot mode, timings), typed as InfoKeys documents. Where the target
	// reads it, "rx_offload" says how the capture interface coalesces
	// received frames: "off", or the features that are on ("rx-gro").
	Info() Info
	// Close stops the app and releases every process, socket, namespace and
	// temp dir the boot made. It is safe to call more than once.
	Close() error
}

// Liveness is implemented by an App that can tell whether it is still
// alive (see the package doc). Every App of hil's own targets
// implements it.
type Liveness interface {
	// Alive returns nil while the device runs the app, and from the moment
	// the app's own exit was observed. Otherwise it returns why the device
	// is not alive: what died and how, as a *DeadError where the target can
	// tell. A check that gets no answer in time (a hung emulator, a silent
	// agent) is a death, never a pass. Alive returns within the target's
	// liveness timeout or ctx, whichever is first, and is safe to call from
	// several goroutines.
	Alive(ctx context.Context) error
}

// AliveOf asks d whether it is alive. An App that does not implement
// Liveness is judged by what Wait and Output say alone: AliveOf is then
// always nil.
func AliveOf(ctx context.Context, d App) error {
	if l, ok := d.(Liveness); ok {
		return l.Alive(ctx)
	}
	return nil
}

// DeadError says what died and how: "the emulator qemu-system-arm (pid
// 4242) was killed by signal 9 (SIGKILL)". It is the host's or the lab's
// failure, never the app's: IsInfra reports true for it.
type DeadError struct {
	What   string // "the emulator qemu-system-arm (pid 4242)"
	How    string // "was killed by signal 9 (SIGKILL)"
	Detail string // optional: the last console lines, the log file
}

func (e *DeadError) Error() string {
	s := e.What + " " + e.How
	if e.Detail != "" {
		s += "; " + e.Detail
	}
	return s
}

// Dead is a *DeadError for what died and how.
func Dead(what, how string) *DeadError { return &DeadError{What: what, How: how} }

// HowEnded words how a process ended for DeadError.How: "was killed by
// signal 9 (SIGKILL)", "exited with status 1".
func HowEnded(ps *os.ProcessState) string {
	if ps == nil {
		return "ended (how is unknown)"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("was killed by signal %d (%s)", int(ws.Signal()), unix.SignalName(ws.Signal()))
	}
	return fmt.Sprintf("exited with status %d", ps.ExitCode())
}

// InfraError marks a failure of the harness, the host or the emulator rather
// than of the app: the runner retries it and never promotes on it.
type InfraError struct{ Err error }

func (e *InfraError) Error() string { return "infrastructure: " + e.Err.Error() }
func (e *InfraError) Unwrap() error { return e.Err }

// Infra wraps err as an InfraError (nil stays nil).
func Infra(err error) error {
	if err == nil {
		return nil
	}
	return &InfraError{Err: err}
}

// IsInfra reports whether err is (or wraps) an InfraError or a DeadError.
func IsInfra(err error) bool {
	var ie *InfraError
	var de *DeadError
	return errors.As(err, &ie) || errors.As(err, &de)
}

// UnsupportedError says a target cannot do what a step needs (for example
// libpcap capture under qemu-user) and why. Such a step is "unsupported",
// never "failed".
type UnsupportedError struct {
	Target string
	What   string // what was asked, e.g. "packet capture"
	Reason string // why this target cannot, e.g. the emulator's error
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("%s target does not support %s: %s", e.Target, e.What, e.Reason)
}

// Capabilities says what a device can do beyond running the app, so the
// runner can mark steps that need more "unsupported" (with Reason) instead
// of failing the app.
type Capabilities struct {
	// Capture is true when the app can capture packets on its interface
	// (libpcap over AF_PACKET with the mmap ring and SIOCETHTOOL).
	Capture bool
	// Reason says why not when Capture is false, e.g. the emulator's error.
	Reason string
}

// CapabilityReporter is implemented by Apps (and Targets) that cannot do
// everything; an App that does not implement it can do everything.
type CapabilityReporter interface {
	Capabilities() Capabilities
}

// GapReporter is implemented by an App that can tell when the app failed
// only because of the emulator it runs under, not because of a bug of the
// app: libpcap's "SIOCETHTOOL ... Function not implemented" under
// qemu-user (see FINDINGS). The runner then calls the case unsupported,
// with that reason, never fail. The user and container targets' devices
// implement it.
type GapReporter interface {
	// EmulatorGap returns the output line that showed the gap, and
	// whether there was one.
	EmulatorGap() (reason string, ok bool)
}

// DeliveryCounter is implemented by Apps that can read the receive
// counters of the app's capture interface on the device side, so that the
// runner accounts for every frame a replay sent (link.Counters). The four
// bundled targets' devices implement it: system through hil-init, user and
// container on the app's veth end, device through hil-agent netinfo.
type DeliveryCounter interface {
	// RxCounters reads the counters now; the runner takes differences.
	RxCounters(ctx context.Context) (link.Counters, error)
}

// DeliveryDiagnoser is a device that can say where frames stand that
// were sent but did not reach its interface (an emulator's queue), for
// the report of a replay that lost some ("" when it cannot tell), and
// whether its NIC filters frames by address (not promiscuous: unicast
// frames for other MACs are dropped before any counter sees them, as on
// a real NIC, so frames missing are not the harness's).
type DeliveryDiagnoser interface {
	DeliveryDiagnosis(ctx context.Context) (where string, filters bool)
}

// CapabilitiesOf returns what d reports, or full capabilities when d does
// not implement CapabilityReporter.
func CapabilitiesOf(d App) Capabilities {
	if r, ok := d.(CapabilityReporter); ok {
		return r.Capabilities()
	}
	return Capabilities{Capture: true}
}
