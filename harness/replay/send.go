package replay

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hilproject/hil/harness/link"
)

// Source is a capture Send plays: a *File (Open: scanned, then streamed
// from disk) or a *Capture (Load: every frame in memory).
type Source interface {
	// fit counts the frames of one pass that are no longer than limit
	// (0: no limit): Frames, Span and Bytes of those, how many are longer
	// and the first of them. stopAtOver may end the count at the first.
	fit(limit int, stopAtOver bool) (s Summary, over int, first *oversize, err error)
	// stream reads the frames of one pass from the first, filter applied.
	stream() (frameStream, error)
	name() string
}

// frameStream yields a source's frames in order.
type frameStream interface {
	// next appends the next frame's bytes to buf; io.EOF after the last.
	next(buf []byte) (streamFrame, []byte, error)
	close()
}

type streamFrame struct {
	off    time.Duration // from the first record's timestamp
	record int           // 1-based record index in the file
	size   int
}

// Run scans the capture at path and streams it to l (Open, then Send).
func Run(ctx context.Context, l link.Link, path string, opts ...Option) (Stats, error) {
	f, err := Open(path, opts...)
	if err != nil {
		return Stats{}, err
	}
	return Send(ctx, l, f, opts...)
}

func (f *File) name() string { return f.Path }

func (f *File) fit(limit int, stopAtOver bool) (Summary, int, *oversize, error) {
	if limit <= 0 || f.Largest <= limit {
		return f.Summary, 0, nil, nil
	}
	// Some frames are over the link's limit: count what remains. Only
	// such captures pay for this second scan.
	fh, err := f.reopen()
	if err != nil {
		return Summary{}, 0, nil, err
	}
	defer fh.Close()
	s, over, first, err := summarizeOver(fh, f.match, limit, stopAtOver)
	if err != nil {
		return Summary{}, 0, nil, fmt.Errorf("replay %s: %w", f.Path, err)
	}
	s.Path, s.Records, s.Filtered = f.Path, f.Records, f.Filtered
	return s, over, first, nil
}

func (f *File) stream() (frameStream, error) {
	fh, err := f.reopen()
	if err != nil {
		return nil, err
	}
	rd, err := NewReader(fh)
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("replay %s: %w", f.Path, err)
	}
	return &fileStream{fh: fh, rd: rd, match: f.match}, nil
}

type fileStream struct {
	fh    *os.File
	rd    *Reader
	match func([]byte) bool
	offs  offsets
	p     Packet
}

func (s *fileStream) next(buf []byte) (streamFrame, []byte, error) {
	for {
		n0 := len(buf)
		b, err := s.rd.appendNext(&s.p, buf, true)
		if err != nil {
			return streamFrame{}, b[:n0], err
		}
		if s.match != nil && !s.match(s.p.Data) {
			s.offs.skip(&s.p)
			buf = b[:n0]
			continue
		}
		return streamFrame{off: s.offs.next(&s.p), record: s.p.Index, size: s.p.size}, b, nil
	}
}

func (s *fileStream) close() { s.fh.Close() }

// Summary describes the loaded frames the way a scan describes a file.
func (c *Capture) Summary() Summary {
	s, _, _, _ := c.fit(0, false)
	return s
}

func (c *Capture) name() string { return c.Path }

func (c *Capture) fit(limit int, stopAtOver bool) (Summary, int, *oversize, error) {
	s := Summary{Path: c.Path, Format: c.Format, Records: len(c.Frames) + c.Filtered, Filtered: c.Filtered}
	over := 0
	var first *oversize
	for _, f := range c.Frames {
		if limit > 0 && len(f.Data) > limit {
			over++
			if first == nil {
				first = &oversize{f.Record, len(f.Data)}
			}
			if stopAtOver {
				break
			}
			continue
		}
		s.Frames++
		s.Bytes += int64(len(f.Data))
		s.Span = f.Offset
		s.Largest = max(s.Largest, len(f.Data))
	}
	return s, over, first, nil
}

