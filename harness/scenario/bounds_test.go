package scenario

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/target"
)

// parseErr parses doc as dir/x.yaml and returns the error text ("" when it
// parsed).
func parseErr(t *testing.T, dir, doc string, opts ...ParseOption) string {
	t.Helper()
	f := filepath.Join(dir, "x.yaml")
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(f, opts...)
	if err == nil {
		return ""
	}
	var pe ParseErrors
	if !errors.As(err, &pe) {
		t.Errorf("error is %T, want ParseErrors: %v", err, err)
	}
	return err.Error()
}

// The time bounds of issue 12: a replay's schedule, loops and within are
// checked against the fixture and the scenario's timeout when the file is
// loaded; counts of lines and frames are never negative.
func TestBoundsRefused(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, steps string
		want        []string // the first is the position
	}{
		{"slow rate", "  - replay: {fixture: dns, schedule: 0.001pps}\n", []string{"x.yaml:4:38:", "12 frames spanning 1.155s, 1 loop(s) at 0.001pps take at least 3h3m20s: more than the 5m0s allowed (the scenario's timeout)"}},
		{"rate below the range", "  - replay: {fixture: dns, schedule: 0.000000001pps}\n", []string{"x.yaml:4:38:", "the rate must be between 0.001pps and 100000000pps"}},
		{"exponent rate", "  - replay: {fixture: dns, schedule: 1e-9pps}\n", []string{"x.yaml:4:38:", `schedule "1e-9pps": expected original`, "plain decimal"}},
		{"a billion loops", "  - replay: {fixture: dns, loops: 1000000000}\n", []string{"x.yaml:4:35:", "1000000000 loops: expected 1 to 1000000"}},
		{"loops past the timeout", "  - replay: {fixture: dns, loops: 1000}\n", []string{"x.yaml:4:35:", "1000 loop(s) at original take at least 20m"}},
		{"top speed loops", "  - replay: {fixture: burst-100k, schedule: top, loops: 1000000}\n", []string{"x.yaml:4:45:", "take at least 2h46m40s"}},
		{"xNaN", "  - replay: {fixture: dns, schedule: xNaN}\n", []string{"x.yaml:4:38:", `schedule "xNaN"`, "plain decimal"}},
		{"xInf", "  - replay: {fixture: dns, schedule: xInf}\n", []string{"x.yaml:4:38:", `schedule "xInf"`}},
		{"x1e308", "  - replay: {fixture: dns, schedule: x1e308}\n", []string{"x.yaml:4:38:", `schedule "x1e308"`}},
		{"x0", "  - replay: {fixture: dns, schedule: x0}\n", []string{"x.yaml:4:38:", "the multiplier must be between x0.001 and x1000000"}},
		{"within too short", "  - replay: {fixture: home-minute, within: 10s}\n", []string{"x.yaml:4:44:", "take at least 58.423s", "more than the 10s allowed (within)"}},
		{"within past the timeout", "  - replay: {fixture: dns, within: 1h}\n", []string{"x.yaml:4:36:", "within: 1h0m0s is more than the scenario's timeout of 5m0s"}},
		{"replays add up", "  - replay: {fixture: home-minute, schedule: x0.5}\n  - replay: {fixture: home-minute, schedule: x0.5}\n  - wait: 2m\n", []string{"x.yaml:6:5:", "steps[2]: the replays and waits up to here take at least 5m53.692s", "more than the scenario's timeout of 5m0s"}},
		{"waits add up", "  - wait: 4m\n  - wait: 2m\n", []string{"x.yaml:5:5:", "steps[1]: the replays and waits up to here take at least 6m0s"}},
		{"negative count", "  - expect_output: {contains: x, count: \"== -1\"}\n", []string{"x.yaml:4:41:", `count "== -1": a count of lines or frames is never negative`}},
		{"negative frame count", "  - expect_frames: {filter: arp, count: \"< -3\"}\n", []string{"x.yaml:4:41:", "never negative"}},
		{"fractional count", "  - expect_output: {contains: x, count: \">= 1.5\"}\n", []string{"x.yaml:4:41:", "want a whole number"}},
		{"huge count", "  - expect_output: {contains: x, count: \"== 1" + strings.Repeat("0", 400) + "\"}\n", []string{"x.yaml:4:41:", "too large"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := parseErr(t, dir, "name: a\nstartup: {budget: 5s}\nsteps:\n"+c.steps)
			if msg == "" {
				t.Fatalf("accepted:\n%s", c.steps)
			}
			if !strings.HasPrefix(msg, filepath.Join(dir, c.want[0])) {
				t.Errorf("error %q does not start with %q", msg, c.want[0])
			}
			for _, w := range c.want[1:] {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
	// What fits is accepted, and a negative JSON number stays comparable.
	for _, ok := range []string{
		"  - replay: {fixture: home-minute, schedule: x0.25, within: 4m}\n",
		"  - replay: {fixture: dns, schedule: top, loops: 1000}\n",
		"  - replay: {fixture: burst-100k, schedule: 100000pps}\n",
		"  - expect_output: {json: {t: {is: \"> -40.5\"}}, count: \"== 0\"}\n",
	} {
		if msg := parseErr(t, dir, "name: a\nsteps:\n"+ok); msg != "" {
			t.Errorf("refused %q: %s", ok, msg)
		}
	}
	if msg := parseErr(t, dir, "name: a\ntimeout: 30m\nsteps:\n  - replay: {fixture: dns, loops: 1000}\n"); msg != "" {
		t.Errorf("a longer timeout does not make room: %s", msg)
	}
	if msg := parseErr(t, dir, "name: a\ntimeout: 20s\nstartup: {budget: 30s}\nsteps: [{wait: 1s}]\n"); !strings.Contains(msg, "x.yaml:3:10: startup.budget 30s: the case would time out first (timeout 20s)") {
		t.Errorf("startup budget over the timeout: %q", msg)
	}
}

func TestTimeoutAndDeadline(t *testing.T) {
	sc, err := Parse("x.yaml", []byte("name: a\ntimeout: 90s\nsteps:\n  - replay: {fixture: dns, schedule: x2, loops: 2}\n  - replay: {fixture: dns, within: 3s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Timeout() != 90*time.Second {
		t.Errorf("timeout %s", sc.Timeout())
	}
	r := sc.Steps[0].Replay
	// 2 loops of 12 frames over 1.155 s, each loop one mean gap after the
	// other, at x2.
	want := (2*1155*time.Millisecond + 1155*time.Millisecond/11) / 2
	if (r.Duration() - want).Abs() > time.Millisecond {
		t.Errorf("duration %s, want %s", r.Duration(), want)
	}
	if d := r.Deadline(); d != r.Duration()+10*time.Second+r.Duration()/10+24*50*time.Microsecond {
		t.Errorf("deadline %s", d)
	}
	if d := sc.Steps[1].Replay.Deadline(); d != 3*time.Second {
		t.Errorf("within: deadline %s", d)
	}
	if (&Scenario{}).Timeout() != DefaultTimeout || (&Replay{Fixture: "made in Go"}).Deadline() != 0 {
		t.Error("defaults")
	}
}

// pcap file bytes: a header with the link type, then records.
func pcapFile(linkType uint32, records ...[]byte) []byte {
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], linkType)
	out := h
	for i, data := range records {
		r := make([]byte, 16)
		binary.LittleEndian.PutUint32(r[0:], uint32(1000+i))
		binary.LittleEndian.PutUint32(r[8:], uint32(len(data)))
		binary.LittleEndian.PutUint32(r[12:], uint32(len(data)))
		out = append(append(out, r...), data...)
	}
	return out
}

// A fixture that cannot be replayed refuses the scenario when it is loaded,
// at the reference's file:line:col, naming the record and byte offset in
// the capture.
func TestFixtureProblemsRefusedAtLoad(t *testing.T) {
	dir := t.TempDir()
	frame := make([]byte, 60)
	good := pcapFile(1, frame, frame, frame)
	files := map[string][]byte{
		"notes.txt":      []byte("these are my notes, not a capture\n"),
		"truncated.pcap": good[:len(good)-20],
		"badrecord.pcap": append(pcapFile(1, frame), 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 9, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
		"wifi.pcap":      pcapFile(105, frame),
		"empty.pcap":     pcapFile(1),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Record 3 of truncated.pcap starts after the header and two 76-byte
	// records: 24 + 2*76 = 176.
	for _, c := range []struct{ fixture, want string }{
		{"notes.txt", `fixture "notes.txt" cannot be replayed: ` + dir + `/notes.txt: capture header (byte offset 0): unknown magic number 0x73656874`},
		{"truncated.pcap", "truncated.pcap: record 3 (byte offset 176): truncated record: header says 60 bytes, file ends after 40"},
		{"badrecord.pcap", "badrecord.pcap: record 2 (byte offset 100): 9-byte record: expected at least a 14-byte Ethernet header"},
		{"wifi.pcap", "wifi.pcap: capture header (byte offset 20): link type 105 (802.11): expected 1 (EN10MB, Ethernet)"},
		{"empty.pcap", `fixture "empty.pcap" (` + dir + `/empty.pcap) holds no frames: nothing to replay`},
		{"missing.pcap", `unknown fixture "missing.pcap": not in the pcapfixtures manifest`},
	} {
		msg := parseErr(t, dir, "name: a\nsteps:\n  - wait: 1s\n  - replay: {fixture: "+c.fixture+"}\n")
		at := filepath.Join(dir, "x.yaml") + ":4:23: steps[1].replay.fixture: "
		if !strings.HasPrefix(msg, at) || !strings.Contains(msg, c.want) {
			t.Errorf("%s: got\n  %s\nwant\n  %s...%s", c.fixture, msg, at, c.want)
		}
	}
	// A manifest whose sha256 disagrees with the file.
	wrong := mapFixtures{"dns": testFixtures.path(t, "dns"), "sha256:dns": strings.Repeat("0", 64)}
	if _, err := Parse("x.yaml", []byte("name: a\nsteps: [{replay: dns}]\n"), WithFixtures(wrong)); err == nil || !strings.Contains(err.Error(), "but its manifest says 0000") {
		t.Errorf("sha256 mismatch: %v", err)
	}
}

// Nothing boots for a scenario whose fixture is bad: the load refuses the
// whole set, so the runner never has a case to give its target.
func TestBadFixtureNeverReachesTheTarget(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.pcap"), []byte("GIF89a"), 0o644); err != nil {
		t.Fatal(err)
	}
	for n, doc := range map[string]string{
		"good.yaml": "name: good\ntargets: [fake]\nsteps: [{wait: 1ms}]\n",
		"bad.yaml":  "name: bad\ntargets: [fake]\nsteps: [{replay: bad.pcap}]\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tg := &fakeTarget{script: app(0)}
	scs, err := LoadDir(dir, WithKnownTargets("fake"))
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:3:18: steps[0].replay.fixture") {
		t.Fatalf("load: %v", err)
	}
	r := NewRunner(fakeImages{}, WithTarget(tg))
	_ = r.RunAll(context.Background(), nil) // what a caller has after a refused load
	if tg.boots != 0 || len(scs) != 1 {
		t.Errorf("%d boots, %d scenarios loaded", tg.boots, len(scs))
	}
}

// The size limits: each refusal says what and where.
func TestSizeLimits(t *testing.T) {
	dir := t.TempDir()
	env := func(n int) string {
		var b strings.Builder
		b.WriteString("name: a\napp:\n  env:\n")
		for i := range n {
			fmt.Fprintf(&b, "    K%d: v\n", i)
		}
		return b.String() + "steps: [{wait: 1s}]\n"
	}
	list := func(key string, n int) string {
		return "name: a\napp:\n  " + key + ": [" + strings.TrimSuffix(strings.Repeat("x, ", n), ", ") + "]\nsteps: [{wait: 1s}]\n"
	}
	steps := "name: a\nsteps:\n" + strings.Repeat("  - wait: 1ms\n", 1001)
	bomb := "name: a\nx: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
	for i, prev := 0, "a"; i < 6; i++ {
		cur := fmt.Sprintf("b%d", i)
		bomb += fmt.Sprintf("%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", cur, cur, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = cur
	}
	bomb += "steps: [{wait: 1s}]\n"
	for _, c := range []struct{ name, doc, want string }{
		{"env keys", env(4097), "x.yaml:4:5: app.env: 4097 entries: at most 4096 are allowed (scenario.Limits.EnvKeys)"},
		{"env list", "name: a\napp:\n  env: [" + strings.TrimSuffix(strings.Repeat("A=b, ", 4097), ", ") + "]\nsteps: [{wait: 1s}]\n", "x.yaml:3:8: app.env: 4097 entries"},
		{"args", list("args", 4097), "x.yaml:3:3: app.entrypoint and app.args: 4097 entries: at most 4096 are allowed (scenario.Limits.Args)"},
		{"steps", steps, "x.yaml:3:3: steps: 1001 entries: at most 1000 are allowed (scenario.Limits.Steps)"},
		{"string", "name: a\ndescription: " + strings.Repeat("x", 64<<10+1) + "\nsteps: [{wait: 1s}]\n", "x.yaml:2:14: a value of 64.0 KiB: a scenario's strings may be at most 64.0 KiB (scenario.Limits.String)"},
		{"alias bomb", bomb, "x.yaml:1:1: more than 100000 YAML nodes"},
		{"bytes", "name: a\n#" + strings.Repeat("x", 1<<20) + "\nsteps: [{wait: 1s}]\n", "x.yaml:1:1: the file is 1.0 MiB: a scenario may be at most 1.0 MiB (scenario.Limits.Bytes)"},
	} {
		msg := parseErr(t, dir, c.doc)
		if !strings.HasPrefix(msg, filepath.Join(dir, c.want[:strings.Index(c.want, " ")])) || !strings.Contains(msg, c.want[strings.Index(c.want, " ")+1:]) {
			t.Errorf("%s: got %.300q\nwant %q", c.name, msg, c.want)
		}
	}
	// At the limits, everything parses.
	if msg := parseErr(t, dir, env(4096)); msg != "" {
		t.Errorf("4096 env keys: %s", msg)
	}
	// Parse (data in memory) refuses too, and WithLimits moves the bounds.
	if _, err := Parse("x.yaml", []byte(env(10)), WithLimits(Limits{Bytes: 1 << 20, Nodes: 1000, Steps: 1, EnvKeys: 9, Args: 1, String: 100})); err == nil || !strings.Contains(err.Error(), "10 entries: at most 9") {
		t.Errorf("WithLimits: %v", err)
	}
	if _, err := Parse("x.yaml", make([]byte, 2<<20)); err == nil || !strings.Contains(err.Error(), "the file is more than 1.0 MiB") {
		t.Errorf("Parse of 2 MiB: %v", err)
	}
}

// A 3-million-key env (36 MB) is refused by the size limit at once,
// without reading it all.
func TestHugeEnvRefusedBySize(t *testing.T) {
	f := filepath.Join(t.TempDir(), "huge.yaml")
	fh, err := os.Create(f)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString("name: huge\napp:\n  env:\n")
	for i := range 3_000_000 {
		fmt.Fprintf(&b, "    K%07d: v\n", i)
		if b.Len() > 1<<20 {
			fh.Write(b.Bytes())
			b.Reset()
		}
	}
	b.WriteString("steps: [{wait: 1s}]\n")
	fh.Write(b.Bytes())
	fh.Close()
	_, err = ParseFile(f)
	if err == nil || !regexp.MustCompile(`huge\.yaml:1:1: the file is 4[0-9]\.[0-9] MiB: a scenario may be at most 1\.0 MiB`).MatchString(err.Error()) {
		t.Errorf("got %v", err)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "A=1", "B=2", "A=3", "NOVALUE"}, []string{"A=x", "C=y", "NOVALUE=z", "C=w", "PATH="})
	want := "PATH=,A=x,B=2,A=x,NOVALUE=z,C=w"
	if strings.Join(got, ",") != want {
		t.Errorf("got %s\nwant %s", strings.Join(got, ","), want)
	}
}

// BenchmarkLargeEnv parses a scenario with 40,000 env keys (limits raised)
// and merges them into the image env as the runner does: 17 s before the
// merge was made linear.
func BenchmarkLargeEnv(b *testing.B) {
	var doc strings.Builder
	doc.WriteString("name: big\napp:\n  env:\n")
	for i := range 40000 {
		fmt.Fprintf(&doc, "    K%d: v%d\n", i, i)
	}
	doc.WriteString("steps:\n  - wait: 1s\n")
	data := []byte(doc.String())
	lim := DefaultLimits
	lim.EnvKeys, lim.Nodes = 50000, 200000
	img := &image.Image{Config: v1.Config{Env: []string{"PATH=/bin", "K7=image"}}}
	b.Run("parse+merge", func(b *testing.B) {
		for b.Loop() {
			sc, err := Parse("big.yaml", data, WithLimits(lim))
			if err != nil {
				b.Fatal(err)
			}
			if cfg := runConfig(img, sc); len(cfg.Env) != 40001 {
				b.Fatalf("%d env entries", len(cfg.Env))
			}
		}
	})
	b.Run("refused-by-default-limits", func(b *testing.B) {
		for b.Loop() {
			if _, err := Parse("big.yaml", data); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}

// A replay that does not end by its deadline ends the step as an infra
// error naming the bound (a link that stops taking frames cannot be made
// on demand with a real target: the replayer here waits for its context).
func TestReplayStepDeadline(t *testing.T) {
	dir := t.TempDir()
	copyFixture(t, "dns", dir, "f.pcap")
	var got time.Duration
	stuck := ReplayFunc(func(ctx context.Context, _ link.Link, _ *Replay) (ReplayStats, error) {
		start := time.Now()
		<-ctx.Done()
		got = time.Since(start)
		return ReplayStats{FramesSent: 3}, ctx.Err()
	})
	tg := &fakeTarget{script: app(0), link: &fakeLink{ch: make(chan link.Frame)}}
	doc := head("  - replay: {fixture: " + filepath.Join(dir, "f.pcap") + ", schedule: top, within: 300ms}\n")
	res := runOne(t, tg, doc, WithReplayer(stuck))
	if res.Verdict != InfraError || !strings.Contains(res.Reason, "replay of "+filepath.Join(dir, "f.pcap")+" did not end within 300ms (3 frames sent; the schedule needs 1µs)") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
	if got < 300*time.Millisecond || got > 5*time.Second {
		t.Errorf("the replay was stopped after %s; want 300ms", got)
	}
	if res.Steps[len(res.Steps)-2].Replay == nil {
		t.Error("no replay stats in the step result")
	}
}

// Frames that never reached the device's interface (not received, not
// dropped there) make a later count that fell short the harness's
// failure: an infra-error that is retried, never an app fail. Everything
// else stays the app's: frames the device dropped, frames that arrived
// late, a NIC that filters by address, a count over its bound, an app
// that ended. (A link that loses frames on demand needs a scripted
// device: the replayer here "sends" 10 frames.)
func TestUndeliveredFramesMakeAFailureInfra(t *testing.T) {
	dir := t.TempDir()
	copyFixture(t, "dns", dir, "f.pcap")
	sent := ReplayFunc(func(context.Context, link.Link, *Replay) (ReplayStats, error) {
		return ReplayStats{FramesSent: 10}, nil
	})
	replay := "  - replay: {fixture: " + filepath.Join(dir, "f.pcap") + ", schedule: top}\n"
	short := replay + "  - expect_output: {json: {event: device_seen}, count: \"== 3\", within: 200ms}\n"
	counted := func(rx, dropped uint64) func(int, time.Duration) link.Counters {
		return func(n int, _ time.Duration) link.Counters {
			if n == 1 {
				return link.Counters{Iface: "eth0", Seen: -1}
			}
			return link.Counters{Iface: "eth0", RxPackets: rx, RxDropped: dropped, Seen: -1}
		}
	}
	crash := func(d *fakeDevice) {
		d.say("ready iface=" + d.cfg.Iface)
		time.Sleep(100 * time.Millisecond)
		d.end(target.KilledBy("SIGSEGV", 139), nil)
	}
	lostReason := "the harness failed to deliver: 3 of the 10 frames that step 1 (replay of " + filepath.Join(dir, "f.pcap") + ") sent never reached the device's interface eth0 (it received 7 and dropped 0) [queue as seen]; so this is no verdict on the app: expected count == 3"
	for _, tc := range []struct {
		name          string
		doc           string
		script        func(*fakeDevice)
		rx            func(int, time.Duration) link.Counters
		filters       bool
		want          Verdict
		reason, avoid string
	}{
		{"all received", short, app(1), counted(10, 0), false, Fail, "expected count == 3", "harness failed to deliver"},
		{"dropped by the device", short, app(1), counted(7, 3), false, Fail, "expected count == 3", "harness failed to deliver"},
		{"lost before the device", short, app(1), counted(7, 0), false, InfraError, lostReason, ""},
		{"the NIC filters by address", short, app(1), counted(7, 0), true, Fail, "expected count == 3", "harness failed to deliver"},
		{"too many, not too few", replay + "  - expect_output: {json: {event: device_seen}, count: \"== 0\", within: 200ms}\n", app(1), counted(7, 0), false, Fail, "expected count == 0", "harness failed to deliver"},
		{"the app crashed", replay + "  - expect_output: {json: {event: device_seen}, count: \">= 3\", within: 5s}\n", crash, counted(7, 0), false, Fail, "before the app ended", "harness failed to deliver"},
		{"late, not lost", replay + "  - expect_output: {json: {event: device_seen}, count: \"== 3\", within: 3s}\n", app(1),
			// Settled at 7 after the replay (delivered waits 300 ms
			// without change), all 10 by the time the count fails.
			func(n int, since time.Duration) link.Counters {
				c := counted(7, 0)(n, since)
				if since > 2*time.Second {
					c.RxPackets = 10
				}
				return c
			}, false, Fail, "expected count == 3", "harness failed to deliver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := &fakeTarget{script: tc.script, link: &fakeLink{ch: make(chan link.Frame)}, rx: tc.rx,
				diag: func() (string, bool) { return "queue as seen", tc.filters }}
			res := runOne(t, tg, head(tc.doc), WithReplayer(sent), WithRetries(1))
			if res.Verdict != tc.want || !strings.Contains(res.Reason, tc.reason) || (tc.avoid != "" && strings.Contains(res.Reason, tc.avoid)) {
				t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
			}
			if want := map[Verdict]int{InfraError: 2, Fail: 1}[tc.want]; res.Attempts != want {
				t.Errorf("%d attempts, want %d (an infra-error is retried)", res.Attempts, want)
			}
		})
	}
}

// With receive coalescing on, the counters cannot tell a lost frame from
// a merged one: nothing is counted as undelivered.
func TestUndeliveredNeedsCoalescingOff(t *testing.T) {
	d := link.Counters{Iface: "eth0", RxPackets: 7, RxDropped: 1}
	if n := undelivered(d, 10, "off"); n != 2 {
		t.Errorf("coalescing off: %d undelivered, want 2", n)
	}
	if n := undelivered(d, 10, "rx-gro"); n != 0 {
		t.Errorf("coalescing on: %d undelivered, want 0", n)
	}
	if n := undelivered(link.Counters{RxPackets: 12}, 10, "off"); n != 0 {
		t.Errorf("more received than sent (other traffic): %d undelivered, want 0", n)
	}
}

// The scenario's timeout bounds each attempt; WithCaseTimeout only lowers it.
func TestCaseTimeoutFromScenario(t *testing.T) {
	tg := &fakeTarget{script: app(0)}
	start := time.Now()
	res := runOne(t, tg, "name: t\ntargets: [fake]\ntimeout: 3s\nstartup: {budget: 2s}\nsteps: [{wait: 2s}, {expect_output: {contains: never, within: 10s}}]\n", WithRetries(0))
	if res.Verdict != InfraError || !strings.Contains(res.Reason, "interrupted: the case did not finish within its timeout of 3s") || time.Since(start) > 10*time.Second {
		t.Fatalf("verdict %s after %s: %s", res.Verdict, time.Since(start), res.Reason)
	}
	res = runOne(t, &fakeTarget{script: app(0)}, "name: t\ntargets: [fake]\ntimeout: 1m\nstartup: {budget: 2s}\nsteps: [{wait: 2s}]\n", WithRetries(0), WithCaseTimeout(500*time.Millisecond))
	if res.Verdict != InfraError || !strings.Contains(res.Reason, "timeout of 500ms") {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
}
