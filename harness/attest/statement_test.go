package attest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/testenv"
)

func pinnedFor(t *testing.T) promote.Pinned {
	t.Helper()
	h := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("12", 32)}
	d, err := name.NewDigest("registry.lan/pcapwatch@" + h.String())
	if err != nil {
		t.Fatal(err)
	}
	return promote.Pinned{Ref: "registry.lan/pcapwatch:candidate", Digest: d,
		Descriptor: v1.Descriptor{MediaType: "application/vnd.oci.image.index.v1+json", Digest: h, Size: 300},
		Required:   []v1.Platform{{OS: "linux", Architecture: "arm", Variant: "v7"}}}
}

func decisionWith(outcomes []promote.Outcome, failures []promote.Outcome) *promote.Decision {
	return &promote.Decision{Version: "v0.1.0+gabc", Candidate: "registry.lan/pcapwatch:candidate", Failures: failures,
		Result: promote.Result{Outcomes: outcomes, Targets: []string{"system", "user"}, Started: time.Unix(1700000000, 0), Finished: time.Unix(1700000060, 0),
			Fixtures:      map[string]string{"dhcp.pcap": strings.Repeat("ab", 32), "extra.pcap": strings.Repeat("99", 32)},
			Configuration: []promote.Resource{{Name: "dhcp.yaml", Kind: "scenario", Digest: map[string]string{"sha256": strings.Repeat("cd", 32)}}, {Name: "dhcp.pcap", Kind: "fixture", Digest: map[string]string{"sha256": strings.Repeat("ab", 32)}}, {Name: "qemu-system", Kind: "emulator", Annotations: map[string]string{"version": "QEMU emulator version 7.2.19"}}}}}
}

// The statement parses back through in-toto's own Go types (the
// Statement and the test-result predicate, unknown fields refused) with
// every field the predicate defines, and the JSON uses in-toto's names.
func TestStatementsAreInTotoTestResults(t *testing.T) {
	pass := promote.Outcome{Platform: "linux/arm/v7", Target: "system", Board: "virt", Scenario: "dhcp", Verdict: promote.Pass}
	warn := promote.Outcome{Platform: "linux/arm/v7", Target: "user", Scenario: "capture", Verdict: promote.Unsupported, Optional: true}
	d := decisionWith([]promote.Outcome{pass, warn}, nil)
	tool := promote.Resource{Name: "hil", Kind: "hil", Digest: map[string]string{"sha256": strings.Repeat("0f", 32)}, Annotations: map[string]string{"version": "v0.1.0+gabc"}}
	tr, det, err := Statements(pinnedFor(t), d, Run{URL: "https://github.com/acme/app/actions/runs/42", Tool: &tool})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	pred, _ := generic["predicate"].(map[string]any)
	for _, k := range []string{"_type", "subject", "predicateType", "predicate"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("statement JSON lacks %q: %s", k, raw)
		}
	}
	for _, k := range []string{"result", "configuration", "url", "passedTests", "warnedTests"} {
		if _, ok := pred[k]; !ok {
			t.Errorf("predicate JSON lacks %q: %s", k, raw)
		}
	}

	st, err := ParseStatement(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseTestResult(st)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetResult() != Warned || got.GetUrl() != "https://github.com/acme/app/actions/runs/42" {
		t.Errorf("result %q url %q, want WARNED and the run", got.GetResult(), got.GetUrl())
	}
	if p := got.GetPassedTests(); len(p) != 1 || p[0] != "dhcp/system/virt/linux/arm/v7" {
		t.Errorf("passedTests %v", p)
	}
	if w := got.GetWarnedTests(); len(w) != 1 || w[0] != "capture/user//linux/arm/v7" {
		t.Errorf("warnedTests %v", w)
	}
	if len(got.GetFailedTests()) != 0 {
		t.Errorf("failedTests %v", got.GetFailedTests())
	}
	var names []string
	for _, c := range got.GetConfiguration() {
		names = append(names, c.GetAnnotations().GetFields()["kind"].GetStringValue()+":"+c.GetName())
	}
	// The tester first; each input once (dhcp.pcap is listed by the
	// runner and replayed); extra.pcap was only replayed.
	want := "hil:hil scenario:dhcp.yaml fixture:dhcp.pcap fixture:extra.pcap emulator:qemu-system"
	if strings.Join(names, " ") != want {
		t.Errorf("configuration = %s\nwant            %s", strings.Join(names, " "), want)
	}
	if s := st.GetSubject(); len(s) != 1 || s[0].GetName() != "registry.lan/pcapwatch" || s[0].GetDigest()["sha256"] != strings.Repeat("12", 32) {
		t.Errorf("subject %v", s)
	}

	dr, _ := Marshal(det)
	dst, err := ParseStatement(dr)
	if err != nil {
		t.Fatal(err)
	}
	detail, err := ParseDetail(dst)
	if err != nil || detail.Result != Warned || detail.HIL.Version != "v0.1.0+gabc" || len(detail.Outcomes) != 2 || detail.Outcomes[0].Board != "virt" {
		t.Errorf("detail %+v, %v", detail, err)
	}
}

