package imgrun

import (
	"bufio"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/hilproject/hil/harness/target"
)

// maxLine bounds one output line; longer lines are split, never dropped.
const maxLine = 1 << 20

// Lines turns output streams into one channel of target.Lines. The queue
// between the readers and the channel is unbounded so that a consumer that
// reads slowly (or not at all) never stalls the app on a full pipe.
type Lines struct {
	out     chan target.Line
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []target.Line
	writers sync.WaitGroup
	done    bool
	stop    chan struct{}
	once    sync.Once
	observe func(target.Line)
}

// NewLines starts the forwarder; add streams with Read, then call Finish.
// observe (may be nil) sees every line as it is read, before the consumer.
func NewLines(observe func(target.Line)) *Lines {
	l := &Lines{out: make(chan target.Line, 256), stop: make(chan struct{}), observe: observe}
	l.cond = sync.NewCond(&l.mu)
	go l.forward()
	return l
}

// C is the channel of lines; it is closed after Finish once every queued
// line was delivered, or at Abort.
func (l *Lines) C() <-chan target.Line { return l.out }

// Read reads r line by line as stream s until EOF or error.
func (l *Lines) Read(s target.Stream, r io.Reader) {
	l.writers.Add(1)
	go func() {
		defer l.writers.Done()
		br := bufio.NewReaderSize(r, 64<<10)
		var partial strings.Builder
		for {
			chunk, isPrefix, err := br.ReadLine()
			if len(chunk) > 0 || (err == nil && !isPrefix) {
				partial.Write(chunk)
				if !isPrefix || partial.Len() >= maxLine {
					l.push(target.Line{Stream: s, Text: strings.TrimSuffix(partial.String(), "\r"), Time: time.Now()})
					partial.Reset()
				}
			}
			if err != nil {
				if partial.Len() > 0 {
					l.push(target.Line{Stream: s, Text: partial.String(), Time: time.Now()})
				}
				return
			}
		}
	}()
}

// Push adds one line from the harness itself (e.g. a console note).
func (l *Lines) Push(line target.Line) { l.push(line) }

func (l *Lines) push(line target.Line) {
	if l.observe != nil {
		l.observe(line)
	}
	l.mu.Lock()
	l.queue = append(l.queue, line)
	l.mu.Unlock()
	l.cond.Signal()
}

// WaitReaders blocks until every stream given to Read hit EOF.
func (l *Lines) WaitReaders() { l.writers.Wait() }

// Finish closes the channel once the readers are done and the queue is
// drained.
func (l *Lines) Finish() {
	go func() {
		l.writers.Wait()
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
		l.cond.Signal()
	}()
}

// Abort stops delivery at once (Close): queued lines are dropped and the
// channel is closed.
func (l *Lines) Abort() {
	l.once.Do(func() { close(l.stop) })
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
	l.cond.Signal()
}

func (l *Lines) forward() {
	defer close(l.out)
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.done {
			l.cond.Wait()
		}
		if len(l.queue) == 0 && l.done {
			l.mu.Unlock()
			return
		}
		batch := l.queue
		l.queue = nil
		l.mu.Unlock()
		for _, line := range batch {
			select {
			case l.out <- line:
			case <-l.stop:
				return
			}
		}
	}
}
