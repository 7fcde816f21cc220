//go:build !linux

package user

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

// Target is the user target, which needs Linux: network namespaces and
// veth pairs carry the app's interface. On other systems it registers, so
// that a scenario naming it gets a clear answer, and every Boot fails.
type Target struct{}

// New returns the user target.
func New(...Option) *Target { return &Target{} }

// Name is "user".
func (t *Target) Name() string { return "user" }

// Boot fails: the user target needs Linux.
func (t *Target) Boot(context.Context, *image.Image, target.RunConfig) (target.App, error) {
	return nil, &target.UnsupportedError{Target: "user", What: "running on " + runtime.GOOS,
		Reason: fmt.Sprintf("the app's interface is a veth pair in a Linux network namespace; run hil on Linux (this is %s/%s)", runtime.GOOS, runtime.GOARCH)}
}

func init() {
	target.Register("user", func(target.Params) ([]target.Target, error) { return []target.Target{New()}, nil })
}