func TestTally(t *testing.T) {
	pass := promote.Outcome{Platform: "linux/arm/v7", Target: "system", Board: "virt", Scenario: "a", Verdict: promote.Pass}
	fail := promote.Outcome{Platform: "linux/arm/v7", Target: "system", Board: "virt", Scenario: "b", Verdict: promote.Fail}
	optional := promote.Outcome{Platform: "linux/arm/v7", Target: "user", Scenario: "c", Verdict: promote.Unsupported, Optional: true}
	for _, c := range []struct {
		name                    string
		outcomes, failures      []promote.Outcome
		result                  string
		passed, warned, failedN int
	}{
		{"all pass", []promote.Outcome{pass}, nil, Passed, 1, 0, 0},
		{"optional unsupported warns", []promote.Outcome{pass, optional}, nil, Warned, 1, 1, 0},
		{"a fail fails", []promote.Outcome{pass, fail}, []promote.Outcome{fail}, Failed, 1, 0, 1},
		{"nothing ran is no pass", nil, nil, Failed, 0, 0, 1},
		{"a retried case counts once", []promote.Outcome{pass, pass}, nil, Passed, 1, 0, 0},
	} {
		res, p, w, f := Tally(decisionWith(c.outcomes, c.failures))
		if res != c.result || len(p) != c.passed || len(w) != c.warned || len(f) != c.failedN {
			t.Errorf("%s: %s %v %v %v", c.name, res, p, w, f)
		}
	}
}

