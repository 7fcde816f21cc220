// Package link is the harness's end of the device's network interface: what
// the harness writes arrives at the app as ingress on its capture interface,
// and what the app sends comes back as a stream of frames.
package link

import "time"

// Frame is one Ethernet frame the device sent, stamped when the harness
// received it.
type Frame struct {
	Data []byte
	Time time.Time
}

// Link is one network interface of a device under test, seen from the
// harness. Implementations: veth (a network namespace and a veth pair, for
// the user and container targets) and qemustream (QEMU's -netdev stream
// socket, for the system target).
type Link interface {
	// WriteFrame sends one Ethernet frame (without FCS) to the device. It is
	// the replay hot path, so it takes no context; it must not keep b.
	WriteFrame(b []byte) error
	// Frames streams the frames the device sent. The channel is closed by
	// Close.
	Frames() <-chan Frame
	// MTU is the largest payload (frame minus the 14-byte Ethernet header)
	// the device side accepts.
	MTU() int
	// Close releases everything the link made (namespace, interfaces,
	// sockets). It is safe to call more than once.
	Close() error
}
