//go:build linux && cgo

package record

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcap"
	"github.com/google/gopacket/pcapgo"
	"github.com/hilproject/hil/internal/nsthread"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Capture is a running capture; Start returns it once the capture is
// active, so traffic made after Start is recorded.
type Capture struct {
	cfg    config
	iface  string
	path   string
	handle *pcap.Handle
	tmp    *os.File
	out    *bufio.Writer
	w      writer

	started  time.Time
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	stats    Stats
	err      error
}

type writer interface {
	WritePacket(ci gopacket.CaptureInfo, data []byte) error
}

// Start opens the capture on iface and returns once frames are being
// recorded into path (written under a temporary name until the end).
// Cancelling ctx aborts the capture: Wait then returns the context's error
// and no file is left. Without a frame or time limit the capture runs until
// Stop.
func Start(ctx context.Context, iface, path string, opts ...Option) (_ *Capture, err error) {
	cfg := config{snaplen: DefaultSnaplen, promisc: true, buffer: defaultBuffer}
	for _, o := range opts {
		o(&cfg)
	}
	if err := validate(&cfg, iface, path); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &Capture{cfg: cfg, iface: iface, path: path, stop: make(chan struct{}), done: make(chan struct{})}
	c.stats = Stats{Path: path, Format: cfg.format, Iface: iface, NetNS: cfg.netns, Snaplen: cfg.snaplen, Filter: cfg.filter}

	// The interface is checked first so that a typo gets a clear answer
	// rather than libpcap's "No such device exists".
	nsPath, err := checkInterface(cfg.netns, iface)
	if err != nil {
		return nil, err
	}
	c.handle, err = open(nsPath, iface, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.handle.Close()
		}
	}()
	lt := c.handle.LinkType()
	c.stats.LinkType = linkTypeName(lt)

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	c.tmp, err = os.CreateTemp(dir, "."+base+".*.partial")
	if err != nil {
		return nil, fmt.Errorf("record: create a temporary file beside %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			c.discard()
		}
	}()
	c.out = bufio.NewWriterSize(c.tmp, 1<<20)
	if c.w, err = newWriter(c.out, cfg, iface, lt); err != nil {
		return nil, fmt.Errorf("record: write the %s header: %w", cfg.format, err)
	}
	c.started = time.Now()
	go c.run(ctx)
	return c, nil
}

// Stop ends the capture: frames already queued are still written (for up
// to two seconds), then the file is renamed into place. It returns what
// Wait returns.
func (c *Capture) Stop() (Stats, error) {
	c.stopOnce.Do(func() { close(c.stop) })
	return c.Wait()
}

// Wait blocks until the capture ended (a limit, Stop, a cancelled context
// or an error) and returns its statistics; on an error no file was left.
func (c *Capture) Wait() (Stats, error) {
	<-c.done
	return c.stats, c.err
}

// Done is closed when the capture has ended.
func (c *Capture) Done() <-chan struct{} { return c.done }

func validate(cfg *config, iface, path string) error {
	if iface == "" {
		return errors.New("record: no interface: expected the name of the interface to capture on")
	}
	if path == "" {
		return errors.New("record: no output file")
	}
	if cfg.format == "" {
		f, err := FormatFor(path)
		if err != nil {
			return err
		}
		cfg.format = f
	} else if _, err := ParseFormat(string(cfg.format)); err != nil {
		return err
	}
	if cfg.snaplen < 14 || cfg.snaplen > DefaultSnaplen {
		return fmt.Errorf("record: snap length %d: expected 14 (an Ethernet header) to %d bytes", cfg.snaplen, DefaultSnaplen)
	}
	if cfg.frames < 0 {
		return fmt.Errorf("record: frame limit %d: expected a positive number (or none)", cfg.frames)
	}
	if cfg.duration < 0 {
		return fmt.Errorf("record: time limit %s: expected a positive duration (or none)", cfg.duration)
	}
	if cfg.buffer <= 0 {
		return fmt.Errorf("record: buffer size %d: expected a positive number of bytes", cfg.buffer)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("record: output %s is a directory: expected a file name", path)
	}
	return nil
}

// nsPathOf turns a namespace name into its path under /run/netns.
func nsPathOf(ns string) string {
	if ns == "" || strings.ContainsRune(ns, '/') {
		return ns
	}
	return filepath.Join("/run/netns", ns)
}

