package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	junit "github.com/joshdk/go-junit"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/schemas"
)

// jenkinsTimestamp is the pattern the JUnit schema Jenkins validates
// reports with (junit-4.xsd, ISO8601_DATETIME_PATTERN): no zone suffix.
var jenkinsTimestamp = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$`)

// The JUnit file as a consumer reads it (go-junit, the parser CI tools
// built on Go use): each verdict where Jenkins and GitLab look for it,
// the app's stderr in system-err, its stdout and the console in
// system-out; every testsuite timestamp as the Jenkins schema wants it.
func TestJUnitAsJenkinsAndGitLabReadIt(t *testing.T) {
	var buf bytes.Buffer
	if err := New(sampleResults()).WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	suites, err := junit.Ingest(buf.Bytes())
	if err != nil {
		t.Fatalf("go-junit cannot read the report: %v\n%s", err, buf.String())
	}
	status := map[string]junit.Test{}
	for _, s := range suites {
		for _, tc := range s.Tests {
			status[tc.Classname+"/"+tc.Name] = tc
		}
	}
	for key, want := range map[string]junit.Status{
		"hil.system.linux_arm_v7/arp-sweep":  junit.StatusPassed,
		"hil.system.linux_arm_v7/dns-names":  junit.StatusFailed,
		"hil.system.linux_arm_v7/burst-100k": junit.StatusError,
		"hil.user.linux_arm_v7/arp-sweep":    junit.StatusSkipped,
	} {
		if got := status[key]; got.Status != want {
			t.Errorf("%s: status %q, want %q (%+v)", key, got.Status, want, got)
		}
	}
	pass := status["hil.system.linux_arm_v7/arp-sweep"]
	if !strings.Contains(pass.SystemErr, "<script>alert('x')</script> & stderr") || strings.Contains(pass.SystemOut, "& stderr") {
		t.Errorf("the app's stderr is not (only) in system-err: out %q err %q", pass.SystemOut, pass.SystemErr)
	}
	if !strings.Contains(pass.SystemOut, `"event":"device_seen"`) || !strings.Contains(pass.SystemOut, "[console] [    0.000000] Booting Linux") {
		t.Errorf("system-out lacks the app's stdout or the console: %q", pass.SystemOut)
	}
	if e, ok := status["hil.system.linux_arm_v7/dns-names"].Error.(junit.Error); !ok || !strings.Contains(e.Message, "expected count == 12, saw 11") {
		t.Errorf("the failure's message: %#v", status["hil.system.linux_arm_v7/dns-names"].Error)
	}
	// go-junit does not read suite attributes: the timestamps from the XML.
	var doc struct {
		Suites []struct {
			Timestamp string `xml:"timestamp,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range doc.Suites {
		if !jenkinsTimestamp.MatchString(s.Timestamp) {
			t.Errorf("testsuite timestamp %q: Jenkins' schema wants %s", s.Timestamp, jenkinsTimestamp)
		}
	}
	if len(doc.Suites) == 0 {
		t.Error("no testsuite")
	}
}

// withStaticCheck gives the fail and the infra-error case one static
// check that found ten problems, and the pass case another that found
// none.
func withStaticChecks(rs []scenario.Result) []scenario.Result {
	var problems []string
	for i := 0; i < 10; i++ {
		problems = append(problems, "pcapwatch needs GLIBC_2.3"+string(rune('0'+i))+" but the image's libc.so.6 provides up to GLIBC_2.28")
	}
	bad := &scenario.StaticCheck{ImageDigest: "sha256:1111", ManifestDigest: "sha256:2222", Platform: "linux/arm/v7", Problems: problems, Summary: "platform linux/arm/v7: /opt/pcapwatch"}
	good := &scenario.StaticCheck{ImageDigest: "sha256:1111", ManifestDigest: "sha256:2222", Platform: "linux/arm/v7", OK: true, Summary: "OK: the program can start"}
	for i := range rs {
		switch rs[i].Verdict {
		case scenario.Fail, scenario.InfraError:
			c := *bad // an equal copy per case, as the runner makes them
			rs[i].StaticCheck = &c
		case scenario.Pass:
			rs[i].StaticCheck = good
		}
	}
	return rs
}

