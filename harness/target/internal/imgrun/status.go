package imgrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/emu"
	"golang.org/x/sys/unix"
)

// Status is what a user or container App knows about its app and shares
// between the boot, the output readers, the waiter and the caller: the Info
// facts, the capture capabilities, the exit once the app stopped, and the
// first line that showed the emulator's capture gap.
type Status struct {
	what   string
	exited chan struct{}

	mu      sync.Mutex
	info    target.Info
	caps    target.Capabilities
	exit    target.Exit
	waitErr error
	gap     string
	// stopping is set when hil starts to stop the app (Close): an exit
	// recorded after that is hil's doing, not the app's.
	stopping bool
}

// NewStatus starts with info and capture supported; what names the app in
// Wait's error ("the app", "the app container").
func NewStatus(what string, info target.Info) *Status {
	return &Status{what: what, exited: make(chan struct{}), info: info, caps: target.Capabilities{Capture: true}}
}

// Set records one Info fact (typed as target.InfoKeys says).
func (s *Status) Set(key string, value any) {
	s.mu.Lock()
	s.info[key] = value
	s.mu.Unlock()
}

// Get returns one Info fact.
func (s *Status) Get(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info.String(key)
}

// Update lets fn change several Info facts at once.
func (s *Status) Update(fn func(info target.Info)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.info)
}

// Info is a copy of the facts.
func (s *Status) Info() target.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info.Clone()
}

// ProbeEmulator records how the app runs (mode is nativeMode or
// emulatedMode) and, under an emulator, asks it (once per QEMU version)
// whether capture works; Info gets emulator, emulator_version and capture.
func (s *Status) ProbeEmulator(ctx context.Context, em emu.Emulator, nativeMode, emulatedMode string) {
	caps := target.Capabilities{Capture: true}
	if em.Native {
		s.Set("mode", nativeMode)
	} else {
		s.Set("mode", emulatedMode)
		s.Set("emulator", em.Path)
		report, err := emu.Probe(ctx, em)
		if err != nil {
			caps = target.Capabilities{Reason: "the emulator's capture support could not be probed: " + err.Error()}
		} else {
			s.Set("emulator_version", report.Version)
			caps = target.Capabilities{Capture: report.Capture, Reason: report.Reason}
		}
	}
	if caps.Capture {
		s.Set("capture", "supported")
	} else {
		s.Set("capture", "unsupported: "+caps.Reason)
	}
	s.mu.Lock()
	s.caps = caps
	s.mu.Unlock()
}

// Capabilities says whether capture works here and, if not, why.
func (s *Status) Capabilities() target.Capabilities {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caps
}

// Observe is the Lines observer: when capture is unsupported, the first
// line that shows the emulator's gap is remembered (Info "emulator_gap").
func (s *Status) Observe(l target.Line) {
	if s.Capabilities().Capture {
		return
	}
	if reason, ok := emu.Gap(l.Text); ok {
		s.mu.Lock()
		if s.gap == "" {
			s.gap = reason
			s.info["emulator_gap"] = reason
		}
		s.mu.Unlock()
	}
}

// EmulatorGap returns the first output line that showed the app failing
// only because of the emulator's capture gap.
func (s *Status) EmulatorGap() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gap, s.gap != ""
}

// Stopping says hil is stopping the app now (Close). An exit recorded
// after it is not observed ("stopped by hil", with an error for Wait), as
// the target contract asks: the kill hil sent is no exit status of the
// app. An exit recorded before it stands.
func (s *Status) Stopping() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
}

// RecordExit records how the app ended (err: hil could not tell) and
// releases Wait; call it once.
func (s *Status) RecordExit(exit target.Exit, err error) {
	s.mu.Lock()
	if s.stopping {
		exit = target.NotObserved("stopped by hil")
		if err == nil {
			err = target.Infra(errors.New("the device was closed before the app exited"))
		}
	}
	s.exit, s.waitErr = exit, err
	s.mu.Unlock()
	close(s.exited)
}

