package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/testenv"
)

func TestRunBadScenario(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(f, []byte("name: bad\nsteps:\n  - replay: {fixture: no-such-fixture}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errText, code := runHil(t, "run", "--image", "oci:/nonexistent", f)
	if code != 2 || !strings.Contains(errText, "bad.yaml:3:23:") || !strings.Contains(errText, `unknown fixture "no-such-fixture"`) {
		t.Errorf("exit %d, error %q; want 2 and a file:line:col error", code, errText)
	}
}

// The user target runs the amd64 sample natively in a network namespace:
// real boots, real capture, fast. The system target runs in the root suite.
func TestRunUserTarget(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	root := testenv.RepoRoot(t)
	rep := t.TempDir()
	out, errText, code := runHil(t, "run", "--image", "oci:"+filepath.Join(images, "pcapwatch"), "--target", "user",
		"--platform", "linux/amd64", "--report", rep, "--progress", "plain",
		filepath.Join(root, "scenarios", "graceful-stop.yaml"), filepath.Join(root, "scenarios", "malformed.yaml"))
	if code != 0 {
		t.Fatalf("exit %d (%s):\n%s", code, errText, out)
	}
	for _, want := range []string{"=== RUN   graceful-stop [user linux/amd64]", "--- PASS        malformed [user linux/amd64]", "step 1: replay malformed (original)", "2 case(s) in", "2 pass, 0 fail"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	f, err := os.Open(filepath.Join(rep, report.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := report.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.Pass != 2 || r.Results[0].Fixtures == nil && r.Results[1].Fixtures == nil {
		t.Errorf("report: %+v", r.Summary)
	}
	for _, name := range []string{report.JUnitFile, report.HTMLFile} {
		if _, err := os.Stat(filepath.Join(rep, name)); err != nil {
			t.Errorf("report %s: %v", name, err)
		}
	}
}

// A broken image fails with exit status 1 and the reason on the output.
func TestRunFailExitCode(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	root := testenv.RepoRoot(t)
	out, _, code := runHil(t, "run", "--image", "oci:"+filepath.Join(images, "no-libpcap"), "--target", "user",
		"--progress", "none", filepath.Join(root, "scenarios", "startup.yaml"))
	if code != 1 || !strings.Contains(out, "--- FAIL        startup [user linux/arm/v7]") || !strings.Contains(out, "needs libpcap.so.0.8") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// A step's warning is printed under the case's verdict, in every mode.
func TestProgressPrintsWarnings(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "none")
	st := scenario.StepResult{Index: 0, Desc: "replay tcp-bulk (top)", Verdict: scenario.Pass,
		Warnings: []string{"the device's interface eth0 received 511 of the 1811 frames sent (1300 dropped)"}}
	p.event(scenario.Event{Kind: scenario.CaseFinished, Scenario: "bulk", Target: "user", Platform: "linux/amd64",
		Result: &scenario.Result{Verdict: scenario.Pass, Steps: []scenario.StepResult{st}}})
	want := "    warning: step 1 (replay tcp-bulk (top)): the device's interface eth0 received 511 of the 1811 frames sent (1300 dropped)\n"
	if out := buf.String(); !strings.Contains(out, "--- PASS") || !strings.Contains(out, want) {
		t.Errorf("output %q lacks the warning %q", out, want)
	}
}

func TestProgressLineMode(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "line")
	p.total = 1
	st := &scenario.StepResult{Index: 0, Desc: "replay arp-sweep (x4)", Verdict: scenario.Pass}
	p.event(scenario.Event{Kind: scenario.CaseStarted, Scenario: "arp-sweep", Target: "system", Platform: "linux/arm/v7", Attempt: 1})
	p.event(scenario.Event{Kind: scenario.StepStarted, Scenario: "arp-sweep", Step: st})
	time.Sleep(450 * time.Millisecond) // the ticker redraws the elapsed time
	p.event(scenario.Event{Kind: scenario.CaseFinished, Scenario: "arp-sweep", Target: "system", Platform: "linux/arm/v7", Result: &scenario.Result{Verdict: scenario.Pass, Duration: time.Second}})
	p.stop()
	out := buf.String()
	if !strings.Contains(out, "\r\033[K[1/1] arp-sweep [system linux/arm/v7] · step 1: replay arp-sweep (x4) · ") {
		t.Errorf("no redrawn progress line in %q", out)
	}
	if strings.Count(out, "step 1: replay") < 2 {
		t.Errorf("the line was not redrawn while the step ran: %q", out)
	}
	if !strings.Contains(out, "--- PASS        arp-sweep [system linux/arm/v7] (1s)\n") {
		t.Errorf("no final line in %q", out)
	}
}
