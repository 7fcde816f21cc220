// Package framed carries Ethernet frames over a byte stream, each preceded by
// its length as a 4-byte big-endian integer: QEMU's `-netdev stream` framing,
// and what hil's board agent speaks over an SSH channel. A Conn implements
// link.Link on any reader/writer pair. An empty frame is a sync marker
// (see Conn.Drain), never a frame.
package framed

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hilproject/hil/harness/link"
)

const (
	ethHeaderLen = 14
	// MaxFrame bounds what a peer may announce; a larger length means the
	// stream is not this framing, and we stop rather than allocate garbage.
	MaxFrame = 1 << 20
	// bufSize batches many small frames into one write while a replay
	// outruns the peer; the flusher empties it as soon as the writer pauses.
	bufSize = 64 << 10
)

// Option configures a Conn.
type Option func(*Conn)

// WithMTU sets the largest payload WriteFrame accepts (1500 by default).
func WithMTU(n int) Option { return func(c *Conn) { c.mtu = n } }

// WithWriteTimeout bounds how long one flush may wait for the peer to take
// the frames (10 s by default), when the writer supports deadlines.
func WithWriteTimeout(d time.Duration) Option { return func(c *Conn) { c.writeTimeout = d } }

// WithFrameBuffer sets how many received frames are queued for Frames
// before further ones are dropped (and counted in Dropped).
func WithFrameBuffer(n int) Option { return func(c *Conn) { c.frameBuf = n } }

// WithName names the peer in errors ("QEMU", "the agent on pi-1").
func WithName(name string) Option { return func(c *Conn) { c.peer = name } }

// Conn exchanges length-prefixed frames over r and w.
type Conn struct {
	mtu          int
	writeTimeout time.Duration
	frameBuf     int
	peer         string

	mu   sync.Mutex // guards w and werr
	raw  io.Writer
	w    *bufio.Writer
	werr error

	closer io.Closer
	// Sync markers (see Drain): the peer echoes each in order, so the n-th
	// echo answers the n-th marker and concurrent Drains each get theirs.
	markers   atomic.Uint64
	echoMu    sync.Mutex
	echoes    uint64
	echoed    chan struct{} // closed and replaced at every echo
	readEnded chan struct{} // closed when the peer's stream ends
	kick      chan struct{}
	frames    chan link.Frame
	dropped   atomic.Uint64
	received  atomic.Uint64
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ link.Link    = (*Conn)(nil)
	_ link.Drainer = (*Conn)(nil)
)

// New starts exchanging frames: what WriteFrame gets goes to w, what r
// carries comes out of Frames. closer (may be nil) is closed by Close to
// stop the peer and unblock the reader.
func New(r io.Reader, w io.Writer, closer io.Closer, opts ...Option) (*Conn, error) {
	c := &Conn{
		mtu:          1500,
		writeTimeout: 10 * time.Second,
		frameBuf:     4096,
		peer:         "the peer",
		raw:          w,
		closer:       closer,
		echoed:       make(chan struct{}),
		readEnded:    make(chan struct{}),
		kick:         make(chan struct{}, 1),
		done:         make(chan struct{}),
	}
	for _, o := range opts {
		o(c)
	}
	if c.mtu <= 0 {
		return nil, fmt.Errorf("framed: MTU must be positive, got %d", c.mtu)
	}
	c.frames = make(chan link.Frame, c.frameBuf)
	c.w = bufio.NewWriterSize(w, bufSize)
	c.wg.Add(2)
	go c.readLoop(r)
	go c.flushLoop()
	return c, nil
}

