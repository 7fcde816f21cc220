package report

import (
	"bytes"
	"context"
	"encoding/xml"
	stdhtml "html"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/testenv"
)

// sampleResults is one case of each verdict, shaped like the runner's.
func sampleResults() []scenario.Result {
	t0 := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	step := func(i int, kind scenario.StepKind, desc string, at, d time.Duration, v scenario.Verdict, msg string) scenario.StepResult {
		return scenario.StepResult{Index: i, Kind: kind, Desc: desc, Start: t0.Add(at), Duration: d, Verdict: v, Message: msg}
	}
	base := func(name, tgt string, v scenario.Verdict, reason string) scenario.Result {
		return scenario.Result{
			Scenario: name, File: "scenarios/" + name + ".yaml", Target: tgt, Platform: "linux/arm/v7",
			Verdict: v, Reason: reason, FailedStep: -1, Attempts: 1, Start: t0, Duration: 4 * time.Second,
			ImageRef: "oci:build/images/pcapwatch", ImageDigest: "sha256:1111", ManifestDigest: "sha256:2222",
			Device: target.Info{"qemu_version": "7.2.15", "kernel_version": "6.1.0-41-armmp", "boot": "warm"},
		}
	}
	pass := base("arp-sweep", "system", scenario.Pass, "")
	pass.Fixtures = map[string]string{"arp-sweep": "b836cd5983f66b875374e7bf6ce8093b46cada74d0c5c5e06b23f0b5a50a4646"}
	pass.Steps = []scenario.StepResult{
		step(-1, scenario.PhaseBoot, "boot on system", 0, 300*time.Millisecond, scenario.Pass, ""),
		step(-1, scenario.PhaseReady, "ready", 300*time.Millisecond, 100*time.Millisecond, scenario.Pass, `ready after 0.4s: "ready iface=eth0"`),
		step(0, scenario.StepReplay, "replay arp-sweep (x4)", 400*time.Millisecond, 700*time.Millisecond, scenario.Pass, "294 frames"),
		step(1, scenario.StepExpectOutput, "expect 9 devices", 1100*time.Millisecond, 2*time.Second, scenario.Pass, "9 lines"),
	}
	pass.Steps[2].Warnings = []string{"the device's interface eth0 received 290 of the 294 frames sent (4 dropped)"}
	pass.Steps[2].Replay = &scenario.ReplayStats{Fixture: "arp-sweep", Schedule: "x4", FramesSent: 294, BytesSent: 17640, Elapsed: 690 * time.Millisecond, PPS: 426, GapErrorP50: 40 * time.Microsecond, GapErrorP99: 300 * time.Microsecond, GapErrorMax: time.Millisecond}
	pass.Output = []target.Line{
		{Stream: target.Console, Text: "[    0.000000] Booting Linux on physical CPU 0x0", Time: t0.Add(10 * time.Millisecond)},
		{Stream: target.Stdout, Text: "ready iface=eth0", Time: t0.Add(400 * time.Millisecond)},
		{Stream: target.Stdout, Text: `{"event":"device_seen","mac":"3c:22:fb:11:22:33","ip":"192.168.1.10"}`, Time: t0.Add(time.Second)},
		{Stream: target.Stderr, Text: "<script>alert('x')</script> & stderr", Time: t0.Add(time.Second)},
	}
	fail := base("dns-names", "system", scenario.Fail, "step 2 (expect output json {event: \"dns_query\"} count == 12 within 5s) at scenarios/dns-names.yaml:9:5: expected count == 12, saw 11\nlast app output:\n  [stdout] ready iface=eth0")
	fail.FailedStep = 1
	fail.Steps = []scenario.StepResult{step(1, scenario.StepExpectOutput, "expect 12 queries", time.Second, 3*time.Second, scenario.Fail, "expected count == 12, saw 11")}
	uns := base("arp-sweep", "user", scenario.Unsupported, "user target does not support packet capture: SIOCETHTOOL(ETHTOOL_GET_TS_INFO) ioctl failed: Function not implemented")
	infra := base("burst-100k", "system", scenario.InfraError, "boot: infrastructure: qemu-system-arm exited: signal: killed")
	infra.Attempts, infra.Retried = 2, []string{"attempt 1: boot: infrastructure: qemu-system-arm exited: signal: killed"}
	return []scenario.Result{pass, fail, uns, infra}
}

