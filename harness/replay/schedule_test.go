package replay

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/pcapfixtures"
)

func TestParseScheduleRefusesWhatIsNotASpeed(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Schedule{
		"": {Kind: Original}, "original": {Kind: Original}, "x1": {Kind: Original},
		"top": {Kind: TopSpeed}, "topspeed": {Kind: TopSpeed},
		"x2.5": {Kind: Multiplied, Factor: 2.5}, "x0.001": {Kind: Multiplied, Factor: 0.001}, "x1000000": {Kind: Multiplied, Factor: 1e6},
		"1000pps": {Kind: FixedRate, PPS: 1000}, "0.001pps": {Kind: FixedRate, PPS: 0.001}, "100000000pps": {Kind: FixedRate, PPS: 1e8},
	} {
		got, err := ParseSchedule(in)
		if err != nil || got != want {
			t.Errorf("ParseSchedule(%q) = %+v, %v; expected %+v", in, got, err, want)
			continue
		}
		// What String prints parses back to the same schedule.
		if again, err := ParseSchedule(got.String()); err != nil || again != got {
			t.Errorf("ParseSchedule(%q) = %+v, %v; expected %+v", got.String(), again, err, got)
		}
	}
	for bad, msg := range map[string]string{
		"xNaN": "plain decimal", "xInf": "plain decimal", "x+Inf": "plain decimal", "NaNpps": "plain decimal", "Infpps": "plain decimal",
		"x1e308": "plain decimal", "1e-9pps": "plain decimal", "x0x10": "plain decimal", "x1_000": "plain decimal", "x-1": "plain decimal",
		"x": "plain decimal", "pps": "plain decimal", "fast": "plain decimal", "1000 pps": "plain decimal", " x2": "plain decimal",
		"x0": "between x0.001 and x1000000", "x0.0001": "between x0.001 and x1000000", "x1000001": "between x0.001 and x1000000",
		"x" + strings.Repeat("9", 400): "between x0.001 and x1000000",
		"0pps":                         "between 0.001pps and 100000000pps", "0.000000001pps": "between 0.001pps and 100000000pps", "100000001pps": "between 0.001pps",
	} {
		_, err := ParseSchedule(bad)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseSchedule(%q) = %v; expected an error saying %q", bad, err, msg)
		}
	}
}

// Duration is the time the planner gives the last frame, so that a budget
// check and a step's deadline agree with what Send will do.
func TestDurationIsThePlannersLastFrame(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"dns", "arp-sweep", "two-interfaces", "home-minute"} {
		f, err := pcapfixtures.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		path, err := f.Path()
		if err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := Scan(path)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Records != len(c.Frames) || sum.Span != c.Frames[len(c.Frames)-1].Offset || sum.Format != c.Format {
			t.Errorf("%s: Scan = %+v; Load has %d frames spanning %v, the manifest sha256 %s", name, sum, len(c.Frames), c.Frames[len(c.Frames)-1].Offset, f.SHA256)
		}
		for _, s := range []Schedule{{Kind: Original}, {Kind: Multiplied, Factor: 4}, {Kind: Multiplied, Factor: 0.5}, {Kind: FixedRate, PPS: 100}} {
			for _, loops := range []int{1, 3} {
				plan, err := planner(s, len(c.Frames), c.Frames[len(c.Frames)-1].Offset)
				if err != nil {
					t.Fatal(err)
				}
				n := len(c.Frames)
				want := time.Duration(plan(loops-1, n-1, c.Frames[n-1].Offset))
				got := s.Duration(sum.Records, sum.Span, loops)
				if (got - want).Abs() > time.Microsecond {
					t.Errorf("%s %s ×%d: Duration %v; the planner's last frame is at %v", name, s, loops, got, want)
				}
			}
		}
	}
}

func TestCheckBudget(t *testing.T) {
	t.Parallel()
	minute := 5 * time.Minute
	cases := []struct {
		name   string
		s      Schedule
		frames int
		span   time.Duration
		loops  int
		msg    string // "" when it fits
	}{
		{"home-minute original", Schedule{Kind: Original}, 531, 59 * time.Second, 1, ""},
		{"home-minute x0.1", Schedule{Kind: Multiplied, Factor: 0.1}, 531, 59 * time.Second, 1, "take at least 9m50s"},
		{"burst 100k at 100000pps", Schedule{Kind: FixedRate, PPS: 100000}, 100000, 0, 1, ""},
		{"a slow rate", Schedule{Kind: FixedRate, PPS: 0.001}, 12, time.Second, 1, "take at least 3h3m20s"},
		{"a billion loops", Schedule{Kind: TopSpeed}, 12, time.Second, 1_000_000_000, "1000000000 loops: expected 1 to 1000000"},
		{"top speed has a floor", Schedule{Kind: TopSpeed}, 100000, 0, 1_000_000, "take at least 2h46m40s"},
		{"zero loops", Schedule{Kind: Original}, 12, time.Second, 0, "0 loops"},
		{"saturates", Schedule{Kind: FixedRate, PPS: 0.001}, math.MaxInt32, 0, MaxLoops, "more than 292 years"},
	}
	for _, tc := range cases {
		err := CheckBudget(tc.s, tc.frames, tc.span, tc.loops, minute)
		if tc.msg == "" && err != nil || tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("%s: %v; expected %q", tc.name, err, tc.msg)
		}
	}
}

// Scan finds what ReadCapture finds, with the record and offset.
func TestScanRefusesWhatLoadRefuses(t *testing.T) {
	t.Parallel()
	dns := fixtureBytesInternal(t, "dns")
	for name, in := range map[string][]byte{
		"not a capture": []byte("name: a scenario, not a capture\n"),
		"truncated":     dns[:len(dns)-10],
		"link type":     append(append(append([]byte(nil), dns[:20]...), 105, 0, 0, 0), dns[24:]...),
	} {
		_, want := ReadCapture(bytes.NewReader(in))
		_, got := ScanReader(bytes.NewReader(in))
		var fe *FormatError
		if want == nil || got == nil || got.Error() != want.Error() || !errors.As(got, &fe) {
			t.Errorf("%s: Scan %v; Load %v", name, got, want)
		}
	}
	if _, err := Scan("/nonexistent/x.pcap"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func fixtureBytesInternal(t *testing.T, name string) []byte {
	t.Helper()
	f, err := pcapfixtures.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Path()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
