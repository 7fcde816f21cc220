package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/replay"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/pcapfixtures"
)

// mapFixtures resolves names to files; its sha256 is sum (none when empty).
type mapFixtures map[string]string

func (m mapFixtures) Fixture(name string) (string, string, bool) {
	p, ok := m[name]
	return p, m["sha256:"+name], ok
}

func (m mapFixtures) Names() []string {
	var ns []string
	for n := range m {
		ns = append(ns, n)
	}
	return ns
}

// testFixtures are two bundled fixtures under other paths (the parser
// scans what it is given).
var testFixtures = func() mapFixtures {
	m := mapFixtures{}
	for _, n := range []string{"arp-sweep", "burst-100k"} {
		f, err := pcapfixtures.Lookup(n)
		if err != nil {
			panic(err)
		}
		p, err := f.Path()
		if err != nil {
			panic(err)
		}
		m[n] = p
	}
	return m
}()

// bundledSHA256 is the manifest's sha256 of a bundled fixture.
func bundledSHA256(t *testing.T, name string) string {
	t.Helper()
	f, err := pcapfixtures.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return f.SHA256
}

// copyFixture copies a bundled fixture into dir as name.
func copyFixture(t *testing.T, fixture, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(testFixtures.path(t, fixture))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (m mapFixtures) path(t *testing.T, name string) string {
	t.Helper()
	if p, ok := m[name]; ok {
		return p
	}
	f, err := pcapfixtures.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Path()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const fullScenario = `name: arp-sweep
description: every device of the sweep is reported once
tags: [capture, arp]
app:
  entrypoint: [/opt/pcapwatch]
  args: [--iface, eth1, --verbose, 3]
  env: {LOG: debug, N: 5}
  workdir: /tmp
  iface: eth1
targets: [system, user]
platforms: [linux/arm/v7, linux/amd64]
startup:
  budget: 15s
  ready: {regex: "^ready iface=eth1"}
steps:
  - replay: {fixture: arp-sweep, schedule: x2, loops: 3}
  - name: all devices
    expect_output:
      json: {event: device_seen, mac: "02:00:00:00:00:07", n: 3, ok: true, counts.frames: {is: ">= 10"}, ip: {regex: "^192\\.168\\."}}
      count: "== 24"
      within: 5s
      settle: 200ms
      from: step
  - expect_frames: {filter: "arp and ether src 02:00:00:00:00:01", count: ">= 1", within: 2s}
  - replay: burst-100k
  - signal: TERM
  - wait: 100ms
  - expect_exit: {code: 0, within: 3s}
  - expect_no_output: {contains: "panic:", stream: stderr}
`

func TestParseFull(t *testing.T) {
	sc, err := Parse("full.yaml", []byte(fullScenario), WithFixtures(testFixtures))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != "arp-sweep" || len(sc.Tags) != 2 || sc.Tags[1] != "arp" {
		t.Errorf("name/tags: %q %v", sc.Name, sc.Tags)
	}
	if got := strings.Join(sc.App.Args, " "); got != "--iface eth1 --verbose 3" {
		t.Errorf("args %q", got)
	}
	if got := strings.Join(sc.App.Env, ","); got != "LOG=debug,N=5" {
		t.Errorf("env %q", got)
	}
	if sc.App.Iface != "eth1" || sc.App.WorkingDir != "/tmp" || sc.App.Entrypoint[0] != "/opt/pcapwatch" {
		t.Errorf("app %+v", sc.App)
	}
	if sc.Startup.Budget != 15*time.Second || sc.Startup.Ready.Regex.String() != "^ready iface=eth1" {
		t.Errorf("startup %+v", sc.Startup)
	}
	if len(sc.Targets) != 2 || len(sc.Platforms) != 2 {
		t.Errorf("targets %v platforms %v", sc.Targets, sc.Platforms)
	}
	if len(sc.Steps) != 8 {
		t.Fatalf("want 8 steps, got %d", len(sc.Steps))
	}
	r := sc.Steps[0].Replay
	if r.Path != testFixtures["arp-sweep"] || r.SHA256 != bundledSHA256(t, "arp-sweep") || r.Schedule != (replay.Schedule{Kind: replay.Multiplied, Factor: 2}) || r.Loops != 3 || r.Records != 294 {
		t.Errorf("replay %+v", r)
	}
	if sc.Steps[0].Pos.Line != 16 || sc.Steps[0].Pos.Column != 5 {
		t.Errorf("step 0 at %s, want full.yaml:16:5", sc.Steps[0].Pos)
	}
	eo := sc.Steps[1].ExpectOutput
	if sc.Steps[1].Name != "all devices" || eo.Count != (CountExpr{"==", 24}) || eo.Within != 5*time.Second || eo.Settle != 200*time.Millisecond || !eo.FromStep {
		t.Errorf("expect_output %+v", eo)
	}
	if len(eo.Match.Fields) != 6 {
		t.Errorf("fields %+v", eo.Match.Fields)
	}
	good := `{"event":"device_seen","mac":"02:00:00:00:00:07","n":3,"ok":true,"counts":{"frames":12},"ip":"192.168.1.9"}`
	if !eo.Match.Match(target.Line{Stream: target.Stdout, Text: good}) {
		t.Errorf("matcher %s does not match %s", eo.Match, good)
	}
	for _, bad := range []string{
		`{"event":"device_seen","mac":"02:00:00:00:00:08","n":3,"ok":true,"counts":{"frames":12},"ip":"192.168.1.9"}`,
		`{"event":"device_seen","mac":"02:00:00:00:00:07","n":"3","ok":true,"counts":{"frames":12},"ip":"192.168.1.9"}`,
		`{"event":"device_seen","mac":"02:00:00:00:00:07","n":3,"ok":true,"counts":{"frames":9},"ip":"192.168.1.9"}`,
		`{"event":"device_seen","mac":"02:00:00:00:00:07","n":3,"ok":true,"ip":"192.168.1.9"}`,
		`{"event":"device_seen","mac":"02:00:00:00:00:07","n":3,"ok":true,"counts":{"frames":12},"ip":"10.0.0.1"}`,
		`not json at all`,
	} {
		if eo.Match.Match(target.Line{Stream: target.Stdout, Text: bad}) {
			t.Errorf("matcher %s matches %s", eo.Match, bad)
		}
	}
	ef := sc.Steps[2].ExpectFrames
	arp := make([]byte, 42)
	copy(arp[6:], []byte{2, 0, 0, 0, 0, 1})
	arp[12], arp[13] = 0x08, 0x06
	if !ef.match(arp) {
		t.Error("BPF filter does not match an ARP frame from 02:00:00:00:00:01")
	}
	arp[11] = 2
	if ef.match(arp) {
		t.Error("BPF filter matches an ARP frame from another MAC")
	}
	if sc.Steps[3].Replay.Fixture != "burst-100k" || sc.Steps[3].Replay.Schedule.Kind != replay.Original {
		t.Errorf("replay shorthand %+v", sc.Steps[3].Replay)
	}
	if sc.Steps[4].Signal != syscall.SIGTERM || sc.Steps[5].Wait != 100*time.Millisecond || *sc.Steps[6].ExpectExit.Code != 0 {
		t.Errorf("signal/wait/exit %+v %+v %+v", sc.Steps[4], sc.Steps[5], sc.Steps[6])
	}
	no := sc.Steps[7].ExpectNoOutput
	if !no.Match(target.Line{Stream: target.Stderr, Text: "panic: boom"}) || no.Match(target.Line{Stream: target.Stdout, Text: "panic: boom"}) {
		t.Errorf("expect_no_output stream filter wrong: %s", no)
	}
}

func TestParseDefaults(t *testing.T) {
	sc, err := Parse("d.yaml", []byte("name: d\nsteps:\n  - wait: 1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Targets[0] != "system" || sc.Platforms[0] != "linux/arm/v7" || sc.App.Iface != "eth0" || sc.Startup.Budget != DefaultStartupBudget {
		t.Errorf("defaults: %+v", sc)
	}
	if !sc.Startup.Ready.Match(target.Line{Stream: target.Stdout, Text: "ready iface=eth0"}) || sc.Startup.Ready.Match(target.Line{Stream: target.Stdout, Text: "not ready "}) {
		t.Error("default readiness matcher is not ^ready ")
	}
	if sc.Startup.Ready.Match(target.Line{Stream: target.Console, Text: "ready iface=eth0"}) {
		t.Error("console lines must not count as app readiness")
	}
}

// TestParseErrors: each bad file gives an error naming file:line:column and
// what was expected.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error, the first is the position
	}{
		{"unknown top key", "name: a\nstepz: []\nsteps: [{wait: 1s}]\n", []string{"x.yaml:2:1:", `unknown key "stepz" in scenario`, "expected one of: name,"}},
		{"unknown step key", "name: a\nsteps:\n  - replay: {fixture: arp-sweep, speed: x2}\n", []string{"x.yaml:3:34:", `unknown key "speed" in steps[0].replay`, "fixture, schedule, loops"}},
		{"missing name", "steps: [{wait: 1s}]\n", []string{"x.yaml:1:1:", `missing required key "name"`}},
		{"missing steps", "name: a\n", []string{"x.yaml:1:1:", `missing required key "steps"`}},
		{"wrong type name", "name: [a]\nsteps: [{wait: 1s}]\n", []string{"x.yaml:1:7:", "name: want a string, found a list"}},
		{"wrong type loops", "name: a\nsteps:\n  - replay: {fixture: arp-sweep, loops: many}\n", []string{"x.yaml:3:41:", "loops: want an integer", `"many"`}},
		{"wrong type within", "name: a\nsteps:\n  - expect_output: {contains: x, within: 5}\n", []string{"x.yaml:3:42:", "within: want a duration like"}},
		{"bad regex", "name: a\nsteps:\n  - expect_output: {regex: \"a(b\", count: 1}\n", []string{"x.yaml:3:28:", "bad regular expression", "missing closing )"}},
		{"bad count", "name: a\nsteps:\n  - expect_output: {contains: x, count: \"about 3\"}\n", []string{"x.yaml:3:41:", `count "about 3": want an operator`}},
		{"unquoted count", "name: a\nsteps:\n  - expect_output: {contains: x}\n  - expect_output:\n      contains: y\n      count: >= 1\n", []string{"x.yaml:6:", "YAML syntax", "must be quoted"}},
		{"unknown fixture", "name: a\nsteps:\n  - replay: {fixture: nope}\n", []string{"x.yaml:3:23:", `unknown fixture "nope"`, "known fixtures:", "arp-sweep"}},
		{"bad schedule", "name: a\nsteps:\n  - replay: {fixture: arp-sweep, schedule: fast}\n", []string{"x.yaml:3:44:", `schedule "fast": expected original, top (or topspeed), xN`}},
		{"bad signal", "name: a\nsteps:\n  - signal: TREM\n", []string{"x.yaml:3:13:", `signal "TREM": want one of TERM`}},
		{"two step kinds", "name: a\nsteps:\n  - wait: 1s\n    signal: TERM\n", []string{"x.yaml:3:5:", "want exactly one step kind", "found signal and wait"}},
		{"no step kind", "name: a\nsteps:\n  - name: x\n", []string{"x.yaml:3:5:", "want exactly one step kind", "found none"}},
		{"two matchers", "name: a\nsteps:\n  - expect_output: {contains: x, regex: y}\n", []string{"x.yaml:3:20:", "want exactly one of contains, regex or json, found contains and regex"}},
		{"bad bpf", "name: a\nsteps:\n  - expect_frames: {filter: \"arp andd\"}\n", []string{"x.yaml:3:29:", `bad BPF filter "arp andd"`}},
		{"unknown target", "name: a\ntargets: [system, vm]\nsteps: [{wait: 1s}]\n", []string{"x.yaml:2:19:", `unknown target "vm"`}},
		{"bad platform", "name: a\nplatforms: [armhf]\nsteps: [{wait: 1s}]\n", []string{"x.yaml:2:13:", "want os/arch[/variant]"}},
		{"bad exit", "name: a\nsteps:\n  - expect_exit: {code: 0, signal: KILL}\n", []string{"x.yaml:3:18:", "want code or signal, not both"}},
		{"duplicate key", "name: a\nname: b\nsteps: [{wait: 1s}]\n", []string{"x.yaml:2:1:", `duplicate key "name"`}},
		{"bad json value", "name: a\nsteps:\n  - expect_output: {json: {n: {is: \"~3\"}}}\n", []string{"x.yaml:3:36:", `count "~3"`}},
		{"bad from", "name: a\nsteps:\n  - expect_output: {contains: x, from: boot}\n", []string{"x.yaml:3:40:", "want run", "or step"}},
		{"empty", "", []string{"x.yaml:1:1:", "empty file"}},
		{"not a mapping", "- a\n- b\n", []string{"x.yaml:1:1:", "scenario: want a mapping", "found a list"}},
		{"negative wait", "name: a\nsteps:\n  - wait: -1s\n", []string{"x.yaml:3:11:", "positive duration"}},
		{"bad iface", "name: a\napp: {iface: \"eth 0\"}\nsteps: [{wait: 1s}]\n", []string{"x.yaml:2:14:", "app.iface: want a Linux interface name"}},
		{"bad rx_offload", "name: a\nrx_offload: lro\nsteps: [{wait: 1s}]\n", []string{"x.yaml:2:13:", "rx_offload: want one of off, gro", `"lro"`}},
		{"bad strict_delivery", "name: a\nstrict_delivery: yes please\nsteps: [{wait: 1s}]\n", []string{"x.yaml:2:18:", "strict_delivery: want true or false"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(c.yaml), WithFixtures(testFixtures))
			if err == nil {
				t.Fatalf("no error for:\n%s", c.yaml)
			}
			var pe ParseErrors
			if !errors.As(err, &pe) {
				t.Errorf("error is %T, want ParseErrors", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, c.want[0]) {
				t.Errorf("error %q does not start with %q", msg, c.want[0])
			}
			for _, w := range c.want[1:] {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}

// Several problems in one file are all reported, each with its line.
func TestParseDeliveryFields(t *testing.T) {
	sc, err := Parse("x.yaml", []byte("name: a\nrx_offload: gro\nstrict_delivery: true\nsteps: [{wait: 1s}]\n"), WithFixtures(testFixtures))
	if err != nil {
		t.Fatal(err)
	}
	if sc.RxOffload != "gro" || !sc.StrictDelivery {
		t.Errorf("rx_offload %q strict_delivery %v; want gro and true", sc.RxOffload, sc.StrictDelivery)
	}
	if cfg := runConfig(&image.Image{}, sc); cfg.RxOffload != "gro" {
		t.Errorf("the run config asks for rx_offload %q, want gro", cfg.RxOffload)
	}
	sc, err = Parse("x.yaml", []byte("name: a\nrx_offload: \"off\"\nsteps: [{wait: 1s}]\n"), WithFixtures(testFixtures))
	if err != nil || sc.RxOffload != "" || sc.StrictDelivery {
		t.Errorf("rx_offload off: %v, %q, strict %v; want the defaults", err, sc.RxOffload, sc.StrictDelivery)
	}
}

// What a replay step warns about (or, strict, fails on): every frame sent
// must be received, none dropped, and with coalescing off a capture sees
// them one for one.
func TestDeliveryProblem(t *testing.T) {
	c := func(rx, dropped uint64, seen, over int64) link.Counters {
		return link.Counters{Iface: "eth0", RxPackets: rx, RxDropped: dropped, Seen: seen, SeenOverMTU: over}
	}
	for _, tc := range []struct {
		name    string
		d       link.Counters
		offload string
		want    string
	}{
		{"all there", c(100, 0, 100, 0), "off", ""},
		{"veth: no capture count", c(100, 0, -1, -1), "off", ""},
		{"dropped", c(95, 5, 95, 0), "off", "received 95 of the 100 frames sent (5 dropped)"},
		{"lost without a trace", c(90, 0, 90, 0), "off", "received 90 of the 100 frames sent (0 dropped)"},
		{"merged with coalescing off", c(100, 0, 60, 20), "off", "a capture on eth0 saw 60 frames of the 100 received, with receive coalescing off"},
		{"merged as asked", c(100, 0, 60, 20), "rx-gro", ""},
	} {
		if got := deliveryProblem(tc.d, 100, tc.offload); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseErrorsAll(t *testing.T) {
	_, err := Parse("x.yaml", []byte("name: a\nfoo: 1\nsteps:\n  - wait: soon\n  - signal: NOPE\n"))
	var pe ParseErrors
	if !errors.As(err, &pe) || len(pe) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i, line := range []int{2, 4, 5} {
		if pe[i].Pos.Line != line {
			t.Errorf("error %d at line %d, want %d: %v", i, pe[i].Pos.Line, line, pe[i])
		}
	}
}

func TestFixturePathRelativeToScenario(t *testing.T) {
	dir := t.TempDir()
	copyFixture(t, "dns", dir, "mine.pcap")
	f := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(f, []byte("name: s\nsteps:\n  - replay: mine.pcap\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := ParseFile(f)
	if err != nil {
		t.Fatal(err)
	}
	r := sc.Steps[0].Replay
	if r.Path != filepath.Join(dir, "mine.pcap") || r.SHA256 != bundledSHA256(t, "dns") || r.Records != 12 {
		t.Errorf("replay %+v", r)
	}
}

func TestLoadDirDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.yaml", "b.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("name: same\nsteps: [{wait: 1s}]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadDir(dir)
	if err == nil || !regexp.MustCompile(`b\.yaml:1:1: scenario name "same" is already used by .*a\.yaml:1:1`).MatchString(err.Error()) {
		t.Errorf("want duplicate-name error, got %v", err)
	}
}

func TestCountExpr(t *testing.T) {
	for _, c := range []struct {
		in   string
		v    float64
		want bool
	}{{"== 24", 24, true}, {"== 24", 25, false}, {"24", 24, true}, {">= 1", 0, false}, {">=1", 1, true}, {"< 3", 3, false}, {"!= 0", 1, true}, {"<= 0", 0, true}, {"> 2.5", 3, true}} {
		e, err := ParseCount(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if e.Holds(c.v) != c.want {
			t.Errorf("%q holds for %v: got %v", c.in, c.v, !c.want)
		}
	}
	for _, bad := range []string{"", "=", "=> 3", "== x", "==3 4"} {
		if _, err := ParseCount(bad); err == nil {
			t.Errorf("ParseCount(%q) accepted", bad)
		}
	}
}