func (c *Capture) stream() (frameStream, error) { return &memStream{c: c}, nil }

type memStream struct {
	c *Capture
	i int
}

func (s *memStream) next(buf []byte) (streamFrame, []byte, error) {
	if s.i == len(s.c.Frames) {
		return streamFrame{}, buf, io.EOF
	}
	f := s.c.Frames[s.i]
	s.i++
	return streamFrame{off: f.Offset, record: f.Record, size: len(f.Data)}, append(buf, f.Data...), nil
}

func (s *memStream) close() {}

// The send window: batches of frames read ahead of the sender. A batch
// holds at most batchFrames frames (WithWindow) and about batchBytes of
// frame bytes (one frame more when a single frame is larger), so the
// memory a replay needs does not depend on the capture's size.
const (
	windowBatches = 4
	batchBytes    = 1 << 20
	defaultWindow = 4 * 8192
	readerNice    = 10
)

// batch is frames of one loop, contiguous in buf, with their schedule.
type batch struct {
	buf     []byte
	offs    []int64 // frame i is buf[offs[i]:offs[i+1]]
	plans   []int64 // frame i's planned time from the replay's start, ns
	records []int   // frame i's record index in the file
	loop    int     // 1-based
	targets []int64 // the C sender's absolute send times
	sentAt  []int64 // when the C sender released each frame
	err     error   // the reader failed after the frames before
}

func newBatch(frames int) *batch {
	return &batch{
		offs:    make([]int64, 1, frames+1),
		plans:   make([]int64, 0, frames),
		records: make([]int, 0, frames),
		targets: make([]int64, frames),
		sentAt:  make([]int64, frames),
	}
}

func (b *batch) len() int { return len(b.records) }

func (b *batch) frame(i int) []byte { return b.buf[b.offs[i]:b.offs[i+1]] }

func (b *batch) reset() {
	b.buf, b.offs, b.plans, b.records, b.err = b.buf[:0], b.offs[:1], b.plans[:0], b.records[:0], nil
}

// Send replays src to l. Frames over the link's MTU (plus the Ethernet
// header) are skipped and counted, or, with FailOversize, refused before
// the first frame goes out. On error or cancel it returns the stats so
// far with the error.
func Send(ctx context.Context, l link.Link, src Source, opts ...Option) (Stats, error) {
	cfg := newConfig(opts)
	sp, st, err := planSend(l, src, cfg)
	if err != nil || sp.total == 0 {
		return st, err
	}
	s := &sender{ctx: ctx, link: l, src: src, cfg: cfg, plan: sp, st: st, wfd: -1}
	if sp.timed {
		s.gaps = newSampler(sp.total)
	}
	if fdw, ok := l.(link.FDWriter); ok && haveCSend {
		// Our own descriptor: if the link is closed mid-replay (its context
		// ended), the C loop must not write to a number that has since been
		// reused for another file.
		wfd, err := unix.Dup(fdw.WriteFD())
		if err != nil {
			return st, fmt.Errorf("replay: dup the link's socket: %w", err)
		}
		defer unix.Close(wfd)
		s.wfd, s.cs = wfd, newCSender(ctx)
		defer s.cs.close()
	}

	free, full, stopReader := startReader(src, cfg, sp)
	stopProgress := s.startProgress()
	sendErr := s.sendAll(free, full)
	stopReader()
	stopProgress()
	if sendErr == nil && ctx.Err() == nil && s.st.Frames != sp.total {
		sendErr = fmt.Errorf("replay %s: sent %d frames, expected %d", src.name(), s.st.Frames, sp.total)
	}
	return s.finish(), sendErr
}

// sendPlan is what Send settles before the first frame goes out.
type sendPlan struct {
	frames int // frames of one pass that fit the link
	total  int // frames over every loop; 0: nothing to send
	limit  int // the largest frame the link takes, Ethernet header included
	span   time.Duration
	timed  bool // false at top speed: no waiting, no lateness
	at     planFunc
}

