package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/target"
)

// maxKept bounds the lines and frames a session holds, so that a chatty
// app cannot exhaust memory; counts past it are still exact.
const maxKept = 1_000_000

const (
	// livenessPoll is how often the session asks the device whether it is
	// alive while steps wait, so that a death ends the step early. The
	// verdict does not depend on it: the runner asks again at the end of
	// every step window.
	livenessPoll = 250 * time.Millisecond
	// aliveTimeout caps one liveness check; the targets bound their own
	// checks well below it.
	aliveTimeout = 30 * time.Second
)

// session gathers everything a booted device produces (output lines,
// frames it sent, how it ended) and wakes waiters when any of it changes.
type session struct {
	dev      target.App
	maxLines int
	cancel   context.CancelFunc
	// stopPolling ends the liveness poller (before hil's own teardown,
	// which no poll must mistake for a death).
	stopPolling context.CancelFunc
	wg          sync.WaitGroup

	mu          sync.Mutex
	ch          chan struct{}
	lines       []target.Line
	linesLost   int
	frames      []link.Frame
	framesLost  int
	outputDone  bool
	exited      bool
	exit        target.Exit
	exitErr     error
	ownShutdown bool
	// dead is why the device is no longer alive, from the first liveness
	// check that failed.
	dead error
}

func newSession(dev target.App, maxLines int) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{dev: dev, maxLines: maxLines, cancel: cancel, ch: make(chan struct{})}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		for l := range dev.Output() {
			s.mu.Lock()
			if len(s.lines) < maxKept {
				s.lines = append(s.lines, l)
			} else {
				s.linesLost++
			}
			s.notifyLocked()
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.outputDone = true
		s.notifyLocked()
		s.mu.Unlock()
	}()
	go func() {
		defer s.wg.Done()
		ex, err := dev.Wait(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		if ctx.Err() != nil && s.ownShutdown {
			return // we stopped waiting; that is not how the app ended
		}
		s.exited, s.exit, s.exitErr = true, ex, err
		s.notifyLocked()
	}()
	pctx, stopPolling := context.WithCancel(ctx)
	s.stopPolling = stopPolling
	if _, ok := dev.(target.Liveness); ok {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.pollLiveness(pctx)
		}()
	}
	if l := dev.Link(); l != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for f := range l.Frames() {
				s.mu.Lock()
				if len(s.frames) < maxKept {
					s.frames = append(s.frames, f)
				} else {
					s.framesLost++
				}
				s.notifyLocked()
				s.mu.Unlock()
			}
		}()
	}
	return s
}

func (s *session) notifyLocked() {
	close(s.ch)
	s.ch = make(chan struct{})
}

// changed returns a channel closed at the next change.
func (s *session) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// stop ends the watchers once the device is closed. A target that does not
// close its channels must not hang the runner: give up after a while.
func (s *session) stop() {
	s.mu.Lock()
	s.ownShutdown = true
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// waitDrained waits until the output stream is closed, at most d.
func (s *session) waitDrained(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		ch := s.changed()
		if s.drained() {
			return
		}
		select {
		case <-ch:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *session) exitStatus() (target.Exit, error, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exit, s.exitErr, s.exited
}

func (s *session) drained() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outputDone
}

// pollLiveness asks the device whether it is alive every livenessPoll
// until it is found dead, the app's exit was observed, or the session
// stops.
func (s *session) pollLiveness(ctx context.Context) {
	t := time.NewTicker(livenessPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.lost() != nil {
			return
		}
		// Once the app's exit is seen, one last check tells whether that
		// was its own end or a kill from outside; then nothing is left to
		// watch.
		_, _, exited := s.exitStatus()
		actx, cancel := context.WithTimeout(ctx, aliveTimeout)
		err := target.AliveOf(actx, s.dev)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.markDead(err)
			return
		}
		if exited {
			return
		}
	}
}

// markDead records the first reason the device is not alive and wakes the
// waiters.
func (s *session) markDead(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead == nil {
		s.dead = err
		s.notifyLocked()
	}
}

