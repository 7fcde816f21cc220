package faultinject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// insecureTests are cmd/hil's tests of the --insecure rule: every verb
// with the flag, pointed at a registry off loopback from an empty network
// namespace, refuses before any I/O (one subtest per verb; the test fails
// when a verb has the flag but no case); and the same verbs work on
// loopback. They need cmd/hil's command tree, so the suite runs them as
// they are and counts their verdicts instead of copying them.
const insecureTests = "^(TestInsecureIsLoopbackOnlyInEveryVerb|TestInsecureWorksOnLoopbackInEveryVerb)$"

func (s *suite) insecureMatrix(t *testing.T) {
	start := time.Now()
	ctx := ctxFor(t, 5*time.Minute)
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-json", "-run", insecureTests, "./cmd/hil")
	cmd.Dir = s.root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	type event struct {
		Action, Test, Output string
	}
	verdict := map[string]string{}
	var log strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Test == "" {
			continue
		}
		switch e.Action {
		case "pass", "fail", "skip":
			verdict[e.Test] = e.Action
		case "output":
			log.WriteString(e.Output)
		}
	}
	r := row{took: time.Since(start)}
	for test, v := range verdict {
		parent, verb, ok := strings.Cut(test, "/")
		if !ok {
			if v != "pass" {
				t.Errorf("cmd/hil %s: %s", test, v)
			}
			continue
		}
		if parent != "TestInsecureIsLoopbackOnlyInEveryVerb" {
			continue
		}
		r.injected++
		if v != "pass" {
			r.wrongPass++
			t.Errorf("hil %s --insecure to a registry off loopback: %s", verb, v)
		}
	}
	for _, top := range []string{"TestInsecureIsLoopbackOnlyInEveryVerb", "TestInsecureWorksOnLoopbackInEveryVerb"} {
		if verdict[top] != "pass" {
			t.Errorf("cmd/hil %s: %q (go test: %v)\n%s\n%s", top, verdict[top], err, log.String(), stderr.String())
		}
	}
	if r.injected == 0 {
		t.Errorf("no --insecure verb was tried (go test: %v)\n%s", err, stderr.String())
	}
	t.Logf("--insecure: %d verb(s) refused off loopback, each working on loopback, in %s", r.injected, r.took.Round(time.Millisecond))
	s.tally.add("--insecure off loopback, every verb (cmd/hil's tests)", r)
}