// Exit returns the app's exit once it is recorded (done), with the error
// when hil could not tell how it ended.
func (s *Status) Exit() (exit target.Exit, err error, done bool) {
	select {
	case <-s.exited:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.exit, s.waitErr, true
	default:
		return target.Exit{}, nil, false
	}
}

// Exited is closed once the app's exit is recorded.
func (s *Status) Exited() <-chan struct{} { return s.exited }

// AlreadyExited is the error for acting on an app that exited, or nil
// while it runs.
func (s *Status) AlreadyExited(action string) error {
	select {
	case <-s.exited:
		s.mu.Lock()
		defer s.mu.Unlock()
		return fmt.Errorf("%s: the app already exited (%s)", action, s.exit)
	default:
		return nil
	}
}

// Wait blocks until the app exits or ctx is done.
func (s *Status) Wait(ctx context.Context) (target.Exit, error) {
	select {
	case <-s.exited:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.exit, s.waitErr
	case <-ctx.Done():
		return target.Exit{}, fmt.Errorf("waiting for %s to exit: %w", s.what, ctx.Err())
	}
}

// Program is what an image config runs, found in the rootfs.
type Program struct {
	Argv    []string // entrypoint then cmd
	Workdir string   // "/" when the config sets none
	Path    string   // argv[0] in the image, symlinks resolved
	User    Identity
}

// FindProgram resolves cfg's command line, program and user in rootfs the
// way Docker would at start, failing before anything runs.
func FindProgram(rootfs string, cfg target.RunConfig) (Program, error) {
	argv, err := Argv(cfg.Entrypoint, cfg.Cmd)
	if err != nil {
		return Program{}, err
	}
	workdir := cfg.WorkingDir
	if workdir == "" {
		workdir = "/"
	}
	prog, err := LookPath(rootfs, argv[0], workdir, cfg.Env)
	if err != nil {
		return Program{}, err
	}
	ident, err := ResolveUser(rootfs, cfg.User)
	if err != nil {
		return Program{}, err
	}
	return Program{Argv: argv, Workdir: workdir, Path: prog, User: ident}, nil
}

// DockerExit maps an exit status as Docker reports it: 128+N is a process
// killed by signal N (and qemu-user re-raises a guest's fatal signal).
func DockerExit(code int) target.Exit {
	e := target.Exited(code)
	if code > 128 && code < 128+32 {
		if name := unix.SignalName(syscall.Signal(code - 128)); name != "" {
			e.Signal = name
		}
	}
	return e
}

// ProcState describes a process's scheduler state from /proc when it
// explains a device that no longer makes progress ("stopped (state T:
// SIGSTOP or SIGTSTP)"), else "".
func ProcState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	switch b[i+2] {
	case 'T':
		return "stopped (state T: SIGSTOP or SIGTSTP)"
	case 't':
		return "stopped by a tracer (state t)"
	case 'Z':
		return "a zombie (state Z)"
	}
	return ""
}

// Sent remembers the signals hil delivered to an app, so that a device
// can tell a SIGKILL of its own (a signal step, the teardown) from one
// that came from outside (kill -9, docker kill, the OOM killer).
type Sent struct {
	mu   sync.Mutex
	sigs map[syscall.Signal]bool
}

// Add records that hil is about to deliver sig.
func (s *Sent) Add(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sigs == nil {
		s.sigs = map[syscall.Signal]bool{}
	}
	s.sigs[sig] = true
}

// Has reports whether hil delivered sig.
func (s *Sent) Has(sig syscall.Signal) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sigs[sig]
}

// KilledFromOutside returns how an app that ended with exit was killed
// from outside hil, or "": a SIGKILL that hil did not send. An app cannot
// raise SIGKILL on itself by accident, so that is the host's or an
// operator's doing (kill -9, docker kill, the kernel's OOM killer).
func KilledFromOutside(exit target.Exit, sent *Sent) string {
	if !exit.Observed || exit.Signal != "SIGKILL" || sent.Has(syscall.SIGKILL) {
		return ""
	}
	return "was killed by signal 9 (SIGKILL), which hil did not send: killed from outside (kill -9, docker kill, the OOM killer)"
}
