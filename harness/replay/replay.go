// Package replay writes the frames of a pcap or pcapng capture to a
// link.Link on a schedule: as captured, scaled by a multiplier, at a fixed
// rate, or as fast as the link takes them, any number of times.
//
// Every frame's send time is computed from the start of the replay (never
// from the previous send), so lateness does not accumulate: a frame that
// went out late is followed by one that is on time again. The wait before
// a frame is a coarse absolute sleep (clock_nanosleep on CLOCK_MONOTONIC
// with a 1 ns timer slack on a locked thread) to about 200 µs before its
// time, then a spin, on a thread raised to SCHED_FIFO when allowed. On a
// link that exposes its write descriptor (veth) the loop runs in C, one cgo
// call per batch of frames, out of reach of the Go scheduler's preemption;
// on other links (qemustream) it runs in Go and calls WriteFrame.
//
// A capture file is scanned first (Open, Scan: every record header checked,
// no frame kept), so a malformed file never produces half a replay. Then
// the frames stream from disk: a reader fills a bounded window of batches
// while earlier batches go out, so memory stays flat whatever the
// capture's size, and every loop reads the file again. Load reads a whole
// capture into memory instead (small files, tests); Send plays either.
//
// BPF filters (WithFilter) are compiled by libpcap's pcap_compile through
// gopacket/pcap, so they need a cgo build; they run in x/net/bpf's VM.
package replay

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// OversizePolicy says what to do with frames longer than the link's MTU
// plus the 14-byte Ethernet header.
type OversizePolicy int

const (
	// SkipOversize leaves them out and counts them (Stats.Skipped).
	SkipOversize OversizePolicy = iota
	// FailOversize refuses to replay a capture that holds any.
	FailOversize
)

// Progress is a snapshot of a running replay.
type Progress struct {
	Sent    int           // frames sent so far
	Total   int           // frames the replay will send
	Elapsed time.Duration // since the first frame
	Planned time.Duration // scheduled duration (0 for top speed)
}

type config struct {
	schedule      Schedule
	loops         int
	filter        string
	oversize      OversizePolicy
	progress      func(Progress)
	progressEvery time.Duration
	spin          time.Duration
	realtime      bool
	window        int
}

// Option configures Run, Load and Send.
type Option func(*config)

// WithSchedule sets the speed (default Original).
func WithSchedule(s Schedule) Option { return func(c *config) { c.schedule = s } }

// WithLoops plays the capture n times (default 1). In timed schedules each
// loop starts one mean inter-frame gap after the previous one ended.
func WithLoops(n int) Option { return func(c *config) { c.loops = n } }

// WithFilter keeps only the frames a BPF filter expression (tcpdump
// syntax) matches. Compiling needs libpcap (a cgo build).
func WithFilter(expr string) Option { return func(c *config) { c.filter = expr } }

// WithOversize sets the policy for frames over the link MTU (default skip).
func WithOversize(p OversizePolicy) Option { return func(c *config) { c.oversize = p } }

// WithProgress calls f about every interval from another goroutine (so it
// never delays a frame), and once at the end.
func WithProgress(every time.Duration, f func(Progress)) Option {
	return func(c *config) { c.progress, c.progressEvery = f, every }
}

// WithSpin sets how long before a frame's time the sender stops sleeping
// and spins (default 200 µs: a wake-up from clock_nanosleep on a VM is
// late by up to ~100 µs now and then, which showed as a worse p99 than
// tcpreplay at 80 µs). 0 only sleeps.
func WithSpin(d time.Duration) Option { return func(c *config) { c.spin = d } }

// WithRealtime sets whether timed schedules raise the sending thread to
// SCHED_FIFO for the replay (default true; needs CAP_SYS_NICE, silently
// skipped without it). Top speed never does.
func WithRealtime(on bool) Option { return func(c *config) { c.realtime = on } }

// WithWindow sets how many frames are read ahead of the sender at most
// (default 32768, in 4 batches; a batch also ends at about 1 MiB of frame
// bytes). Memory does not grow with the capture either way; a smaller
// window only means more, smaller batches.
func WithWindow(frames int) Option { return func(c *config) { c.window = frames } }