// checkInterface makes sure the namespace and the interface exist, and
// names what is there when they do not.
func checkInterface(ns, iface string) (nsPath string, err error) {
	nsPath = nsPathOf(ns)
	h := &netlink.Handle{}
	where := "this network namespace"
	if nsPath != "" {
		where = "network namespace " + ns
		nh, err := netns.GetFromPath(nsPath)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("record: network namespace %s: %s does not exist: expected a name listed by `ip netns list` or a path like /proc/PID/ns/net", ns, nsPath)
			}
			return "", fmt.Errorf("record: open network namespace %s (%s): %w", ns, nsPath, err)
		}
		defer nh.Close()
		if h, err = netlink.NewHandleAt(nh); err != nil {
			return "", fmt.Errorf("record: netlink in network namespace %s: %w", ns, err)
		}
		defer h.Close()
	}
	if _, err := h.LinkByName(iface); err != nil {
		var have []string
		if links, lerr := h.LinkList(); lerr == nil {
			for _, l := range links {
				have = append(have, l.Attrs().Name)
			}
		}
		sort.Strings(have)
		return "", fmt.Errorf("record: no interface %s in %s: expected one of %s", iface, where, strings.Join(have, ", "))
	}
	return nsPath, nil
}

// open activates the libpcap handle. Inside another namespace the
// activation runs on a thread that entered it: the packet socket belongs to
// the namespace it was made in, so it can be read from any thread after.
func open(nsPath, iface string, cfg config) (*pcap.Handle, error) {
	var h *pcap.Handle
	activate := func() error {
		in, err := pcap.NewInactiveHandle(iface)
		if err != nil {
			return err
		}
		defer in.CleanUp()
		for _, set := range []func() error{
			func() error { return in.SetSnapLen(cfg.snaplen) },
			func() error { return in.SetPromisc(cfg.promisc) },
			// Immediate mode hands over each frame at once, so Stop and
			// the limits see everything that arrived before them.
			func() error { return in.SetImmediateMode(true) },
			func() error { return in.SetBufferSize(cfg.buffer) },
			func() error { return in.SetTimeout(pollTimeout) },
		} {
			if err := set(); err != nil {
				return err
			}
		}
		h, err = in.Activate()
		return err
	}
	var err error
	if nsPath == "" {
		err = activate()
	} else {
		err = inNetNS(nsPath, activate)
	}
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "permission") || strings.Contains(msg, "not permitted") {
			return nil, fmt.Errorf("record: capture on %s: %w (capturing needs root or CAP_NET_RAW)", iface, err)
		}
		return nil, fmt.Errorf("record: capture on %s: %w", iface, err)
	}
	if cfg.filter != "" {
		if err := h.SetBPFFilter(cfg.filter); err != nil {
			h.Close()
			return nil, fmt.Errorf("record: filter %q: %w", cfg.filter, err)
		}
	}
	return h, nil
}

// inNetNS runs f on a locked thread inside the namespace at path, then
// moves the thread back. A thread that cannot go back stays locked, so the
// runtime ends it with the goroutine instead of reusing it in the wrong
// namespace.
func inNetNS(path string, f func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()
	return nsthread.Run(func() error {
		if err := netns.Set(target); err != nil {
			return fmt.Errorf("enter network namespace %s (needs root): %w", path, err)
		}
		return nil
	}, f)
}

func newWriter(out io.Writer, cfg config, iface string, lt layers.LinkType) (writer, error) {
	if cfg.format == PCAPNG {
		intf := pcapgo.NgInterface{
			Name:                iface,
			OS:                  runtime.GOOS,
			LinkType:            lt,
			SnapLength:          uint32(cfg.snaplen),
			TimestampResolution: 9,
		}
		if cfg.filter != "" {
			intf.Filter = cfg.filter
		}
		w, err := pcapgo.NewNgWriterInterface(out, intf, pcapgo.NgWriterOptions{
			SectionInfo: pcapgo.NgSectionInfo{Application: "hil record", OS: runtime.GOOS, Hardware: runtime.GOARCH},
		})
		if err != nil {
			return nil, err
		}
		return ngWriter{w}, nil
	}
	w := pcapgo.NewWriter(out)
	if err := w.WriteFileHeader(uint32(cfg.snaplen), lt); err != nil {
		return nil, err
	}
	return w, nil
}

// ngWriter flushes its own buffer when the capture ends.
type ngWriter struct{ *pcapgo.NgWriter }