// planSend checks the options and the capture against the link and plans
// the schedule.
func planSend(l link.Link, src Source, cfg config) (sendPlan, Stats, error) {
	if err := CheckLoops(cfg.loops); err != nil {
		return sendPlan{}, Stats{}, fmt.Errorf("replay: %w", err)
	}
	if cfg.window < 1 {
		return sendPlan{}, Stats{}, fmt.Errorf("replay: a window of %d frames: expected at least 1", cfg.window)
	}
	limit := l.MTU() + 14
	sum, over, firstOver, err := src.fit(limit, cfg.oversize == FailOversize)
	if err != nil {
		return sendPlan{}, Stats{}, err
	}
	st := Stats{Schedule: cfg.schedule.String(), Filtered: sum.Filtered, Loops: cfg.loops}
	if firstOver != nil && cfg.oversize == FailOversize {
		return sendPlan{}, st, fmt.Errorf("replay %s: record %d is %d bytes, over the link's MTU %d (%d with the Ethernet header); use the skip policy to leave such frames out", src.name(), firstOver.record, firstOver.size, l.MTU(), limit)
	}
	st.Skipped = over * cfg.loops
	if sum.Frames == 0 {
		return sendPlan{}, st, nil
	}
	at, err := planner(cfg.schedule, sum.Frames, sum.Span)
	if err != nil {
		return sendPlan{}, st, err
	}
	return sendPlan{
		frames: sum.Frames,
		total:  sum.Frames * cfg.loops,
		limit:  limit,
		span:   sum.Span,
		timed:  cfg.schedule.Kind != TopSpeed,
		at:     at,
	}, st, nil
}

// startReader reads the capture ahead of the sender: it fills batches from
// free and hands them over on full; the sender gives each back once its
// frames are out. stop ends the reader and waits for it.
func startReader(src Source, cfg config, sp sendPlan) (free chan<- *batch, full <-chan *batch, stop func()) {
	perBatch := max(1, cfg.window/windowBatches)
	freeBatches := make(chan *batch, windowBatches)
	fullBatches := make(chan *batch, windowBatches)
	for range windowBatches {
		freeBatches <- newBatch(perBatch)
	}
	quit := make(chan struct{})
	var done sync.WaitGroup
	done.Add(1)
	go func() {
		defer done.Done()
		defer close(fullBatches)
		// The reader needs a fraction of the sender's CPU (it reads
		// frames ten times faster than they go out) but, woken when a
		// batch comes back, it would preempt the sender on a busy host.
		// A lower priority for its thread keeps the sender first.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer lowerPriority()()
		readAhead(src, cfg.loops, sp.frames, sp.limit, perBatch, sp.at, freeBatches, fullBatches, quit)
	}()
	return freeBatches, fullBatches, func() {
		close(quit)
		done.Wait()
	}
}

// sender sends the batches and books every frame's release time. With a C
// sender (cs, on an FDWriter link) a whole batch goes out in one call;
// otherwise frame by frame through the link.
type sender struct {
	ctx  context.Context
	link link.Link
	src  Source
	cfg  config
	plan sendPlan

	cs  *cSender
	wfd int

	st   Stats
	gaps *sampler
	// sent is the frames out before the current C batch (all of them on
	// the Go path), for the progress callback.
	sent atomic.Int64

	t0                                int64 // when the schedule starts
	i                                 int   // frames booked
	prevSent, prevPlan, firstAt, last int64
}

