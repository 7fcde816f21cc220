//go:build !linux || !cgo

package record

import (
	"context"
	"fmt"
	"runtime"
)

// Capture is a running capture. Capturing needs Linux and libpcap (cgo):
// in this build Start always fails and there is never a Capture.
type Capture struct{ done chan struct{} }

// Start fails: live capture needs libpcap through cgo on Linux.
func Start(ctx context.Context, iface, path string, opts ...Option) (*Capture, error) {
	return nil, fmt.Errorf("record: capturing on %s needs libpcap on Linux; this build (%s, cgo %v) has neither: build hil on Linux with cgo", iface, runtime.GOOS, cgoEnabled)
}

// Stop is Wait.
func (c *Capture) Stop() (Stats, error) { return c.Wait() }

// Wait returns at once: no capture runs in this build.
func (c *Capture) Wait() (Stats, error) {
	return Stats{}, fmt.Errorf("record: no capture in this build")
}

// Done is closed.
func (c *Capture) Done() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}
