package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"

	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/schemas"
)

// openTerminal opens a pseudo-terminal of cols columns and collects what
// is written to it; done closes the terminal and returns what it showed.
func openTerminal(t *testing.T, cols int) (tty *os.File, done func() string) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&buf, ptmx) // ends with EIO once the terminal side is closed
		close(copied)
	}()
	closed := false
	t.Cleanup(func() {
		if !closed {
			tty.Close()
		}
		<-copied
		ptmx.Close()
	})
	return tty, func() string {
		closed = true
		tty.Close()
		<-copied
		return buf.String()
	}
}

var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// screenLines are the runs of text a terminal shows between carriage
// returns and newlines, without the escape sequences.
func screenLines(out string) []string {
	return strings.FieldsFunc(ansiEscape.ReplaceAllString(out, ""), func(r rune) bool { return r == '\r' || r == '\n' })
}

// TestProgressFitsA60ColumnTerminal drives hil run (the user target, the
// amd64 sample, a scenario with a long name) in a pseudo-terminal of 60
// columns: --progress auto picks the redrawn line, and no line it writes
// is wider than the terminal (the 134-column line used to wrap into
// garbage); the verdict is coloured.
func TestProgressFitsA60ColumnTerminal(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	root := testenv.RepoRoot(t)
	t.Setenv("TERM", "xterm")
	t.Setenv("NO_COLOR", "")
	os.Unsetenv("NO_COLOR") // restored by t.Setenv's cleanup
	src, err := os.ReadFile(filepath.Join(root, "scenarios", "graceful-stop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	long := "graceful-stop-with-a-name-long-enough-to-wrap-a-narrow-terminal"
	sc := filepath.Join(t.TempDir(), long+".yaml")
	if err := os.WriteFile(sc, bytes.Replace(src, []byte("name: graceful-stop"), []byte("name: "+long), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	const cols = 60
	tty, done := openTerminal(t, cols)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = runScenarios(ctx, tty, runOptions{
		image: "oci:" + filepath.Join(images, "pcapwatch"), scenarios: []string{sc},
		targets: []string{"user"}, platforms: []string{"linux/amd64"}, retries: 1, progress: "auto",
	})
	out := done()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "\r\x1b[K[1/1] ") {
		t.Errorf("auto on a terminal did not draw the progress line:\n%q", out)
	}
	if !strings.Contains(out, "\x1b["+ansiGreen+"mPASS\x1b[0m") {
		t.Errorf("the verdict is not green on a terminal:\n%q", out)
	}
	if !strings.Contains(out, "…") {
		t.Errorf("the long name was not shortened:\n%q", out)
	}
	for _, l := range screenLines(out) {
		if n := utf8.RuneCountInString(l); n > cols {
			t.Errorf("a line of %d columns on a %d-column terminal: %q", n, cols, l)
		}
	}
}

// With NO_COLOR set, a terminal gets no colour.
func TestProgressNoColour(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	t.Setenv("TERM", "xterm")
	tty, done := openTerminal(t, 60)
	p := newProgress(tty, "line")
	p.total = 1
	p.event(scenario.Event{Kind: scenario.CaseStarted, Scenario: "startup", Target: "system", Platform: "linux/arm/v7", Attempt: 1})
	p.event(scenario.Event{Kind: scenario.CaseFinished, Scenario: "startup", Target: "system", Platform: "linux/arm/v7",
		Result: &scenario.Result{Verdict: scenario.Fail, Reason: "step 1: saw 0"}})
	p.stop()
	out := done()
	if !strings.Contains(out, "FAIL") || regexp.MustCompile("\x1b\\[3[0-9]m").MatchString(out) {
		t.Errorf("NO_COLOR: want a verdict without colour, got %q", out)
	}
}

// A slow step says what it is doing (fetching the kernel, building the
// init) on the progress line, in plain lines and as a JSON event, and
// the line keeps to the width by cutting the middle of the case name.
func TestProgressShowsActivity(t *testing.T) {
	st := &scenario.StepResult{Index: -1, Kind: "boot", Desc: "boot"}
	events := []scenario.Event{
		{Kind: scenario.CaseStarted, Scenario: "a-scenario-with-a-very-long-name-indeed", Target: "system", Platform: "linux/arm/v7", Attempt: 1},
		{Kind: scenario.StepStarted, Scenario: "a-scenario-with-a-very-long-name-indeed", Step: st},
		{Kind: scenario.StepActivity, Scenario: "a-scenario-with-a-very-long-name-indeed", Target: "system", Platform: "linux/arm/v7", Attempt: 1, Step: st,
			Activity: "fetching Debian's kernel linux-image-6.1.0-41-armmp (armhf) through apt"},
	}
	var line, plain, js bytes.Buffer
	for mode, buf := range map[string]*bytes.Buffer{"line": &line, "plain": &plain, "json": &js} {
		p := newProgress(buf, mode)
		p.width = 60
		p.total = 3
		for _, e := range events {
			p.event(e)
		}
		p.stop()
	}
	shown := screenLines(line.String())
	if len(shown) == 0 || !strings.Contains(shown[len(shown)-1], "boot: fetching Deb") || !strings.Contains(shown[len(shown)-1], "…") {
		t.Errorf("line: %q", shown)
	}
	for _, l := range shown {
		if utf8.RuneCountInString(l) >= 60 {
			t.Errorf("line of %d columns: %q", utf8.RuneCountInString(l), l)
		}
	}
	if !strings.Contains(plain.String(), "boot: fetching Debian's kernel") {
		t.Errorf("plain: %q", plain.String())
	}
	n, err := schemas.ValidateLines(schemas.Def("progress_event"), js.Bytes())
	if err != nil || n != 3 || !strings.Contains(js.String(), `"event":"step_activity"`) {
		t.Errorf("json: %d events, %v:\n%s", n, err, js.String())
	}
}

// --progress json prints one event per line on stdout (and nothing
// else there), each valid against the schema, from case_start to the
// verdict; the results.json of the same run validates too.
func TestProgressJSON(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	root := testenv.RepoRoot(t)
	rep := t.TempDir()
	r := execHil(t, "run", "--image", "oci:"+filepath.Join(images, "pcapwatch"), "--target", "user",
		"--platform", "linux/amd64", "--report", rep, "--progress", "json", filepath.Join(root, "scenarios", "graceful-stop.yaml"))
	if r.code != 0 {
		t.Fatalf("exit %d (%s):\n%s\n%s", r.code, r.errText, r.stdout, r.stderr)
	}
	n, err := schemas.ValidateLines(schemas.Def("progress_event"), []byte(r.stdout))
	if err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	var kinds []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e struct{ Event string }
		_ = json.Unmarshal([]byte(l), &e)
		kinds = append(kinds, e.Event)
	}
	if n < 4 || kinds[0] != "case_start" || kinds[len(kinds)-1] != "verdict" || !strings.Contains(strings.Join(kinds, " "), "step_start step") {
		t.Errorf("events %v", kinds)
	}
	if !strings.Contains(r.stderr, "1 pass, 0 fail") {
		t.Errorf("the summary is not on stderr: %q", r.stderr)
	}
	b, err := os.ReadFile(filepath.Join(rep, report.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.Validate(schemas.Results, b); err != nil {
		t.Errorf("results.json: %v", err)
	}
}

// A board's case names its board in every progress mode: "[user pi0w
// linux/arm/v5]" in the plain lines, "board" in each json event.
func TestProgressNamesTheBoard(t *testing.T) {
	res := &scenario.Result{Scenario: "startup", Target: "user", Board: "pi0w", Platform: "linux/arm/v5", Verdict: scenario.Pass, Attempts: 1}
	events := []scenario.Event{
		{Kind: scenario.CaseStarted, Scenario: "startup", Target: "user", Board: "pi0w", Platform: "linux/arm/v5", Attempt: 1},
		{Kind: scenario.CaseFinished, Scenario: "startup", Target: "user", Board: "pi0w", Platform: "linux/arm/v5", Attempt: 1, Result: res},
	}
	var plain, js bytes.Buffer
	for mode, buf := range map[string]*bytes.Buffer{"plain": &plain, "json": &js} {
		p := newProgress(buf, mode)
		p.total = 1
		for _, e := range events {
			p.event(e)
		}
		p.stop()
	}
	if !strings.Contains(plain.String(), "startup [user pi0w linux/arm/v5]") {
		t.Errorf("plain: %q", plain.String())
	}
	n, err := schemas.ValidateLines(schemas.Def("progress_event"), js.Bytes())
	if err != nil || n != 2 || strings.Count(js.String(), `"board":"pi0w"`) != 2 {
		t.Errorf("json: %d events, %v:\n%s", n, err, js.String())
	}
}