// lost is why the device is known to be gone: a failed liveness check,
// or Wait failing (the device ended without the app's exit being seen).
// A *target.DeadError is preferred: it says what died and how.
func (s *session) lost() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var exitErr error
	if s.exited {
		exitErr = s.exitErr
	}
	var de *target.DeadError
	switch {
	case s.dead != nil && errors.As(s.dead, &de):
		return s.dead
	case exitErr != nil && errors.As(exitErr, &de):
		return exitErr
	case s.dead != nil:
		return s.dead
	}
	return exitErr
}

// deviceFailure reports a device that was lost rather than an app that
// exited. The runner words the final reason (see caseRun.checkAlive).
func (s *session) deviceFailure() (Verdict, string, bool) {
	err := s.lost()
	if err == nil {
		return "", "", false
	}
	v := classify(err)
	if v == Fail {
		v = InfraError
	}
	return v, fmt.Sprintf("lost the device: %v", err), true
}

func (s *session) lineMark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines) + s.linesLost
}

func (s *session) frameMark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames) + s.framesLost
}

// lineCounter counts lines matching m from index from on, incrementally.
func (s *session) lineCounter(m Matcher, from int) func() int {
	scanned, n := from, 0
	return func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		for ; scanned < len(s.lines); scanned++ {
			if m.Match(s.lines[scanned]) {
				n++
			}
		}
		return n
	}
}

// frameCounter counts frames passing match from index from on.
func (s *session) frameCounter(match func([]byte) bool, from int) func() int {
	scanned, n := from, 0
	return func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		for ; scanned < len(s.frames); scanned++ {
			if match == nil || match(s.frames[scanned].Data) {
				n++
			}
		}
		return n
	}
}

// firstMatchFrom finds the first line matching m at or after *scanned and
// advances *scanned past what it looked at.
func (s *session) firstMatchFrom(m Matcher, scanned *int) (target.Line, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ; *scanned < len(s.lines); *scanned++ {
		if m.Match(s.lines[*scanned]) {
			return s.lines[*scanned], true
		}
	}
	return target.Line{}, false
}

func (s *session) firstMatch(m Matcher, from int) (target.Line, bool) {
	return s.firstMatchFrom(m, &from)
}

// tail formats the last n app lines (and console lines when console is
// set, else only when the app printed nothing) for a failure message.
func (s *session) tail(n int, console bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tailLocked(n, console)
}

func (s *session) tailLocked(n int, console bool) string {
	pick := func(withConsole bool) []string {
		var out []string
		for i := len(s.lines) - 1; i >= 0 && len(out) < n; i-- {
			l := s.lines[i]
			if l.Stream == target.Console && !withConsole {
				continue
			}
			out = append(out, fmt.Sprintf("  [%s] %s", l.Stream, l.Text))
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	}
	got := pick(console)
	what := "last app output"
	if console {
		what = "last output and console"
	}
	if len(got) == 0 && !console {
		got, what = pick(true), "the app printed nothing; last console lines"
	}
	if len(got) == 0 {
		return "; no output at all"
	}
	return "\n" + what + ":\n" + strings.Join(got, "\n")
}

// snapshot returns the lines for the report: the head (boot) and the tail
// (the end of the run) when there are more than maxLines.
// nearMisses are lines from index from on that nearly match m
// (Matcher.nearMisses).
func (s *session) nearMisses(m Matcher, from, max int) []string {
	s.mu.Lock()
	lines := s.lines[min(from, len(s.lines)):]
	s.mu.Unlock()
	return m.nearMisses(lines, max)
}

func (s *session) snapshot() ([]target.Line, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxLines <= 0 || len(s.lines) <= s.maxLines {
		return append([]target.Line(nil), s.lines...), s.linesLost
	}
	head := s.maxLines / 4
	tail := s.maxLines - head
	out := append([]target.Line(nil), s.lines[:head]...)
	out = append(out, s.lines[len(s.lines)-tail:]...)
	return out, s.linesLost + len(s.lines) - s.maxLines
}
