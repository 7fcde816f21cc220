//go:build linux

// Package nsthread runs a function on an OS thread inside another network
// namespace: the one piece of namespace plumbing the veth link, hil record
// and the test pairs of namespaces share.
package nsthread

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Run runs f on a locked thread that enter moved into another network
// namespace, then moves the thread back. Sockets f makes belong to that
// namespace and can be used from any goroutine afterwards. A thread that
// cannot go back stays locked, so the runtime ends it with the goroutine
// instead of reusing it in the wrong namespace.
func Run(enter, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := enter(); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to the original namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
