//go:build !linux

package container

import (
	"context"
	"fmt"
	"runtime"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/target"
)

type config struct{}

// Option configures the target.
type Option func(*config)

// WithMTU sets the MTU of the app's interface (default 1500).
func WithMTU(int) Option { return func(*config) {} }

// WithKeepImage leaves the image hil loaded on the engine after Close.
func WithKeepImage() Option { return func(*config) {} }

// WithBusybox names the host's static busybox.
func WithBusybox(string) Option { return func(*config) {} }

// Target is the container target, which needs Linux: network namespaces and
// veth pairs carry the app's interface. On other systems it registers, so
// that a scenario naming it gets a clear answer, and every Boot fails.
type Target struct{}

// New returns the container target.
func New(...Option) *Target { return &Target{} }

// Name is "container".
func (t *Target) Name() string { return "container" }

// Boot fails: the container target needs Linux.
func (t *Target) Boot(context.Context, *image.Image, target.RunConfig) (target.App, error) {
	return nil, &target.UnsupportedError{Target: "container", What: "running on " + runtime.GOOS,
		Reason: fmt.Sprintf("the app's interface is a veth pair in a Linux network namespace; run hil on Linux (this is %s/%s)", runtime.GOOS, runtime.GOARCH)}
}

func init() {
	target.Register("container", func(target.Params) ([]target.Target, error) { return []target.Target{New()}, nil })
}
