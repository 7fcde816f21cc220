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
// link that exposes its write descriptor (veth) the loop runs in C through
// one cgo call, out of reach of the Go scheduler's preemption; on other
// links (qemustream) it runs in Go and calls WriteFrame.
//
// The whole capture is read into memory and checked before the first frame
// goes out, so a malformed file never produces half a replay (and a capture
// needs as much RAM as its size).
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
	"runtime"
	"sort"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hilproject/hil/harness/link"
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

func newConfig(opts []Option) config {
	c := config{loops: 1, spin: 200 * time.Microsecond, progressEvery: time.Second, realtime: true}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Capture is a capture file read into memory, filtered.
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

// Load reads and checks a whole capture file.
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
	var first time.Time
	for {
		p, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if p.Index == 1 {
			first = p.Time
		}
		if match != nil && !match(p.Data) {
			c.Filtered++
			continue
		}
		off := p.Time.Sub(first)
		if n := len(c.Frames); n > 0 && off < c.Frames[n-1].Offset {
			// Captures are not always in order (pcapng with several
			// interfaces, merged files): never schedule backwards.
			off = c.Frames[n-1].Offset
		}
		c.Frames = append(c.Frames, Frame{Data: p.Data, Offset: off, Record: p.Index})
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

// Run loads the capture at path and sends it to l.
func Run(ctx context.Context, l link.Link, path string, opts ...Option) (Stats, error) {
	c, err := Load(path, opts...)
	if err != nil {
		return Stats{}, err
	}
	return Send(ctx, l, c, opts...)
}

// Send replays a loaded capture to l. On error or cancel it returns the
// stats so far with the error.
func Send(ctx context.Context, l link.Link, c *Capture, opts ...Option) (Stats, error) {
	cfg := newConfig(opts)
	if err := CheckLoops(cfg.loops); err != nil {
		return Stats{}, fmt.Errorf("replay: %w", err)
	}
	st := Stats{Schedule: cfg.schedule.String(), Filtered: c.Filtered, Loops: cfg.loops}
	limit := l.MTU() + 14
	frames := make([]Frame, 0, len(c.Frames))
	for _, f := range c.Frames {
		if len(f.Data) > limit {
			if cfg.oversize == FailOversize {
				return st, fmt.Errorf("replay %s: record %d is %d bytes, over the link's MTU %d (%d with the Ethernet header); use the skip policy to leave such frames out", c.Path, f.Record, len(f.Data), l.MTU(), limit)
			}
			st.Skipped++
			continue
		}
		frames = append(frames, f)
	}
	st.Skipped *= cfg.loops
	if len(frames) == 0 {
		return st, nil
	}
	plan, err := planner(cfg.schedule, frames)
	if err != nil {
		return st, err
	}
	total := len(frames) * cfg.loops

	var sent atomic.Int64 // frames out, Go path; C path: sentBefore + cs.sent()
	var sentBefore atomic.Int64
	sentNow := func() int { return int(sent.Load()) }
	fdw, useC := l.(fdWriter)
	useC = useC && haveCSend
	var cs *cSender
	wfd := -1
	if useC {
		// Our own descriptor: if the link is closed mid-replay (its context
		// ended), the C loop must not write to a number that has since been
		// reused for another file.
		var err error
		if wfd, err = unix.Dup(fdw.WriteFD()); err != nil {
			return st, fmt.Errorf("replay: dup the link's socket: %w", err)
		}
		defer unix.Close(wfd)
		cs = newCSender(ctx, frames)
		defer cs.close()
		sentNow = func() int { return int(sentBefore.Load() + cs.sent()) }
	}
	done := make(chan struct{})
	progressDone := make(chan struct{})
	if cfg.progress != nil {
		planned := time.Duration(0)
		if cfg.schedule.Kind != TopSpeed {
			planned = plan(total - 1)
		}
		go func() {
			defer close(progressDone)
			t := time.NewTicker(cfg.progressEvery)
			defer t.Stop()
			startWall := time.Now()
			for {
				select {
				case <-done:
					cfg.progress(Progress{Sent: st.Frames, Total: total, Elapsed: time.Since(startWall), Planned: planned})
					return
				case <-t.C:
					cfg.progress(Progress{Sent: sentNow(), Total: total, Elapsed: time.Since(startWall), Planned: planned})
				}
			}
		}()
	} else {
		close(progressDone)
	}

	timed := cfg.schedule.Kind != TopSpeed
	gaps := newSampler(total)
	var sendErr error

	// A locked thread with a 1 ns timer slack makes clock_nanosleep wake
	// within microseconds instead of the default 50 µs slack; real-time
	// priority (when allowed) keeps a busy host from delaying the wake-up.
	runtime.LockOSThread()
	oldSlack, _ := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	restorePrio := func() {}
	if timed && cfg.realtime {
		restorePrio = realtime()
	}
	t0 := monotonic() + int64(50*time.Microsecond) // a little lead for the first frame
	var prevSent, prevPlan, first, last int64
	i := 0
	// record books frame i (planned at offset p) as released at time at.
	record := func(at, p int64, size int) {
		if timed {
			late := at - (t0 + p)
			if time.Duration(late) > st.MaxLate {
				st.MaxLate = time.Duration(late)
			}
			if i > 0 {
				gaps.add(abs((at - prevSent) - (p - prevPlan)))
			}
			prevSent, prevPlan = at, p
			st.Drift = time.Duration(late)
		}
		if i == 0 {
			first = at
		}
		last = at
		st.Frames++
		st.Bytes += int64(len(frames[i%len(frames)].Data))
		i++
	}
	if useC {
		targets := make([]int64, len(frames))
		plans := make([]int64, len(frames))
		for k := 0; k < cfg.loops && sendErr == nil; k++ {
			for j := range frames {
				plans[j] = int64(plan(k*len(frames) + j))
				targets[j] = t0 + plans[j]
				if !timed {
					targets[j] = 0
				}
			}
			n, err := cs.send(wfd, targets, int64(cfg.spin))
			for j := 0; j < n; j++ {
				record(cs.sentAt[j], plans[j], len(frames[j].Data))
			}
			sentBefore.Add(int64(n))
			if err != nil {
				if ctx.Err() != nil {
					sendErr = ctx.Err()
				} else {
					f := frames[n]
					sendErr = fmt.Errorf("replay %s: frame %d (record %d, loop %d): write to the link: %w", c.Path, i+1, f.Record, k+1, err)
				}
			}
		}
	} else {
	loop:
		for k := 0; k < cfg.loops; k++ {
			for _, f := range frames {
				if i&63 == 0 {
					select {
					case <-ctx.Done():
						sendErr = ctx.Err()
						break loop
					default:
					}
				}
				p := int64(plan(i))
				if timed {
					if err := waitUntil(ctx, t0+p, int64(cfg.spin)); err != nil {
						sendErr = err
						break loop
					}
				}
				at := monotonic()
				if err := l.WriteFrame(f.Data); err != nil {
					sendErr = fmt.Errorf("replay %s: frame %d (record %d, loop %d): %w", c.Path, i+1, f.Record, k+1, err)
					break loop
				}
				record(at, p, len(f.Data))
				sent.Store(int64(st.Frames))
			}
		}
	}
	restorePrio()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(oldSlack), 0, 0, 0)
	runtime.UnlockOSThread()
	close(done)
	<-progressDone

	st.Duration = time.Duration(last - first)
	if st.Frames > 1 && st.Duration > 0 {
		st.PPS = float64(st.Frames) / st.Duration.Seconds()
		st.Mbps = float64(st.Bytes) * 8 / st.Duration.Seconds() / 1e6
	}
	if timed {
		st.GapErrP50, st.GapErrP99, st.GapErrMax = gaps.quantile(0.5), gaps.quantile(0.99), gaps.max
	}
	return st, sendErr
}

// planner returns the offset from the replay's start of frame i (counting
// across loops).
func planner(s Schedule, frames []Frame) (func(i int) time.Duration, error) {
	n := len(frames)
	span := frames[n-1].Offset
	var loopLen time.Duration
	if n > 1 {
		loopLen = span + span/time.Duration(n-1)
	} else {
		loopLen = time.Millisecond
	}
	switch s.Kind {
	case Original, Multiplied:
		factor := 1.0
		if s.Kind == Multiplied {
			if !(s.Factor > 0) {
				return nil, fmt.Errorf("replay: multiplier %v: expected > 0", s.Factor)
			}
			factor = s.Factor
		}
		return func(i int) time.Duration {
			k, j := i/n, i%n
			return time.Duration(float64(time.Duration(k)*loopLen+frames[j].Offset) / factor)
		}, nil
	case FixedRate:
		if !(s.PPS > 0) {
			return nil, fmt.Errorf("replay: rate %v pps: expected > 0", s.PPS)
		}
		return func(i int) time.Duration { return time.Duration(float64(i) * 1e9 / s.PPS) }, nil
	case TopSpeed:
		return func(int) time.Duration { return 0 }, nil
	}
	return nil, fmt.Errorf("replay: unknown schedule kind %d", s.Kind)
}

// realtime puts the calling (locked) thread in SCHED_FIFO and returns how
// to put it back.
func realtime() func() {
	type schedParam struct{ priority int32 }
	var old schedParam
	policy, _, e := unix.RawSyscall(unix.SYS_SCHED_GETSCHEDULER, 0, 0, 0)
	if e != 0 {
		return func() {}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SCHED_GETPARAM, 0, uintptr(unsafe.Pointer(&old)), 0); e != 0 {
		return func() {}
	}
	p := schedParam{priority: 10}
	if _, _, e := unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, 0, 1 /* SCHED_FIFO */, uintptr(unsafe.Pointer(&p))); e != 0 {
		return func() {}
	}
	return func() {
		unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, 0, policy, uintptr(unsafe.Pointer(&old)))
	}
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
		ts := unix.NsecToTimespec(wake)
		// A raw syscall keeps this thread's P: returning from a blocking
		// syscall would queue the sender behind whatever else the
		// process runs, which costs milliseconds on a busy 2-core host.
		_, _, e := unix.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if e != 0 && e != unix.EINTR {
			return fmt.Errorf("replay: clock_nanosleep: %w", e)
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