// Ten problems of one platform's check are listed once, as a list, and
// every case names its check; the JSON round-trips the reference.
func TestStaticChecksListedOnce(t *testing.T) {
	dir := t.TempDir()
	rep := New(withStaticChecks(sampleResults()))
	if len(rep.StaticChecks) != 2 || rep.StaticChecks[0].ID != "linux/arm/v7" || rep.StaticChecks[1].ID != "linux/arm/v7 #2" {
		t.Fatalf("static checks %+v, want the two distinct ones, named by platform", rep.StaticChecks)
	}
	if _, err := rep.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(filepath.Join(dir, HTMLFile))
	if n := strings.Count(string(html), "GLIBC_2.35 but the image"); n != 1 {
		t.Errorf("a problem appears %d times in the HTML, want once", n)
	}
	if n := strings.Count(string(html), `<ul class="problems">`); n != 1 {
		t.Errorf("%d problem lists, want one", n)
	}
	if n := strings.Count(string(html), `href="#static-linux-arm-v7"`); n != 2 {
		t.Errorf("%d cases link the failing check, want 2", n)
	}
	js, _ := os.ReadFile(filepath.Join(dir, JSONFile))
	if n := strings.Count(string(js), "GLIBC_2.35 but the image"); n != 1 {
		t.Errorf("a problem appears %d times in results.json, want once", n)
	}
	if err := schemas.Validate(schemas.Results, js); err != nil {
		t.Error(err)
	}
	back, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c := back.Results[0].StaticCheck; c == nil || len(c.Problems) != 10 || back.Results[0].StaticCheckID != "linux/arm/v7" {
		t.Errorf("the reference did not round-trip: %+v", back.Results[0])
	}
}

// The guest console log is copied into the report directory and linked;
// merging (ReadDir, then writing elsewhere) takes it along.
func TestConsoleLogCopiedAndLinked(t *testing.T) {
	cache := t.TempDir()
	log := filepath.Join(cache, "20261125-180000-1.console.log")
	if err := os.WriteFile(log, []byte("[    0.000000] Booting Linux\nhil-init: starting /opt/pcapwatch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs := sampleResults()
	for i := range rs {
		rs[i].Device = target.Info{"console_log": log, "boot_ms": 333.5, "ready_replayed": true, "pid": 4242}
	}
	// A board's case: its console log is named with the board, and its
	// board facts are typed as target.InfoKeys says.
	rs[0].Board = "pi3b+"
	rs[0].Device = target.Info{"console_log": log, "board": "pi3b+", "machine": "raspi3b", "cpu": "cortex-a53", "kernel_arch": "arm64", "memory_mb": 1024}
	if err := rs[0].Device.Validate(); err != nil {
		t.Error(err)
	}
	dir := t.TempDir()
	rep := New(rs)
	if _, err := rep.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	back, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range back.Results {
		b, err := os.ReadFile(r.ConsoleLog)
		if err != nil || !strings.Contains(string(b), "hil-init: starting") {
			t.Errorf("%s: console log %q not in the report directory: %v", r.ID(), r.ConsoleLog, err)
		}
		if !strings.HasPrefix(r.ConsoleLog, filepath.Join(dir, ConsoleDir)+"/") {
			t.Errorf("%s: console log %q is not under %s", r.ID(), r.ConsoleLog, dir)
		}
	}
	js, _ := os.ReadFile(filepath.Join(dir, JSONFile))
	if err := schemas.Validate(schemas.Results, js); err != nil {
		t.Error(err)
	}
	var doc map[string]any
	_ = json.Unmarshal(js, &doc)
	dev := doc["results"].([]any)[0].(map[string]any)["device"].(map[string]any)
	if dev["boot_ms"] != 333.5 || dev["ready_replayed"] != true || dev["pid"] != 4242.0 {
		t.Errorf("device facts are not typed in results.json: %v", dev)
	}
	if logs, _ := filepath.Glob(filepath.Join(dir, ConsoleDir, "*-pi3b_-*.log")); len(logs) != 1 {
		t.Errorf("console logs named with the board pi3b+: %v", logs)
	}
	html, _ := os.ReadFile(filepath.Join(dir, HTMLFile))
	if !strings.Contains(string(html), `class="console-log" href="console/01-`) {
		t.Error("report.html does not link the copied console log")
	}
	// A merge writes the report elsewhere: the logs go along.
	merged := t.TempDir()
	if _, err := New(back.Results).WriteDir(merged); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(merged, ConsoleDir, "*.log"))
	if len(logs) != len(rs) {
		t.Errorf("merged report has %d console logs, want %d", len(logs), len(rs))
	}
}

// An exit hil did not see reads "not observed (stopped by hil)" in the
// HTML, the JUnit properties and the JSON, never "exit 0".
func TestExitNotObservedEverywhere(t *testing.T) {
	rs := sampleResults()
	for i := range rs {
		ex := target.NotObserved("stopped by hil")
		rs[i].Exit = &ex
	}
	dir := t.TempDir()
	if _, err := New(rs).WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{HTMLFile, JUnitFile, JSONFile} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if !strings.Contains(string(b), "not observed (stopped by hil)") {
			t.Errorf("%s does not say the exit was not observed", f)
		}
		if strings.Contains(string(b), "exit 0") || strings.Contains(string(b), `"code": 0`) {
			t.Errorf("%s reads an exit hil did not see as exit 0", f)
		}
	}
}