func TestJUnit(t *testing.T) {
	rep := New(sampleResults())
	var buf bytes.Buffer
	if err := rep.WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("JUnit output is not XML: %v\n%s", err, buf.String())
	}
	if got.Tests != 4 || got.Failures != 1 || got.Errors != 1 || got.Skipped != 1 {
		t.Errorf("totals tests=%d failures=%d errors=%d skipped=%d, want 4/1/1/1", got.Tests, got.Failures, got.Errors, got.Skipped)
	}
	if len(got.Suites) != 2 {
		t.Fatalf("want a suite per target×platform (2), got %d", len(got.Suites))
	}
	cases := map[string]junitCase{}
	for _, s := range got.Suites {
		for _, c := range s.Cases {
			cases[c.Classname+"/"+c.Name] = c
		}
	}
	pass, ok := cases["hil.system.linux_arm_v7/arp-sweep"]
	if !ok {
		t.Fatalf("no testcase for arp-sweep on system; have %v", cases)
	}
	props := map[string]string{}
	for _, p := range pass.Properties {
		props[p.Name] = p.Value
	}
	for k, v := range map[string]string{
		"image.digest": "sha256:1111", "platform": "linux/arm/v7", "target": "system",
		"device.qemu_version": "7.2.15", "device.kernel_version": "6.1.0-41-armmp",
		"fixture.arp-sweep.sha256": "b836cd5983f66b875374e7bf6ce8093b46cada74d0c5c5e06b23f0b5a50a4646",
	} {
		if props[k] != v {
			t.Errorf("property %s = %q, want %q", k, props[k], v)
		}
	}
	if !strings.Contains(pass.SystemOut, "device_seen") || !strings.Contains(pass.SystemOut, "[console] [    0.000000] Booting Linux") ||
		!strings.Contains(pass.SystemErr, "<script>alert('x')</script> & stderr") || strings.Contains(pass.SystemOut, "stderr") {
		t.Errorf("system-out must carry the app's stdout and the console, system-err its stderr: %q / %q", pass.SystemOut, pass.SystemErr)
	}
	// A passing step's warning (frames not accounted for) is in the
	// case's system-err, never only in results.json.
	if want := "hil: warning: step 1 (replay arp-sweep (x4)): the device's interface eth0 received 290 of the 294 frames sent (4 dropped)\n"; !strings.Contains(pass.SystemErr, want) {
		t.Errorf("system-err %q lacks the step's warning %q", pass.SystemErr, want)
	}
	if f := cases["hil.system.linux_arm_v7/dns-names"].Failure; f == nil || !strings.Contains(f.Message, "expected count == 12, saw 11") {
		t.Errorf("failure element: %+v", f)
	}
	if e := cases["hil.system.linux_arm_v7/burst-100k"].Error; e == nil || e.Type != "infra-error" || !strings.Contains(e.Text, "retried: attempt 1") {
		t.Errorf("error element: %+v", e)
	}
	if s := cases["hil.user.linux_arm_v7/arp-sweep"].Skipped; s == nil || !strings.Contains(s.Message, "SIOCETHTOOL") {
		t.Errorf("skipped element: %+v", s)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	rep := New(sampleResults(), WithVersion("test"))
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if back.Summary != (scenario.Summary{Total: 4, Pass: 1, Fail: 1, Unsupported: 1, InfraError: 1}) {
		t.Errorf("summary %+v", back.Summary)
	}
	// Failures first: fail, infra-error, unsupported, pass.
	var order []string
	for _, r := range back.Results {
		order = append(order, string(r.Verdict))
	}
	if strings.Join(order, " ") != "fail infra-error unsupported pass" {
		t.Errorf("results in the order %v, want failures first", order)
	}
	last := back.Results[3]
	if len(back.Results) != 4 || last.Scenario != "arp-sweep" || last.Steps[2].Replay.FramesSent != 294 ||
		last.Steps[2].Replay.GapErrorP99 != 300*time.Microsecond || last.Duration != 4*time.Second || back.Results[0].Steps[0].Duration != 3*time.Second {
		t.Errorf("results did not round-trip: %+v", back.Results)
	}
	if back.ImageDigest != "sha256:1111" || back.HilVersion != "test" {
		t.Errorf("header %q %q", back.ImageDigest, back.HilVersion)
	}
}