// startProgress calls the progress callback on every tick and once at the
// end; the returned stop makes that last call and waits for it.
func (s *sender) startProgress() (stop func()) {
	if s.cfg.progress == nil {
		return func() {}
	}
	planned := time.Duration(0)
	if s.plan.timed {
		planned = time.Duration(s.plan.at(s.cfg.loops-1, s.plan.frames-1, s.plan.span))
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(s.cfg.progressEvery)
		defer t.Stop()
		startWall := time.Now()
		for {
			select {
			case <-done:
				// sendAll has returned: st is final and ours to read.
				s.cfg.progress(Progress{Sent: s.st.Frames, Total: s.plan.total, Elapsed: time.Since(startWall), Planned: planned})
				return
			case <-t.C:
				s.cfg.progress(Progress{Sent: s.sentNow(), Total: s.plan.total, Elapsed: time.Since(startWall), Planned: planned})
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// sentNow is the frames out so far; the C loop counts its own within a
// batch.
func (s *sender) sentNow() int {
	if s.cs != nil {
		return int(s.sent.Load() + s.cs.sent())
	}
	return int(s.sent.Load())
}

// sendAll sends every batch from full, on a thread set up for precise
// wake-ups, gives each batch back to free, and returns the first error.
func (s *sender) sendAll(free chan<- *batch, full <-chan *batch) error {
	// A locked thread with a 1 ns timer slack makes clock_nanosleep wake
	// within microseconds instead of the default 50 µs slack; real-time
	// priority (when allowed) keeps a busy host from delaying the wake-up.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer fineTimerSlack()()
	if s.plan.timed && s.cfg.realtime {
		defer realtime()()
	}
	// The schedule starts when the first batch is ready, not before: the
	// reader may take a while to open the file on a busy host, and that
	// wait must not make every frame late.
	first, ok := <-full
	s.t0 = monotonic() + int64(50*time.Microsecond) // a little lead for the first frame
	for b := first; ok; b, ok = <-full {
		if b.err != nil {
			return b.err
		}
		var err error
		if s.cs != nil {
			err = s.sendBatchC(b)
		} else {
			err = s.sendBatch(b)
		}
		if err != nil {
			return err
		}
		b.reset()
		free <- b // never blocks: at most windowBatches exist
	}
	return nil
}

// sendBatchC hands a whole batch to the C loop, which waits for each
// frame's time and writes it to the link's socket.
func (s *sender) sendBatchC(b *batch) error {
	for j := range b.len() {
		b.targets[j] = 0
		if s.plan.timed {
			b.targets[j] = s.t0 + b.plans[j]
		}
	}
	k, err := s.cs.send(s.wfd, b.buf, b.offs, b.targets[:b.len()], b.sentAt, int64(s.cfg.spin))
	for j := 0; j < k; j++ {
		s.record(b.sentAt[j], b.plans[j], int(b.offs[j+1]-b.offs[j]))
	}
	s.sent.Add(int64(k))
	if err != nil {
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		return fmt.Errorf("replay %s: frame %d (record %d, loop %d): write to the link: %w", s.src.name(), s.i+1, b.records[k], b.loop, err)
	}
	return nil
}

// sendBatch writes a batch frame by frame through the link.
func (s *sender) sendBatch(b *batch) error {
	for j := range b.len() {
		if s.i&63 == 0 {
			if err := s.ctx.Err(); err != nil {
				return err
			}
		}
		p := b.plans[j]
		if s.plan.timed {
			if err := waitUntil(s.ctx, s.t0+p, int64(s.cfg.spin)); err != nil {
				return err
			}
		}
		at := monotonic()
		f := b.frame(j)
		if err := s.link.WriteFrame(f); err != nil {
			return fmt.Errorf("replay %s: frame %d (record %d, loop %d): %w", s.src.name(), s.i+1, b.records[j], b.loop, err)
		}
		s.record(at, p, len(f))
		s.sent.Store(int64(s.st.Frames))
	}
	return nil
}

// record books the next frame (planned at offset p, size bytes) as
// released at time at.
func (s *sender) record(at, p int64, size int) {
	if s.plan.timed {
		late := at - (s.t0 + p)
		if time.Duration(late) > s.st.MaxLate {
			s.st.MaxLate = time.Duration(late)
		}
		if s.i > 0 {
			s.gaps.add(abs((at - s.prevSent) - (p - s.prevPlan)))
		}
		s.prevSent, s.prevPlan = at, p
		s.st.Drift = time.Duration(late)
	}
	if s.i == 0 {
		s.firstAt = at
	}
	s.last = at
	s.st.Frames++
	s.st.Bytes += int64(size)
	s.i++
}

// finish derives the rates and the gap quantiles from what was booked.
func (s *sender) finish() Stats {
	st := s.st
	st.Duration = time.Duration(s.last - s.firstAt)
	if st.Frames > 1 && st.Duration > 0 {
		st.PPS = float64(st.Frames) / st.Duration.Seconds()
		st.Mbps = float64(st.Bytes) * 8 / st.Duration.Seconds() / 1e6
	}
	if s.plan.timed {
		st.GapErrP50, st.GapErrP99, st.GapErrMax = s.gaps.quantile(0.5), s.gaps.quantile(0.99), s.gaps.max
	}
	return st
}

// readAhead reads loops passes of src into batches of at most perBatch
// frames, skipping the frames over limit, and schedules each frame
// (plan). A pass that does not give the n frames the scan counted is an
// error: the file changed under the replay.
func readAhead(src Source, loops, n, limit, perBatch int, plan planFunc, free <-chan *batch, full chan<- *batch, quit <-chan struct{}) {
	get := func() *batch {
		select {
		case b := <-free:
			return b
		case <-quit:
			return nil
		}
	}
	put := func(b *batch) bool {
		select {
		case full <- b:
			return true
		case <-quit:
			return false
		}
	}
	b := get()
	if b == nil {
		return
	}
	for k := range loops {
		fs, err := src.stream()
		if err != nil {
			b.err = err
			put(b)
			return
		}
		b.loop = k + 1
		j := 0
		for {
			n0 := len(b.buf)
			fr, buf, err := fs.next(b.buf)
			b.buf = buf
			if err == io.EOF {
				break
			}
			if err != nil {
				fs.close()
				b.err = fmt.Errorf("replay %s (loop %d): %w", src.name(), k+1, err)
				put(b)
				return
			}
			if fr.size > limit {
				b.buf = b.buf[:n0] // counted as skipped by fit
				continue
			}
			if j == n {
				j++
				break // more frames than scanned: reported below
			}
			b.offs = append(b.offs, int64(len(b.buf)))
			b.plans = append(b.plans, plan(k, j, fr.off))
			b.records = append(b.records, fr.record)
			j++
			if b.len() == perBatch || len(b.buf) >= batchBytes {
				if !put(b) {
					fs.close()
					return
				}
				if b = get(); b == nil {
					fs.close()
					return
				}
				b.loop = k + 1
			}
		}
		fs.close()
		if j != n {
			b.reset()
			b.err = fmt.Errorf("replay %s (loop %d): the capture has %d frames to send now, the scan counted %d: it changed during the replay", src.name(), k+1, j, n)
			put(b)
			return
		}
		// A batch never spans two loops (its frames share a loop number
		// for error messages); an empty one carries over to the next loop.
		if b.len() > 0 {
			if !put(b) {
				return
			}
			if k+1 < loops {
				if b = get(); b == nil {
					return
				}
			}
		}
	}
}

// planFunc is a frame's planned time from the replay's start in ns: frame
// j (counting kept frames within a pass) of loop k, at offset off from the
// capture's first record.
type planFunc func(k, j int, off time.Duration) int64

// planner schedules n frames a pass whose last one is at span.
func planner(s Schedule, n int, span time.Duration) (planFunc, error) {
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
		return func(k, _ int, off time.Duration) int64 {
			return int64(float64(time.Duration(k)*loopLen+off) / factor)
		}, nil
	case FixedRate:
		if !(s.PPS > 0) {
			return nil, fmt.Errorf("replay: rate %v pps: expected > 0", s.PPS)
		}
		return func(k, j int, _ time.Duration) int64 { return int64(float64(k*n+j) * 1e9 / s.PPS) }, nil
	case TopSpeed:
		return func(int, int, time.Duration) int64 { return 0 }, nil
	}
	return nil, fmt.Errorf("replay: unknown schedule kind %d", s.Kind)
}
