package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/schemas"
)

// TestGateListsStaticProblemsOnce: old-glibc through the gate's static
// check (the system target: the cases stop before booting) with every bundled scenario: refused, and each glibc problem is
// in decision.json once (its static_checks), not once per scenario; so
// in the attestation and in report.html; decision.json validates.
func TestGateListsStaticProblemsOnce(t *testing.T) {
	images := testenv.ImagesDir(t)
	root := testenv.RepoRoot(t)
	reg := testenv.Registry(t)
	cand := reg.Host + "/pcapwatch:candidate"
	if _, errOut, code := runHilStderr(t, "registry", "push", filepath.Join(images, "old-glibc"), cand); code != 0 {
		t.Fatalf("push: %s", errOut)
	}
	rep := t.TempDir()
	out, errOut, code := runHilStderr(t, "gate", "--image", cand, "--target", "system", "--promote", "latest",
		"--scenarios", filepath.Join(root, "scenarios"), "--report", rep)
	if code != 1 || !strings.Contains(out, "REFUSED") {
		t.Fatalf("gate on old-glibc: exit %d, want 1 (refused)\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(filepath.Join(rep, "decision.json"))
	if err != nil {
		t.Fatal(err)
	}
	validates(t, "decision.json", schemas.Decision, string(b))
	type staticCheck struct {
		Platform string   `json:"platform"`
		OK       bool     `json:"ok"`
		Problems []string `json:"problems"`
	}
	var dec struct {
		Result struct {
			StaticChecks []staticCheck `json:"static_checks"`
			Outcomes     []struct{ Reason string }
		}
	}
	if err := json.Unmarshal(b, &dec); err != nil {
		t.Fatal(err)
	}
	// Seven cases, one platform: each distinct check once (burst-100k
	// runs the app with other arguments: a check of its own), not once
	// per case.
	sc := dec.Result.StaticChecks
	if len(dec.Result.Outcomes) < 5 || len(sc) == 0 || len(sc) >= len(dec.Result.Outcomes) {
		t.Fatalf("decision.json: %d outcomes and %d static checks; want each distinct check once", len(dec.Result.Outcomes), len(sc))
	}
	for _, c := range sc {
		if c.Platform != "linux/arm/v7" || c.OK || len(c.Problems) != 1 || !strings.Contains(c.Problems[0], "GLIBC_2.34") {
			t.Errorf("decision.json static check %+v: want a failed check of linux/arm/v7 naming GLIBC_2.34", c)
		}
	}
	att, _, code := runHilStderr(t, "attest", "show", "--json", cand)
	if code != 0 && code != 1 { // 1: the attestation says FAILED
		t.Fatalf("attest show: exit %d", code)
	}
	var shown struct {
		Attestations []struct {
			Statement struct {
				Predicate struct {
					StaticChecks []staticCheck `json:"static_checks"`
				} `json:"predicate"`
			} `json:"statement"`
		}
	}
	if err := json.Unmarshal([]byte(att), &shown); err != nil || len(shown.Attestations) == 0 {
		t.Fatalf("attest show --json: %v\n%s", err, att)
	}
	n := 0
	for _, a := range shown.Attestations {
		n += len(a.Statement.Predicate.StaticChecks)
	}
	if n != len(sc) {
		t.Errorf("the attestations list %d static checks, decision.json %d", n, len(sc))
	}
	html, err := os.ReadFile(filepath.Join(rep, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(html), `<section class="check"`); n != len(sc) {
		t.Errorf("report.html has %d static check sections, decision.json %d", n, len(sc))
	}
}