// TestHTMLInChromium renders the report in Debian's headless Chromium,
// takes a screenshot and reads the DOM back: the page must be
// self-contained, show the verdict table, and escape app output.
func TestHTMLInChromium(t *testing.T) {
	testenv.RequireCommand(t, "/usr/bin/chromium", "chromium")
	dir := t.TempDir()
	rep := New(sampleResults())
	paths, err := rep.WriteDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("WriteDir wrote %v", paths)
	}
	html, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"http://", "https://", "<script", "<link", "src="} {
		if bytes.Contains(html, []byte(ext)) {
			t.Errorf("report.html is not self-contained: it has %q", ext)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	chromium := func(args ...string) []byte {
		t.Helper()
		profile := t.TempDir()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-dev-shm-usage", "--user-data-dir=" + profile, "--window-size=1280,900"}
		cmd := exec.CommandContext(ctx, "/usr/bin/chromium", append(base, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+profile)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
		return out
	}
	url := "file://" + filepath.Join(dir, HTMLFile)

	shot := filepath.Join(dir, "report.png")
	chromium("--screenshot="+shot, url)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 900 {
		t.Errorf("screenshot is %v, want 1280x900", b)
	}
	// A blank or unstyled page has a handful of colours; the rendered report
	// has the dark header, verdict badges and table lines.
	colours := map[uint32]bool{}
	for y := 0; y < img.Bounds().Dy(); y += 3 {
		for x := 0; x < img.Bounds().Dx(); x += 3 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[(r>>8)<<16|(g>>8)<<8|b>>8] = true
		}
	}
	if len(colours) < 20 {
		t.Errorf("screenshot has %d distinct colours: the page did not render", len(colours))
	}
	if os.Getenv("HIL_KEEP_SCREENSHOT") != "" {
		data, _ := os.ReadFile(shot)
		os.WriteFile(os.Getenv("HIL_KEEP_SCREENSHOT"), data, 0o644)
	}

	dom := string(chromium("--dump-dom", url))
	if !strings.Contains(dom, `<table id="verdicts">`) {
		t.Fatalf("the DOM has no verdict table:\n%.2000s", dom)
	}
	if n := strings.Count(dom, `class="verdict-row"`); n != 4 {
		t.Errorf("verdict table has %d rows, want 4", n)
	}
	for _, want := range []string{"v-pass", "v-fail", "v-unsupported", "v-infra-error", "expected count == 12, saw 11", "426", "Booting Linux", "&lt;script&gt;alert"} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}
}

// A suite that also runs broken variants mixes images: every row names its
// image, the header does not pretend there is one.
func TestHTMLMultiImage(t *testing.T) {
	rs := sampleResults()
	var one bytes.Buffer
	if err := New(rs).WriteHTML(&one); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(one.String(), "<th>Image</th>") {
		t.Error("single-image report has an image column")
	}
	rs[1].ImageRef, rs[1].ImageDigest = "oci:build/images/no-libpcap", "sha256:3333333333333333333333"
	var multi bytes.Buffer
	if err := New(rs).WriteHTML(&multi); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<th>Image</th>", "several images: see the table", ">no-libpcap<br>sha256:333333333333<", ">pcapwatch<br>sha256:1111<"} {
		if !strings.Contains(multi.String(), want) {
			t.Errorf("multi-image report lacks %q", want)
		}
	}
}

// A board is a dimension of every report: its own JUnit suite (name,
// classname and properties), a column in the HTML table, a field in
// results.json; reports of board-less runs stay as they were.
func TestReportsNameTheBoard(t *testing.T) {
	rs := sampleResults()[:2]
	plain := New(rs)
	var html, junit bytes.Buffer
	if err := plain.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html.String(), "<th>Board</th>") {
		t.Error("a run without boards has a board column")
	}
	on := func(r scenario.Result, b, p string) scenario.Result {
		r.Board, r.Platform = b, p
		return r
	}
	rs = []scenario.Result{on(rs[0], "pi3b+", "linux/arm64"), on(rs[0], "pi4/32", "linux/arm/v7"), on(rs[1], "pi3b+", "linux/arm64")}
	rep := New(rs)
	html.Reset()
	if err := rep.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	page := stdhtml.UnescapeString(html.String()) // html/template writes + as &#43;
	for _, want := range []string{"<th>Board</th>", `<td class="board">pi4/32</td>`, "system · board pi3b+ · linux/arm64"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if err := rep.WriteJUnit(&junit); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []struct {
			Name  string `xml:"name,attr"`
			Props []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"properties>property"`
			Cases []struct {
				Class string `xml:"classname,attr"`
				Props []struct {
					Name  string `xml:"name,attr"`
					Value string `xml:"value,attr"`
				} `xml:"properties>property"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(junit.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var names, classes []string
	for _, s := range doc.Suites {
		names = append(names, s.Name)
		for _, c := range s.Cases {
			classes = append(classes, c.Class)
			found := false
			for _, p := range c.Props {
				found = found || p.Name == "board" && p.Value != ""
			}
			if !found {
				t.Errorf("case %s has no board property", c.Class)
			}
		}
	}
	if got := strings.Join(names, " "); got != "hil.system.pi3b+.linux/arm64 hil.system.pi4/32.linux/arm/v7" {
		t.Errorf("suites %s", got)
	}
	if got := strings.Join(classes, " "); got != "hil.system.pi3b+.linux_arm64 hil.system.pi3b+.linux_arm64 hil.system.pi4_32.linux_arm_v7" {
		t.Errorf("classnames %s", got)
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"board": "pi4/32"`) {
		t.Errorf("results.json names no board")
	}
}