func TestParseTestResultRejects(t *testing.T) {
	tr, _, err := Statements(pinnedFor(t), decisionWith([]promote.Outcome{{Platform: "linux/arm/v7", Target: "system", Scenario: "a", Verdict: promote.Pass}}, nil), Run{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := Marshal(tr)
	for what, edit := range map[string]func(string) string{
		"a lower-case result": func(s string) string { return strings.Replace(s, `"PASSED"`, `"pass"`, 1) },
		"an unknown field":    func(s string) string { return strings.Replace(s, `"result":`, `"verdict":"ok", "result":`, 1) },
		"no configuration":    func(s string) string { return strings.Replace(s, `"configuration":`, `"ignored":`, 1) },
		"no subject digest": func(s string) string {
			return strings.Replace(s, `"digest":{"sha256":"`+strings.Repeat("12", 32)+`"}`, `"digest":{}`, 1)
		},
		"a short digest": func(s string) string { return strings.Replace(s, strings.Repeat("12", 32), "1212", 1) },
	} {
		edited := edit(strings.ReplaceAll(string(raw), ", ", ","))
		if edited == strings.ReplaceAll(string(raw), ", ", ",") {
			t.Fatalf("%s: the edit changed nothing in %s", what, raw)
		}
		st, err := ParseStatement([]byte(edited))
		if err == nil {
			_, err = ParseTestResult(st)
		}
		if err == nil {
			t.Errorf("%s: accepted %s", what, edited)
		}
	}
}

func TestConfigurationRefusesLocalPaths(t *testing.T) {
	d := decisionWith([]promote.Outcome{{Platform: "linux/arm/v7", Target: "system", Scenario: "a", Verdict: promote.Pass}}, nil)
	d.Result.Configuration = append(d.Result.Configuration, promote.Resource{Name: "/home/ci/scenarios/a.yaml", Kind: "scenario"})
	if _, _, err := Statements(pinnedFor(t), d, Run{}); err == nil || !strings.Contains(err.Error(), "path on this host") {
		t.Fatalf("Statements with a local path: %v", err)
	}
}

func TestTestNameRoundTrip(t *testing.T) {
	o := promote.Outcome{Scenario: "dhcp", Target: "device@pi-lab-1", Board: "pi3b+", Platform: "linux/arm/v7"}
	s, tg, b, p, err := ParseTestName(TestName(o))
	if err != nil || s != "dhcp" || tg != "device@pi-lab-1" || b != "pi3b+" || p != "linux/arm/v7" {
		t.Fatalf("%q -> %q %q %q %q %v", TestName(o), s, tg, b, p, err)
	}
	if _, _, _, _, err := ParseTestName("dhcp/system"); err == nil {
		t.Error("a two-part name parsed")
	}
	// A board's OS word size is spelled with a dash: the fields stay apart.
	o = promote.Outcome{Scenario: "startup", Target: "system", Board: "pi4/64", Platform: "linux/arm64"}
	if got := TestName(o); got != "startup/system/pi4-64/linux/arm64" {
		t.Errorf("TestName = %q", got)
	}
	if _, _, b, p, _ := ParseTestName(TestName(o)); b != "pi4-64" || p != "linux/arm64" {
		t.Errorf("parsed board %q platform %q", b, p)
	}
	r, err := Requirements{Boards: []string{"pi4/64", "pi0w"}}.normalize()
	if err != nil || strings.Join(r.Boards, ",") != "pi4-64,pi0w" {
		t.Errorf("required boards %v, %v", r.Boards, err)
	}
}

// Board profiles in the configuration: by the digest of what they say,
// never by where the profile file lies.
func TestBoardConfiguration(t *testing.T) {
	cat, err := board.Builtin().WithProfiles("/home/someone/lab/boards.yaml", []byte(`boards:
  - name: acme-a7
    model: Acme A7
    cpu: Cortex-A7
    memory: 1GiB
    isa: {arch: v7, fp: VFPv4, simd: NEONv2, idiv: true}
    os:
      32:
        platform: linux/arm/v7
        system: {emulator: qemu-system-arm, machine: virt, cpu: cortex-a7, kernel: armhf}
        user: {emulator: qemu-arm, cpu: cortex-a7}
`))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := cat.LookupList("pi3b+", "acme-a7", "pi3", "pi3b+/32")
	if err != nil {
		t.Fatal(err)
	}
	rs := BoardConfiguration(bs)
	if len(rs) != 3 {
		t.Fatalf("%d resources for 3 distinct boards: %+v", len(rs), rs)
	}
	if rs[0].Name != "pi3b+" || rs[0].Kind != "board" || len(rs[0].Digest["sha256"]) != 64 || rs[0].Annotations["source"] != "built-in" {
		t.Errorf("pi3b+: %+v", rs[0])
	}
	if rs[1].Annotations["source"] != "boards.yaml:2" {
		t.Errorf("a profile file's board names the file by its base name: %+v", rs[1])
	}
	if rs[2].Digest["sha256"] == rs[0].Digest["sha256"] {
		t.Error("pi3b+/32 and pi3b+ have one digest")
	}
	again, _ := board.Builtin().WithProfiles("/elsewhere/boards.yaml", []byte(strings.ReplaceAll(`boards:
  - name: acme-a7
    model: Acme A7
    cpu: Cortex-A7
    memory: 1GiB
    isa: {arch: v7, fp: VFPv4, simd: NEONv2, idiv: true}
    os:
      32:
        platform: linux/arm/v7
        system: {emulator: qemu-system-arm, machine: virt, cpu: cortex-a7, kernel: armhf}
        user: {emulator: qemu-arm, cpu: cortex-a7}
`, "\t", "  ")))
	b2, _ := again.Lookup("acme-a7")
	if BoardConfiguration([]board.Board{b2})[0].Digest["sha256"] != rs[1].Digest["sha256"] {
		t.Error("the same profile from another directory has another digest")
	}
}

// The configuration of a real scenario directory: every file by its
// sha256 and name relative to the directory, every fixture by digest,
// the kernel package, the init and the emulator from the boot facts;
// nothing names a path on this host.
func TestRunConfigurationOfTheBundledScenarios(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "scenarios")
	scs, err := scenario.LoadFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	results := []scenario.Result{{Device: target.Info{"target": "system", "emulator": "QEMU emulator version 7.2.19", "kernel": "6.1.0-50-armmp",
		"kernel_package": "linux-image-6.1.0-50-armmp_6.1.176-1_armhf", "init": "c89ebb4cc3bc29ac", "console_log": "/root/.cache/hil/logs/x.log"}},
		{Device: target.Info{"target": "user", "emulator": "/usr/bin/qemu-arm-static", "emulator_version": "qemu-arm version 7.2.19"}}}
	conf := RunConfiguration(dir, scs, results)
	byName := map[string]promote.Resource{}
	for _, r := range conf {
		if IsLocalPath(r.Name) {
			t.Errorf("%s entry names a local path: %s", r.Kind, r.Name)
		}
		byName[r.Kind+":"+r.Name] = r
	}
	for _, sc := range scs {
		rel, _ := filepath.Rel(dir, sc.Pos.File)
		r, ok := byName["scenario:"+rel]
		b, _ := os.ReadFile(sc.Pos.File)
		if !ok || r.Digest["sha256"] != sha256Hex(b) {
			t.Errorf("scenario %s: %+v", rel, r)
		}
		for _, st := range sc.Steps {
			if st.Replay != nil {
				if f, ok := byName["fixture:"+st.Replay.Fixture]; !ok || len(f.Digest["sha256"]) != 64 {
					t.Errorf("fixture %s of %s: %+v", st.Replay.Fixture, rel, f)
				}
			}
		}
	}
	if k := byName["kernel:linux-image-6.1.0-50-armmp_6.1.176-1_armhf"]; k.Annotations["release"] != "6.1.0-50-armmp" {
		t.Errorf("kernel entry %+v", k)
	}
	if e := byName["emulator:qemu-system"]; e.Annotations["version"] != "QEMU emulator version 7.2.19" {
		t.Errorf("system emulator entry %+v", e)
	}
	if e := byName["emulator:qemu-arm-static"]; e.Annotations["version"] != "qemu-arm version 7.2.19" {
		t.Errorf("user emulator entry %+v", e)
	}
	if _, ok := byName["init:hil-init"]; !ok {
		t.Error("no init entry")
	}
}

func TestScrubJSON(t *testing.T) {
	roots := []Root{{"/work/ci/scenarios", "."}, {"/work/ci", "$WORK"}, {"/root/.cache/hil", "$HIL_CACHE"}}
	in := `{"file":"/work/ci/scenarios/dhcp.yaml","log":"/root/.cache/hil/logs/a.log","reason":"no file /work/ci/x.pcap","path":"/lib/ld-linux-armhf.so.3","n":1.5}`
	out, err := ScrubJSON([]byte(in), roots)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"file":"./dhcp.yaml","log":"$HIL_CACHE/logs/a.log","n":1.5,"path":"/lib/ld-linux-armhf.so.3","reason":"no file $WORK/x.pcap"}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}
