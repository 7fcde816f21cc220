package imgrun

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/emu"
	"golang.org/x/sys/unix"
)

// Status is what a user or container Device knows about its app and shares
// between the boot, the output readers, the waiter and the caller: the Info
// facts, the capture capabilities, the exit once the app stopped, and the
// first line that showed the emulator's capture gap.
type Status struct {
	what   string
	exited chan struct{}

	mu      sync.Mutex
	info    map[string]string
	caps    target.Capabilities
	exit    target.Exit
	waitErr error
	gap     string
}

// NewStatus starts with info and capture supported; what names the app in
// Wait's error ("the app", "the app container").
func NewStatus(what string, info map[string]string) *Status {
	return &Status{what: what, exited: make(chan struct{}), info: info, caps: target.Capabilities{Capture: true}}
}

// Set records one Info fact.
func (s *Status) Set(key, value string) {
	s.mu.Lock()
	s.info[key] = value
	s.mu.Unlock()
}

// Get returns one Info fact.
func (s *Status) Get(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info[key]
}

// Update lets fn change several Info facts at once.
func (s *Status) Update(fn func(info map[string]string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.info)
}

// Info is a copy of the facts.
func (s *Status) Info() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.info))
	for k, v := range s.info {
		out[k] = v
	}
	return out
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

// RecordExit records how the app ended (err: hil could not tell) and
// releases Wait; call it once.
func (s *Status) RecordExit(exit target.Exit, err error) {
	s.mu.Lock()
	s.exit, s.waitErr = exit, err
	s.mu.Unlock()
	close(s.exited)
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
	e := target.Exit{Code: code}
	if code > 128 && code < 128+32 {
		if name := unix.SignalName(syscall.Signal(code - 128)); name != "" {
			e.Signal = name
		}
	}
	return e
}
