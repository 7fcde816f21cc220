// Package qemustream is the harness's end of a QEMU guest NIC backed by
// `-netdev stream`: the harness listens on a unix socket, QEMU connects to it
// (server=off) and both sides exchange Ethernet frames, each preceded by its
// length as a 4-byte big-endian integer (package framed). No TAP device and
// no root are needed.
package qemustream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/link/framed"
)

// Option configures a Link.
type Option func(*Link)

// WithMTU sets the largest payload WriteFrame accepts (1500 by default, what
// virtio-net presents to the guest).
func WithMTU(n int) Option { return func(l *Link) { l.mtu = n } }

// WithWriteTimeout bounds how long one flush may wait for QEMU to take the
// frames (10 s by default). A guest that stops draining its NIC then makes
// WriteFrame fail instead of hanging the replay.
func WithWriteTimeout(d time.Duration) Option {
	return func(l *Link) { l.opts = append(l.opts, framed.WithWriteTimeout(d)) }
}

// WithFrameBuffer sets how many frames the device sent are queued for
// Frames before further ones are dropped (and counted in Dropped).
func WithFrameBuffer(n int) Option {
	return func(l *Link) { l.opts = append(l.opts, framed.WithFrameBuffer(n)) }
}

// Link serves one QEMU `-netdev stream` connection on a unix socket.
type Link struct {
	path string
	mtu  int
	opts []framed.Option

	ln *net.UnixListener

	mu   sync.Mutex // guards conn and fc, set once by Accept
	conn *net.UnixConn
	fc   *framed.Conn
	// unconnected is what Frames gives before Accept: it carries nothing
	// and is closed by Close, as the link.Link contract says.
	unconnected chan link.Frame

	closeOnce sync.Once
	closeErr  error
}

var (
	_ link.Link    = (*Link)(nil)
	_ link.Drainer = (*Link)(nil)
)

// Listen creates the unix socket at path (which must not exist) and returns
// a Link waiting for QEMU to connect. Start QEMU with
// `-netdev stream,id=ID,server=off,addr.type=unix,addr.path=PATH`, then call
// Accept.
func Listen(path string, opts ...Option) (*Link, error) {
	l := &Link{path: path, mtu: 1500, unconnected: make(chan link.Frame)}
	for _, o := range opts {
		o(l)
	}
	if l.mtu <= 0 {
		return nil, fmt.Errorf("qemustream: MTU must be positive, got %d", l.mtu)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("qemustream: listening on %s: %w", path, err)
	}
	// Close removes the file itself, after the listener is gone.
	ln.SetUnlinkOnClose(false)
	l.ln = ln
	return l, nil
}

// Path is the unix socket QEMU must connect to.
func (l *Link) Path() string { return l.path }

// NetdevArg returns the -netdev argument that connects QEMU to this link.
func (l *Link) NetdevArg(id string) string {
	return fmt.Sprintf("stream,id=%s,server=off,addr.type=unix,addr.path=%s", id, l.path)
}

// Accept waits for QEMU to connect. It can be called once; the frame
// methods work from then on.
func (l *Link) Accept(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { l.ln.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := l.ln.AcceptUnix()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("qemustream: waiting for QEMU to connect to %s: %w", l.path, ctx.Err())
		}
		return fmt.Errorf("qemustream: accepting QEMU on %s: %w", l.path, err)
	}
	// Large socket buffers absorb bursts while QEMU is busy with the guest.
	_ = c.SetWriteBuffer(4 << 20)
	_ = c.SetReadBuffer(1 << 20)
	fc, err := framed.New(c, c, c, append([]framed.Option{framed.WithMTU(l.mtu), framed.WithName("QEMU")}, l.opts...)...)
	if err != nil {
		c.Close()
		return fmt.Errorf("qemustream: %w", err)
	}
	l.mu.Lock()
	l.conn, l.fc = c, fc
	l.mu.Unlock()
	return nil
}

func (l *Link) connected() (*framed.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fc == nil {
		return nil, errors.New("qemustream: QEMU has not connected (call Accept first)")
	}
	return l.fc, nil
}

// WriteFrame queues one frame for the guest; frames are batched into few
// writes during a burst and leave at once when the caller pauses.
func (l *Link) WriteFrame(b []byte) error {
	fc, err := l.connected()
	if err != nil {
		return err
	}
	return fc.WriteFrame(b)
}

// Flush pushes queued frames to QEMU and waits until the socket took them.
func (l *Link) Flush() error {
	fc, err := l.connected()
	if err != nil {
		return nil // nothing was queued
	}
	return fc.Flush()
}

// Drain flushes and then waits until QEMU has read every byte from the
// socket: QEMU reads only while the guest NIC has room, so once Drain
// returns the guest kernel has taken (all but QEMU's last read of) the
// frames. It measures what the guest really absorbed, and replaces sleeps.
func (l *Link) Drain(ctx context.Context) error {
	if err := l.Flush(); err != nil {
		return err
	}
	l.mu.Lock()
	c := l.conn
	l.mu.Unlock()
	if c == nil {
		return nil
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	for {
		var n int
		var ierr error
		if err := raw.Control(func(fd uintptr) { n, ierr = unread(int(fd)) }); err != nil {
			return err
		}
		if ierr != nil {
			return fmt.Errorf("qemustream: %w", ierr)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("qemustream: %d bytes still unread by QEMU: %w", n, ctx.Err())
		case <-time.After(200 * time.Microsecond):
		}
	}
}

// Frames streams the frames the guest sent; it is closed by Close. Ask for
// it after Accept: before, it is a channel that only closes.
func (l *Link) Frames() <-chan link.Frame {
	if fc, err := l.connected(); err == nil {
		return fc.Frames()
	}
	return l.unconnected
}

// Dropped counts guest frames discarded because Frames was not drained.
func (l *Link) Dropped() uint64 {
	if fc, err := l.connected(); err == nil {
		return fc.Dropped()
	}
	return 0
}

// Received counts frames the guest sent.
func (l *Link) Received() uint64 {
	if fc, err := l.connected(); err == nil {
		return fc.Received()
	}
	return 0
}

// MTU is the largest payload WriteFrame accepts.
func (l *Link) MTU() int { return l.mtu }

// Close flushes what is queued (briefly), closes the connection and the
// listener, removes the socket file and closes Frames. Safe to call twice.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		l.ln.Close()
		l.mu.Lock()
		fc := l.fc
		l.mu.Unlock()
		if fc != nil {
			fc.Close()
		}
		close(l.unconnected)
		if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.closeErr = fmt.Errorf("qemustream: removing %s: %w", l.path, err)
		}
	})
	return l.closeErr
}
