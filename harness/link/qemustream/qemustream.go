// Package qemustream is the harness's end of a QEMU guest NIC backed by
// `-netdev stream`: the harness listens on a unix socket, QEMU connects to it
// (server=off) and both sides exchange Ethernet frames, each preceded by its
// length as a 4-byte big-endian integer. No TAP device and no root are needed.
package qemustream

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hilproject/hil/harness/link"
)

const (
	ethHeaderLen = 14
	// bufSize batches many small frames into one write(2) while the replay
	// outruns QEMU; the flusher empties it as soon as the writer pauses.
	bufSize = 64 << 10
)

// Option configures a Link.
type Option func(*Link)

// WithMTU sets the largest payload WriteFrame accepts (1500 by default, what
// virtio-net presents to the guest).
func WithMTU(n int) Option { return func(l *Link) { l.mtu = n } }

// WithWriteTimeout bounds how long one flush may wait for QEMU to take the
// frames (10 s by default). A guest that stops draining its NIC then makes
// WriteFrame fail instead of hanging the replay.
func WithWriteTimeout(d time.Duration) Option { return func(l *Link) { l.writeTimeout = d } }

// WithFrameBuffer sets how many frames the device sent are queued for
// Frames before further ones are dropped (and counted in Dropped).
func WithFrameBuffer(n int) Option { return func(l *Link) { l.frameBuf = n } }

// Link serves one QEMU `-netdev stream` connection on a unix socket.
type Link struct {
	path         string
	mtu          int
	writeTimeout time.Duration
	frameBuf     int

	ln *net.UnixListener

	mu   sync.Mutex // guards w, conn and werr
	conn *net.UnixConn
	w    *bufio.Writer
	werr error

	kick      chan struct{}
	frames    chan link.Frame
	dropped   atomic.Uint64
	received  atomic.Uint64
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Listen creates the unix socket at path (which must not exist) and returns
// a Link waiting for QEMU to connect. Start QEMU with
// `-netdev stream,id=ID,server=off,addr.type=unix,addr.path=PATH`, then call
// Accept.
func Listen(path string, opts ...Option) (*Link, error) {
	l := &Link{
		path:         path,
		mtu:          1500,
		writeTimeout: 10 * time.Second,
		frameBuf:     4096,
		kick:         make(chan struct{}, 1),
		done:         make(chan struct{}),
	}
	for _, o := range opts {
		o(l)
	}
	if l.mtu <= 0 {
		return nil, fmt.Errorf("qemustream: MTU must be positive, got %d", l.mtu)
	}
	l.frames = make(chan link.Frame, l.frameBuf)
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

// Accept waits for QEMU to connect. It can be called once.
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
	l.mu.Lock()
	l.conn = c
	l.w = bufio.NewWriterSize(c, bufSize)
	l.mu.Unlock()
	l.wg.Add(2)
	go l.readLoop(c)
	go l.flushLoop()
	return nil
}

// WriteFrame queues one frame for the guest. Frames are batched and flushed
// by a background goroutine as soon as the caller pauses, so a burst costs
// few system calls while a paced replay still leaves at once.
func (l *Link) WriteFrame(b []byte) error {
	if len(b) == 0 {
		return errors.New("qemustream: empty frame")
	}
	if len(b)-ethHeaderLen > l.mtu {
		return fmt.Errorf("qemustream: frame of %d bytes exceeds the link MTU %d (+%d header)", len(b), l.mtu, ethHeaderLen)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	l.mu.Lock()
	if l.werr != nil {
		err := l.werr
		l.mu.Unlock()
		return err
	}
	if l.w == nil {
		l.mu.Unlock()
		return errors.New("qemustream: WriteFrame before QEMU connected (call Accept first)")
	}
	if l.w.Available() < len(b)+4 {
		if err := l.flushLocked(); err != nil {
			l.mu.Unlock()
			return err
		}
	}
	l.w.Write(hdr[:])
	l.w.Write(b)
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return nil
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
		if err := raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
			return err
		}
		if ierr != nil {
			return fmt.Errorf("qemustream: SIOCOUTQ: %w", ierr)
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

// Flush pushes queued frames to QEMU and waits until the socket took them.
func (l *Link) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.werr != nil {
		return l.werr
	}
	if l.w == nil {
		return nil
	}
	return l.flushLocked()
}

func (l *Link) flushLocked() error {
	if l.w.Buffered() == 0 {
		return nil
	}
	_ = l.conn.SetWriteDeadline(time.Now().Add(l.writeTimeout))
	if err := l.w.Flush(); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("qemustream: QEMU took no frames for %s (guest NIC stalled?): %w", l.writeTimeout, err)
		} else {
			err = fmt.Errorf("qemustream: sending frames to QEMU: %w", err)
		}
		l.werr = err
		return err
	}
	return nil
}

func (l *Link) flushLoop() {
	defer l.wg.Done()
	for {
		select {
		case <-l.done:
			return
		case <-l.kick:
			l.mu.Lock()
			if l.werr == nil {
				_ = l.flushLocked()
			}
			l.mu.Unlock()
		}
	}
}

func (l *Link) readLoop(c *net.UnixConn) {
	defer l.wg.Done()
	r := bufio.NewReaderSize(c, 256<<10)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > 1<<20 {
			// Not QEMU's framing: stop rather than allocate garbage.
			return
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return
		}
		l.received.Add(1)
		select {
		case l.frames <- link.Frame{Data: data, Time: time.Now()}:
		case <-l.done:
			return
		default:
			// Nobody is draining Frames: drop instead of stalling the
			// guest's transmit queue.
			l.dropped.Add(1)
		}
	}
}

// Frames streams the frames the guest sent. Closed by Close.
func (l *Link) Frames() <-chan link.Frame { return l.frames }

// Dropped counts guest frames discarded because Frames was not drained.
func (l *Link) Dropped() uint64 { return l.dropped.Load() }

// Received counts frames the guest sent.
func (l *Link) Received() uint64 { return l.received.Load() }

// MTU is the largest payload WriteFrame accepts.
func (l *Link) MTU() int { return l.mtu }

// Close flushes what is queued (briefly), closes the connection and the
// listener, removes the socket file and closes Frames. Safe to call twice.
func (l *Link) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.mu.Lock()
		if l.w != nil && l.werr == nil {
			l.writeTimeout = 500 * time.Millisecond
			_ = l.flushLocked()
		}
		if l.werr == nil {
			l.werr = errors.New("qemustream: link closed")
		}
		conn := l.conn
		l.mu.Unlock()
		close(l.done)
		l.ln.Close()
		if conn != nil {
			conn.Close()
		}
		l.wg.Wait()
		close(l.frames)
		if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = fmt.Errorf("qemustream: removing %s: %w", l.path, rerr)
		}
	})
	return err
}

var _ link.Link = (*Link)(nil)
