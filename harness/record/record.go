//go:build linux

// Package record captures live traffic with libpcap into a pcap or pcapng
// file: the other direction of harness/replay, and what hil's recorded
// fixtures are made with. A capture runs on an interface of the caller's
// network namespace or of another one (a name under /run/netns or a path
// like /proc/PID/ns/net), until a frame limit, a time limit or Stop, with
// an optional BPF filter and snap length.
//
// The file is written beside the target under a temporary name and renamed
// into place only when the capture ended well, so a failed or cancelled
// capture leaves no partial file (and an older file of the same name
// untouched). Capturing needs root (CAP_NET_RAW, and CAP_SYS_ADMIN to enter
// another namespace).
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
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Format is the file format written.
type Format string

const (
	// PCAP is the classic libpcap format, microsecond timestamps (what
	// every tool reads).
	PCAP Format = "pcap"
	// PCAPNG is pcapng with nanosecond timestamps and the interface's
	// name in its description block.
	PCAPNG Format = "pcapng"
)

// FormatFor picks the format from a file name: .pcap or .cap is PCAP,
// .pcapng or .ntar is PCAPNG.
func FormatFor(path string) (Format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".pcap", ".cap":
		return PCAP, nil
	case ".pcapng", ".ntar":
		return PCAPNG, nil
	}
	return "", fmt.Errorf("record: cannot tell the format of %s from its extension: expected .pcap or .pcapng (or choose one with WithFormat / --format)", path)
}

// ParseFormat reads "pcap" or "pcapng".
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case PCAP, PCAPNG:
		return Format(s), nil
	}
	return "", fmt.Errorf("record: format %q: expected pcap or pcapng", s)
}

// DefaultSnaplen is tcpdump's: whole frames, even with offloads.
const DefaultSnaplen = 262144

// defaultBuffer is the kernel ring: a burst at line rate must fit while
// the writer catches up.
const defaultBuffer = 32 << 20

// pollTimeout is how often the reader wakes up to look at the limits.
const pollTimeout = 50 * time.Millisecond

// drainLimit bounds how long frames already queued when Stop or the time
// limit came are still written.
const drainLimit = 2 * time.Second

type config struct {
	netns    string
	filter   string
	snaplen  int
	frames   int
	duration time.Duration
	format   Format
	promisc  bool
	buffer   int
}

// Option configures a capture.
type Option func(*config)

// WithNetNS captures on an interface of another network namespace: a name
// under /run/netns (as `ip netns` makes them) or a path such as
// /proc/PID/ns/net.
func WithNetNS(ns string) Option { return func(c *config) { c.netns = ns } }

// WithFilter keeps only the frames a BPF expression (tcpdump syntax)
// accepts; the kernel does the filtering.
func WithFilter(expr string) Option { return func(c *config) { c.filter = expr } }

// WithSnaplen keeps at most n bytes of each frame (default DefaultSnaplen);
// the file records the original length too.
func WithSnaplen(n int) Option { return func(c *config) { c.snaplen = n } }

// WithFrameLimit ends the capture after n frames.
func WithFrameLimit(n int) Option { return func(c *config) { c.frames = n } }

// WithDuration ends the capture d after it became active.
func WithDuration(d time.Duration) Option { return func(c *config) { c.duration = d } }

// WithFormat chooses the file format instead of the file name's extension.
func WithFormat(f Format) Option { return func(c *config) { c.format = f } }

// WithPromisc turns promiscuous mode on or off (on by default, as in
// tcpdump: frames for other MACs are what a replayed fixture carries).
func WithPromisc(on bool) Option { return func(c *config) { c.promisc = on } }

// WithBufferSize sets the kernel capture buffer in bytes (default 32 MiB).
func WithBufferSize(n int) Option { return func(c *config) { c.buffer = n } }

// Stats describe a finished capture.
type Stats struct {
	Path     string
	Format   Format
	Iface    string
	NetNS    string // as given; "" for the caller's namespace
	LinkType string // libpcap's name, "EN10MB" for Ethernet
	Snaplen  int
	Filter   string
	// Frames written and the sum of their captured lengths.
	Frames int
	Bytes  int64
	// Truncated counts frames longer than the snap length.
	Truncated int
	// First and Last are the timestamps of the first and last frame.
	First, Last time.Time
	// Received, Dropped and IfDropped are libpcap's statistics at the end
	// (pcap_stats): frames the filter passed, lost because the buffer was
	// full, and lost by the interface.
	Received, Dropped, IfDropped int
	// Ended says why the capture ended: "frame limit", "time limit" or
	// "stopped".
	Ended string
}

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

// Record captures until a frame or time limit (at least one is required)
// and returns what was written.
func Record(ctx context.Context, iface, path string, opts ...Option) (Stats, error) {
	cfg := config{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.frames == 0 && cfg.duration == 0 {
		return Stats{}, errors.New("record: no frame limit and no time limit: expected at least one (or use Start and Stop)")
	}
	c, err := Start(ctx, iface, path, opts...)
	if err != nil {
		return Stats{}, err
	}
	return c.Wait()
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
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s (needs root): %w", path, err)
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