func newConfig(opts []Option) config {
	c := config{loops: 1, spin: 200 * time.Microsecond, progressEvery: time.Second, realtime: true, window: defaultWindow}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Capture is a capture file read into memory, filtered (Load). For files of
// any size, Open scans one and Send streams it instead.
type Capture struct {
	Path     string
	Format   string
	Frames   []Frame
	Filtered int // records the filter dropped
}

// Frame is one frame of a capture and its offset from the first frame's
// timestamp.
type Frame struct {
	Data   []byte
	Offset time.Duration
	Record int // 1-based record index in the file
}

// Load reads and checks a whole capture file into memory: it needs as
// much RAM as the file (Open and Send stream instead).
func Load(path string, opts ...Option) (*Capture, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer f.Close()
	c, err := read(f, newConfig(opts))
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	c.Path = path
	return c, nil
}

// ReadCapture is Load for an io.Reader.
func ReadCapture(r io.Reader, opts ...Option) (*Capture, error) {
	return read(r, newConfig(opts))
}

func read(r io.Reader, cfg config) (*Capture, error) {
	var match func([]byte) bool
	if cfg.filter != "" {
		m, err := compileFilter(cfg.filter)
		if err != nil {
			return nil, err
		}
		match = m
	}
	rd, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	c := &Capture{Format: rd.Format()}
	var offs offsets
	for {
		p, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if match != nil && !match(p.Data) {
			offs.skip(&p)
			c.Filtered++
			continue
		}
		c.Frames = append(c.Frames, Frame{Data: p.Data, Offset: offs.next(&p), Record: p.Index})
	}
	return c, nil
}

// Stats says what a replay did.
type Stats struct {
	Schedule string
	Frames   int   // frames sent
	Bytes    int64 // bytes sent
	Skipped  int   // frames over the link MTU, not sent
	Filtered int   // frames the filter left out
	Loops    int
	Duration time.Duration // first to last send
	PPS      float64       // achieved frames per second
	Mbps     float64       // achieved megabits per second (frame bytes)
	// Gap error: |actual gap - scheduled gap| between consecutive frames
	// (timed schedules only).
	GapErrP50, GapErrP99, GapErrMax time.Duration
	// Drift is how late the last frame went out against its schedule;
	// MaxLate the worst lateness of any frame (timed schedules only).
	Drift, MaxLate time.Duration
}

func (s Stats) String() string {
	out := fmt.Sprintf("sent %d frames (%d bytes) in %v: %.0f pps, %.1f Mbit/s", s.Frames, s.Bytes, s.Duration.Round(time.Microsecond), s.PPS, s.Mbps)
	if s.Skipped > 0 {
		out += fmt.Sprintf("; skipped %d over the MTU", s.Skipped)
	}
	if s.Filtered > 0 {
		out += fmt.Sprintf("; filtered out %d", s.Filtered)
	}
	if s.Schedule != "top" {
		out += fmt.Sprintf("; gap error p50 %v p99 %v max %v; drift %v, max late %v", s.GapErrP50, s.GapErrP99, s.GapErrMax, s.Drift, s.MaxLate)
	}
	return out
}

// monotonic is CLOCK_MONOTONIC in nanoseconds (what clock_nanosleep
// sleeps on), read through Go's vDSO clock: x/sys/unix.ClockGettime is a
// real system call, too slow for the spin.
func monotonic() int64 { return monoBase + int64(time.Since(goBase)) }

var monoBase, goBase = func() (int64, time.Time) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano(), time.Now()
}()

// maxSleep bounds one uninterruptible sleep so a cancel is seen quickly.
const maxSleep = int64(20 * time.Millisecond)

func waitUntil(ctx context.Context, target, spin int64) error {
	for {
		now := monotonic()
		rem := target - now
		if rem <= spin {
			break
		}
		wake := target - spin
		if rem-spin > maxSleep {
			wake = now + maxSleep
		}
		if err := sleepUntil(wake); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	for monotonic() < target {
	}
	return nil
}

func abs(d int64) int64 {
	if d < 0 {
		return -d
	}
	return d
}

// sampler keeps gap errors for quantiles: all of them up to a million,
// then a uniform reservoir sample (deterministic), and the exact max.
type sampler struct {
	v    []int64
	seen int64
	max  time.Duration
	rng  uint64
}

const reservoir = 1 << 20

// newSampler allocates up front so the send loop does not allocate (and
// cannot be paused by a garbage collection it caused).
func newSampler(n int) *sampler {
	return &sampler{rng: 0x9e3779b97f4a7c15, v: make([]int64, 0, min(n, reservoir))}
}

func (s *sampler) add(x int64) {
	s.seen++
	if time.Duration(x) > s.max {
		s.max = time.Duration(x)
	}
	if len(s.v) < reservoir {
		s.v = append(s.v, x)
		return
	}
	s.rng ^= s.rng << 13
	s.rng ^= s.rng >> 7
	s.rng ^= s.rng << 17
	if j := int64(s.rng % uint64(s.seen)); j < reservoir {
		s.v[j] = x
	}
}

func (s *sampler) quantile(q float64) time.Duration {
	if len(s.v) == 0 {
		return 0
	}
	sort.Slice(s.v, func(i, j int) bool { return s.v[i] < s.v[j] })
	idx := int(math.Ceil(q*float64(len(s.v)))) - 1
	if idx < 0 {
		idx = 0
	}
	return time.Duration(s.v[idx])
}
