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
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
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
