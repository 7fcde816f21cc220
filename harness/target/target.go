// Package target defines how hil boots an image and talks to the running
// app. Implementations live in the sub-packages: system (qemu-system-arm,
// the high-fidelity default), user (qemu-user in a network namespace),
// container (a Docker host through testcontainers-go) and device (a real
// board over SSH).
package target

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

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
	Boot(ctx context.Context, img *image.Image, cfg RunConfig) (Device, error)
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
	// Ready reports whether an output line means "the app is ready". Targets
	// that snapshot a booted guest (system) take their snapshot then.
	Ready func(Line) bool
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
	Stream Stream
	Text   string
	Time   time.Time
}

// Exit is how the app ended.
type Exit struct {
	Code   int    // exit code when the app exited
	Signal string // signal name ("SIGSEGV") when a signal killed it
}

func (e Exit) String() string {
	if e.Signal != "" {
		return "killed by " + e.Signal
	}
	return fmt.Sprintf("exit %d", e.Code)
}

// Device is a booted image with its app running.
type Device interface {
	// Output streams the app's stdout and stderr lines (and, where there is
	// one, console lines). It is closed once the app has exited and its
	// output is drained, or by Close.
	Output() <-chan Line
	// Link is the harness's end of the app's capture interface.
	Link() link.Link
	// Signal delivers sig to the app.
	Signal(sig syscall.Signal) error
	// Wait blocks until the app exits or ctx is done.
	Wait(ctx context.Context) (Exit, error)
	// Info describes the device for reports (emulator and kernel versions,
	// boot mode, timings).
	Info() map[string]string
	// Close stops the app and releases every process, socket, namespace and
	// temp dir the boot made. It is safe to call more than once.
	Close() error
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

// IsInfra reports whether err is (or wraps) an InfraError.
func IsInfra(err error) bool {
	var ie *InfraError
	return errors.As(err, &ie)
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

// CapabilityReporter is implemented by Devices (and Targets) that cannot do
// everything; a Device that does not implement it can do everything.
type CapabilityReporter interface {
	Capabilities() Capabilities
}

// CapabilitiesOf returns what d reports, or full capabilities when d does
// not implement CapabilityReporter.
func CapabilitiesOf(d Device) Capabilities {
	if r, ok := d.(CapabilityReporter); ok {
		return r.Capabilities()
	}
	return Capabilities{Capture: true}
}