// WriteFrame queues one frame for the peer. Frames are batched and flushed
// by a background goroutine as soon as the caller pauses, so a burst costs
// few system calls while a paced replay still leaves at once.
func (c *Conn) WriteFrame(b []byte) error {
	if len(b) == 0 {
		return errors.New("framed: empty frame")
	}
	if len(b)-ethHeaderLen > c.mtu {
		return fmt.Errorf("framed: frame of %d bytes exceeds the link MTU %d (+%d header)", len(b), c.mtu, ethHeaderLen)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	c.mu.Lock()
	if c.werr != nil {
		err := c.werr
		c.mu.Unlock()
		return err
	}
	if c.w.Available() < len(b)+4 {
		if err := c.flushLocked(); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.w.Write(hdr[:])
	c.w.Write(b)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

// Flush pushes queued frames to the peer and waits until the stream took
// them.
func (c *Conn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	return c.flushLocked()
}

// Drain waits until the peer has taken every frame written so far: it
// sends an empty frame, which a peer that supports it (hil's board agent)
// echoes once everything before it reached the device. A Drain is thus
// also a round trip through the peer: it fails at once when the peer's
// stream has ended. Peers that never echo make Drain wait for ctx. Safe
// for concurrent use.
func (c *Conn) Drain(ctx context.Context) error {
	c.mu.Lock()
	if c.werr != nil {
		err := c.werr
		c.mu.Unlock()
		return err
	}
	// Counted before it is written, so that an echo can never come first.
	n := c.markers.Add(1)
	c.w.Write([]byte{0, 0, 0, 0})
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	for {
		c.echoMu.Lock()
		got, echoed := c.echoes, c.echoed
		c.echoMu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-echoed:
		case <-c.readEnded:
			return fmt.Errorf("framed: %s closed its stream", c.peer)
		case <-c.done:
			return errors.New("framed: link closed while draining")
		case <-ctx.Done():
			return fmt.Errorf("framed: waiting for %s to take the frames: %w", c.peer, ctx.Err())
		}
	}
}

type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

func (c *Conn) flushLocked() error {
	if c.w.Buffered() == 0 {
		return nil
	}
	if d, ok := c.raw.(writeDeadliner); ok {
		_ = d.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	if err := c.w.Flush(); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("framed: %s took no frames for %s (its NIC stalled?): %w", c.peer, c.writeTimeout, err)
		} else {
			err = fmt.Errorf("framed: sending frames to %s: %w", c.peer, err)
		}
		c.werr = err
		return err
	}
	return nil
}

func (c *Conn) flushLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.kick:
			c.mu.Lock()
			if c.werr == nil {
				_ = c.flushLocked()
			}
			c.mu.Unlock()
		}
	}
}

func (c *Conn) readLoop(r io.Reader) {
	defer c.wg.Done()
	defer close(c.readEnded)
	br := bufio.NewReaderSize(r, 256<<10)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > MaxFrame {
			return
		}
		if n == 0 {
			c.echoMu.Lock()
			// An echo nobody asked for answers no marker.
			if c.echoes < c.markers.Load() {
				c.echoes++
				close(c.echoed)
				c.echoed = make(chan struct{})
			}
			c.echoMu.Unlock()
			continue
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(br, data); err != nil {
			return
		}
		c.received.Add(1)
		select {
		case c.frames <- link.Frame{Data: data, Time: time.Now()}:
		case <-c.done:
			return
		default:
			// Nobody is draining Frames: drop instead of stalling the
			// peer's transmit path.
			c.dropped.Add(1)
		}
	}
}

// Frames streams the frames the peer sent. Closed by Close.
func (c *Conn) Frames() <-chan link.Frame { return c.frames }

// Dropped counts received frames discarded because Frames was not drained.
func (c *Conn) Dropped() uint64 { return c.dropped.Load() }

// Received counts frames the peer sent.
func (c *Conn) Received() uint64 { return c.received.Load() }

// MTU is the largest payload WriteFrame accepts.
func (c *Conn) MTU() int { return c.mtu }

// Close flushes what is queued (briefly), closes the stream and Frames.
// Safe to call twice.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		if c.werr == nil {
			c.writeTimeout = 500 * time.Millisecond
			_ = c.flushLocked()
			c.werr = errors.New("framed: link closed")
		}
		c.mu.Unlock()
		close(c.done)
		if c.closer != nil {
			err = c.closer.Close()
		}
		c.wg.Wait()
		close(c.frames)
	})
	return err
}

// WriteTo writes one frame with its length prefix to w, unbuffered: for the
// agent side, which relays frame by frame.
func WriteTo(w io.Writer, b []byte) error {
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err := w.Write(buf)
	return err
}

// ReadFrom reads one length-prefixed frame from r.
func ReadFrom(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return nil, fmt.Errorf("framed: announced frame of %d bytes (max %d): not this framing", n, MaxFrame)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}
