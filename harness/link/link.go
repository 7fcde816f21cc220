// Package link is the harness's end of the device's network interface: what
// the harness writes arrives at the app as ingress on its capture interface,
// and what the app sends comes back as a stream of frames.
//
// A Link may also implement Drainer (it can tell when the device has taken
// every frame) and FDWriter (it writes each frame with one write(2) to a
// descriptor); the replay engine uses them when they are there.
package link

import (
	"context"
	"time"
)

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

// Drainer is implemented by a Link that can wait until the device has
// taken every frame written so far: qemustream (QEMU has read its socket,
// so the guest NIC has the frames) and the device target's framed link
// (the board's agent has put them on the interface). A replay step ends
// with Drain, so the next step judges what the app made of every frame,
// not what still sat in a buffer. A Link without it is done once
// WriteFrame returned.
type Drainer interface {
	// Drain returns once the device has every frame written before the
	// call, or with ctx's error.
	Drain(ctx context.Context) error
}

// FDWriter is implemented by a Link whose WriteFrame is one plain write(2)
// of the frame to a file descriptor (veth's AF_PACKET socket). The replay
// engine then sends from a C loop that the Go scheduler cannot preempt
// (with cgo on Linux), which keeps timed replays on schedule on a busy
// host; it writes to its own dup of the descriptor.
type FDWriter interface {
	// WriteFD is the descriptor WriteFrame writes to, valid until Close.
	WriteFD() int
}

// Counters are the receive statistics of the device's capture interface
// (the kernel's, as in /sys/class/net/IFACE/statistics), read on the device
// side: what arrived, not what the harness wrote. Differences between two
// readings account for a replay frame by frame.
type Counters struct {
	// Iface is the interface counted, as the device names it.
	Iface string `json:"iface"`
	// RxPackets and RxBytes count the frames the interface took in. On
	// virtio-net they are counted per frame before receive coalescing
	// (GRO), as on most NIC drivers.
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
	// RxDropped sums what the interface dropped or rejected on receive:
	// rx_dropped, rx_errors (length, overrun, FIFO, missed), and, for a
	// veth pair, what the harness's end could not pass to the app's end
	// (its tx_dropped).
	RxDropped uint64 `json:"rx_dropped"`
	// Seen counts the frames as a capture on the interface sees them,
	// after any receive coalescing, and SeenOverMTU those longer than the
	// MTU allows (merged segments); -1 where the device does not count
	// them: the system target counts them only with receive coalescing on
	// (rx_offload gro), where they differ from RxPackets.
	Seen        int64 `json:"seen"`
	SeenOverMTU int64 `json:"seen_over_mtu"`
}

// Sub is c minus an earlier reading.
func (c Counters) Sub(before Counters) Counters {
	d := Counters{Iface: c.Iface, RxPackets: c.RxPackets - before.RxPackets, RxBytes: c.RxBytes - before.RxBytes,
		RxDropped: c.RxDropped - before.RxDropped, Seen: -1, SeenOverMTU: -1}
	if c.Seen >= 0 && before.Seen >= 0 {
		d.Seen, d.SeenOverMTU = c.Seen-before.Seen, c.SeenOverMTU-before.SeenOverMTU
	}
	return d
}
