package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/jsonfmt"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// defaultWidth is the width assumed for a terminal that does not say.
const defaultWidth = 80

// terminalWidth is w's width in columns when w is a terminal (0 when it
// is not: lines are not fitted), defaultWidth when it does not say.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(f) {
		return 0
	}
	if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
		return cols
	}
	return defaultWidth
}

// progress shows which case and step runs and for how long: one redrawn
// line on a terminal ("line": never wider than the terminal, so it never
// wraps; verdicts coloured unless NO_COLOR), one plain line per event for
// CI logs ("plain"), one JSON object per event ("json"), or the verdicts
// alone ("none").
type progress struct {
	out io.Writer
	// info gets the run's own lines in json mode (stdout carries only
	// events).
	info  io.Writer
	mode  string
	total int
	// width is the terminal's width ("line"): every line is fitted to it.
	width  int
	colour bool

	mu     sync.Mutex
	done   int
	cur    string // case being run
	step   string
	doing  string // what the step does now (an activity)
	since  time.Time
	ticker *time.Ticker
	quit   chan struct{}
}

func newProgress(out io.Writer, mode string) *progress {
	p := &progress{out: out, info: os.Stderr, mode: mode, quit: make(chan struct{})}
	if mode == "line" {
		p.width = terminalWidth(out)
		if p.width == 0 {
			p.width = defaultWidth
		}
		p.colour = useColour(out)
		p.ticker = time.NewTicker(200 * time.Millisecond)
		go func() {
			for {
				select {
				case <-p.ticker.C:
					p.mu.Lock()
					p.redrawLocked()
					p.mu.Unlock()
				case <-p.quit:
					return
				}
			}
		}()
	}
	return p
}

func (p *progress) stop() {
	if p.ticker != nil {
		p.ticker.Stop()
		close(p.quit)
		p.mu.Lock()
		fmt.Fprint(p.out, "\r\033[K")
		p.mu.Unlock()
	}
}

// println prints a line of the run's own (the header, the summary): on a
// terminal wrapped to its width, in json mode on stderr (stdout carries
// only events).
func (p *progress) println(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf(format, args...)
	if p.mode == "json" {
		fmt.Fprintln(p.info, line)
		return
	}
	if p.mode == "line" {
		fmt.Fprint(p.out, "\r\033[K")
	}
	p.writeLocked(line, "")
}

// writeLocked writes one logical line, wrapped to the width (continuation
// lines indented), with colour around its first word when asked.
func (p *progress) writeLocked(line, colourCode string) {
	if p.width <= 0 {
		fmt.Fprintln(p.out, colourFirst(line, colourCode, p.colour))
		return
	}
	for i, part := range wrap(line, p.width-1, "      ") {
		if i == 0 {
			part = colourFirst(part, colourCode, p.colour)
		}
		fmt.Fprintln(p.out, part)
	}
}

func colourFirst(line, code string, on bool) string {
	if !on || code == "" {
		return line
	}
	// Colour the verdict word after "--- ".
	rest := strings.TrimPrefix(line, "--- ")
	word, tail, _ := strings.Cut(rest, " ")
	prefix := line[:len(line)-len(rest)]
	return prefix + "\033[" + code + "m" + word + "\033[0m " + tail
}

// wrap splits s into lines of at most width runes, breaking at spaces
// where it can; continuation lines start with indent.
func wrap(s string, width int, indent string) []string {
	if width < 20 {
		width = 20
	}
	var out []string
	for utf8.RuneCountInString(s) > width {
		r := []rune(s)
		cut := width
		for i := width; i > width/2; i-- {
			if r[i] == ' ' {
				cut = i
				break
			}
		}
		out = append(out, strings.TrimRight(string(r[:cut]), " "))
		s = indent + strings.TrimLeft(string(r[cut:]), " ")
	}
	return append(out, s)
}

// shorten cuts the middle out of s so that it has at most n runes:
// "arp-sweep-with-a-long…name [system linux/arm/v7]".
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n < 5 {
		return string(r[:max(n, 0)])
	}
	head := (n - 1) / 2
	tail := n - 1 - head
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

func (p *progress) redrawLocked() {
	if p.cur == "" {
		return
	}
	prefix := fmt.Sprintf("[%d/%d] ", p.done+1, p.total)
	suffix := " · " + time.Since(p.since).Round(100*time.Millisecond).String()
	room := p.width - 1 - utf8.RuneCountInString(prefix) - utf8.RuneCountInString(suffix)
	step := p.step
	if p.doing != "" {
		step += ": " + p.doing
	}
	// The case name gets up to half the room (cut in the middle), the
	// step what is left (cut at its end: its start says what it is).
	name := shorten(p.cur, max(room/2, room-utf8.RuneCountInString(step)-3))
	stepRoom := room - utf8.RuneCountInString(name) - 3
	line := prefix + name
	if stepRoom >= 4 {
		line += " · " + shortenEnd(step, stepRoom)
	}
	fmt.Fprint(p.out, "\r\033[K"+line+suffix)
}

