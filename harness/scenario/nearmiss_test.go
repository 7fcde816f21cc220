package scenario

import (
	"regexp"
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/target"
)

// A failed count names the lines that nearly matched: for a JSON matcher
// those with the same event but other values, for a regex or substring
// those holding most of its literal text; none when nothing is close.
func TestNearMisses(t *testing.T) {
	lines := func(ss ...string) []target.Line {
		var out []target.Line
		for _, s := range ss {
			out = append(out, target.Line{Stream: target.Stdout, Text: s})
		}
		return out
	}
	out := lines(
		`ready iface=eth0`,
		`{"event":"dns_query","name":"example.org","type":"AAAA"}`,
		`{"event":"dns_query","name":"example.com","type":"A"}`,
		`{"event":"device_seen","mac":"02:00:00:00:00:01"}`,
		`{"event":"dns_query","name":"example.org","type":"AAAA"}`,
		`pcapwatch: warning: dns query for exampel.com dropped`,
	)
	json := Matcher{Fields: []FieldMatcher{{Path: []string{"event"}, Equal: "dns_query"}, {Path: []string{"name"}, Equal: "example.net"}}}
	got := json.nearMisses(out, 5)
	if len(got) != 2 || !strings.Contains(got[0], "example.org") || !strings.Contains(got[1], "example.com") {
		t.Errorf("JSON near misses %q: want the two other dns_query lines (once each), not device_seen", got)
	}
	re := Matcher{Regex: regexp.MustCompile(`dns query for example\.com (answered|dropped)`)}
	if got := re.nearMisses(out, 5); len(got) == 0 || !strings.Contains(got[0], "exampel.com dropped") {
		t.Errorf("regex near misses %q", got)
	}
	none := Matcher{Contains: "captured 100 frames"}
	if got := none.nearMisses(out, 5); len(got) != 0 {
		t.Errorf("near misses of a line nothing resembles: %q", got)
	}
}

// Through the runner: the step's message and near_misses carry them.
func TestRunnerCountFailureShowsNearMisses(t *testing.T) {
	tg := &fakeTarget{script: app(3)}
	res := runOne(t, tg, head(`  - expect_output: {json: {event: device_seen, mac: "02:00:00:00:00:99"}, count: ">= 1", within: 300ms}`+stopSteps))
	if res.Verdict != Fail {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
	st := res.Steps[res.FailedStep]
	if len(st.NearMisses) != 3 || !strings.Contains(res.Reason, "lines that nearly matched:\n  {\"event\":\"device_seen\"") {
		t.Errorf("near misses %q; reason:\n%s", st.NearMisses, res.Reason)
	}
}