func (c *Capture) run(ctx context.Context) {
	defer close(c.done)
	err := c.loop(ctx)
	ended := time.Now()
	if st, serr := c.handle.Stats(); serr == nil {
		c.stats.Received, c.stats.Dropped, c.stats.IfDropped = st.PacketsReceived, st.PacketsDropped, st.PacketsIfDropped
	}
	c.handle.Close()
	if ng, ok := c.w.(ngWriter); ok && err == nil {
		// pcapng can carry libpcap's counts: a reader sees whether the
		// recording lost frames.
		err = ng.WriteInterfaceStats(0, pcapgo.NgInterfaceStatistics{
			LastUpdate: ended, StartTime: c.started, EndTime: ended,
			PacketsReceived: uint64(c.stats.Received), PacketsDropped: uint64(c.stats.Dropped + c.stats.IfDropped),
		})
	}
	if err == nil {
		err = c.commit()
	}
	if err != nil {
		c.discard()
		c.err = err
	}
}

func (c *Capture) loop(ctx context.Context) error {
	var deadline <-chan time.Time
	if c.cfg.duration > 0 {
		t := time.NewTimer(c.cfg.duration)
		defer t.Stop()
		deadline = t.C
	}
	var drainBy time.Time // set once a stop was asked for
	for {
		if c.cfg.frames > 0 && c.stats.Frames >= c.cfg.frames {
			c.stats.Ended = "frame limit"
			return nil
		}
		if drainBy.IsZero() {
			select {
			case <-ctx.Done():
				return fmt.Errorf("record: capture on %s cancelled after %d frames: %w", c.iface, c.stats.Frames, ctx.Err())
			case <-deadline:
				c.stats.Ended = "time limit"
				drainBy = time.Now().Add(drainLimit)
			case <-c.stop:
				c.stats.Ended = "stopped"
				drainBy = time.Now().Add(drainLimit)
			default:
			}
		} else if err := ctx.Err(); err != nil {
			return fmt.Errorf("record: capture on %s cancelled after %d frames: %w", c.iface, c.stats.Frames, err)
		} else if time.Now().After(drainBy) {
			return nil
		}
		data, ci, err := c.handle.ReadPacketData()
		switch {
		case err == nil:
			if err := c.write(ci, data); err != nil {
				return err
			}
		case errors.Is(err, pcap.NextErrorTimeoutExpired):
			if !drainBy.IsZero() {
				return nil // the queue is empty
			}
		default:
			return fmt.Errorf("record: reading from %s after %d frames: %w", c.iface, c.stats.Frames, err)
		}
	}
}

func (c *Capture) write(ci gopacket.CaptureInfo, data []byte) error {
	if c.cfg.format == PCAP {
		// The classic format keeps microseconds; truncate rather than let
		// the writer round, so frames never appear out of order.
		ci.Timestamp = ci.Timestamp.Truncate(time.Microsecond)
	}
	ci.InterfaceIndex = 0
	if err := c.w.WritePacket(ci, data); err != nil {
		return fmt.Errorf("record: write frame %d to %s: %w", c.stats.Frames+1, c.tmp.Name(), err)
	}
	if c.stats.Frames == 0 {
		c.stats.First = ci.Timestamp
	}
	c.stats.Last = ci.Timestamp
	c.stats.Frames++
	c.stats.Bytes += int64(len(data))
	if ci.Length > ci.CaptureLength {
		c.stats.Truncated++
	}
	return nil
}

// commit flushes, syncs and renames the temporary file into place.
func (c *Capture) commit() error {
	if ng, ok := c.w.(ngWriter); ok {
		if err := ng.Flush(); err != nil {
			return fmt.Errorf("record: write %s: %w", c.tmp.Name(), err)
		}
	}
	if err := c.out.Flush(); err != nil {
		return fmt.Errorf("record: write %s: %w", c.tmp.Name(), err)
	}
	if err := c.tmp.Sync(); err != nil {
		return fmt.Errorf("record: sync %s: %w", c.tmp.Name(), err)
	}
	if err := c.tmp.Close(); err != nil {
		return fmt.Errorf("record: close %s: %w", c.tmp.Name(), err)
	}
	if err := os.Chmod(c.tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("record: chmod %s: %w", c.tmp.Name(), err)
	}
	if err := os.Rename(c.tmp.Name(), c.path); err != nil {
		return fmt.Errorf("record: rename %s to %s: %w", c.tmp.Name(), c.path, err)
	}
	c.tmp = nil
	return nil
}

// discard removes the temporary file; the target stays as it was.
func (c *Capture) discard() {
	if c.tmp == nil {
		return
	}
	c.tmp.Close()
	os.Remove(c.tmp.Name())
	c.tmp = nil
}

func linkTypeName(lt layers.LinkType) string {
	if lt == layers.LinkTypeEthernet {
		return "EN10MB"
	}
	return lt.String()
}