func shortenEnd(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func caseName(e scenario.Event) string {
	if e.Board != "" {
		return fmt.Sprintf("%s [%s %s %s]", e.Scenario, e.Target, e.Board, e.Platform)
	}
	return fmt.Sprintf("%s [%s %s]", e.Scenario, e.Target, e.Platform)
}

func (p *progress) event(e scenario.Event) {
	if p.mode == "json" {
		p.jsonEvent(e)
		return
	}
	if p.mode == "none" && e.Kind != scenario.CaseFinished {
		return // only the verdicts
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Kind {
	case scenario.CaseStarted:
		p.cur, p.step, p.doing, p.since = caseName(e), "starting", "", time.Now()
		if e.Attempt > 1 {
			p.cur += fmt.Sprintf(" (attempt %d)", e.Attempt)
		}
		if p.mode == "plain" {
			fmt.Fprintf(p.out, "=== RUN   %s\n", p.cur)
		}
	case scenario.StepStarted:
		p.step, p.doing = e.Step.Desc, ""
		if e.Step.Index >= 0 {
			p.step = fmt.Sprintf("step %d: %s", e.Step.Index+1, e.Step.Desc)
		}
	case scenario.StepActivity:
		p.doing = e.Activity
		if p.mode == "plain" {
			fmt.Fprintf(p.out, "    ...         %s: %s\n", p.step, e.Activity)
		}
	case scenario.StepFinished:
		if p.mode == "plain" {
			fmt.Fprintf(p.out, "    %-11s %8s  %s\n", e.Step.Verdict, e.Step.Duration.Round(time.Millisecond), p.step)
		}
	case scenario.CaseRetrying:
		if p.mode == "line" {
			fmt.Fprint(p.out, "\r\033[K")
		}
		p.writeLocked(fmt.Sprintf("--- RETRY %s after %s: %s", caseName(e), e.Elapsed.Round(10*time.Millisecond), firstLineOf(e.Result.Reason)), ansiYellow)
	case scenario.CaseFinished:
		p.done++
		if p.mode == "line" {
			fmt.Fprint(p.out, "\r\033[K")
		}
		r := e.Result
		verdict := strings.ToUpper(string(r.Verdict))
		p.writeLocked(fmt.Sprintf("--- %-11s %s (%s)", verdict, caseName(e), r.Duration.Round(10*time.Millisecond)), verdictColour(verdict))
		if r.Verdict != scenario.Pass {
			for _, l := range strings.Split(r.Reason, "\n") {
				p.writeLocked("    "+l, "")
			}
		}
		// What a passing step did not account for (frames sent that the
		// device did not receive) is never silent.
		for _, st := range r.Steps {
			for _, w := range st.Warnings {
				p.writeLocked(fmt.Sprintf("    warning: step %d (%s): %s", st.Index+1, st.Desc, w), ansiYellow)
			}
		}
		p.cur = ""
		return
	}
	if p.mode == "line" {
		p.redrawLocked()
	}
}

// progressEvent is one line of --progress json: the names of results.json
// (schemas/cli.schema.json#/$defs/progress_event).
type progressEvent struct {
	Event      string       `json:"event"`
	Time       time.Time    `json:"time"`
	Scenario   string       `json:"scenario"`
	Target     string       `json:"target"`
	Board      string       `json:"board,omitempty"`
	Platform   string       `json:"platform"`
	Attempt    int          `json:"attempt"`
	Case       int          `json:"case,omitempty"`
	Cases      int          `json:"cases,omitempty"`
	ElapsedMS  *float64     `json:"elapsed_ms,omitempty"`
	Index      *int         `json:"index,omitempty"`
	Kind       string       `json:"kind,omitempty"`
	Desc       string       `json:"desc,omitempty"`
	Activity   string       `json:"activity,omitempty"`
	Verdict    string       `json:"verdict,omitempty"`
	Message    string       `json:"message,omitempty"`
	Reason     string       `json:"reason,omitempty"`
	DurationMS *float64     `json:"duration_ms,omitempty"`
	Exit       *target.Exit `json:"exit,omitempty"`
}

var progressEventNames = map[scenario.EventKind]string{
	scenario.CaseStarted:  "case_start",
	scenario.StepStarted:  "step_start",
	scenario.StepActivity: "step_activity",
	scenario.StepFinished: "step",
	scenario.CaseRetrying: "case_retry",
	scenario.CaseFinished: "verdict",
}

func ms(d time.Duration) *float64 {
	v := jsonfmt.Millis(d)
	return &v
}

func (p *progress) jsonEvent(e scenario.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	attempt := e.Attempt
	if attempt < 1 {
		attempt = 1
	}
	ev := progressEvent{Event: progressEventNames[e.Kind], Time: time.Now().UTC(), Scenario: e.Scenario, Target: e.Target,
		Board: e.Board, Platform: e.Platform, Attempt: attempt, ElapsedMS: ms(e.Elapsed)}
	if e.Kind == scenario.CaseStarted {
		ev.Case, ev.Cases = p.done+1, p.total
	}
	if st := e.Step; st != nil && e.Kind != scenario.CaseFinished && e.Kind != scenario.CaseRetrying {
		idx := st.Index
		ev.Index, ev.Kind, ev.Desc = &idx, string(st.Kind), st.Desc
		if e.Kind == scenario.StepFinished {
			ev.Verdict, ev.Message, ev.DurationMS = string(st.Verdict), st.Message, ms(st.Duration)
		}
	}
	if e.Kind == scenario.StepActivity {
		ev.Activity = e.Activity
	}
	if r := e.Result; r != nil && (e.Kind == scenario.CaseFinished || e.Kind == scenario.CaseRetrying) {
		ev.Verdict, ev.Reason, ev.DurationMS, ev.Exit = string(r.Verdict), r.Reason, ms(r.Duration), r.Exit
	}
	if e.Kind == scenario.CaseFinished {
		p.done++
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	jsonPrinted = true
	p.out.Write(append(b, '\n'))
}
