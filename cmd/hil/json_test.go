package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/schemas"
)

// TestJSONVerbsValidate runs the --json verbs that need no registry, board
// or namespace on real input and validates what they print against
// schemas/ (the others are validated where their tests run them: replay,
// record, boards, cache du, check, gate, attest, rollback; failures in
// TestJSONErrorObject). The merged results.json validates too.
func TestJSONVerbsValidate(t *testing.T) {
	images := testenv.ImagesDir(t)
	sample := "oci:" + filepath.Join(images, "pcapwatch")

	// Two shards of one run, for report merge.
	dir := t.TempDir()
	var shards []string
	for i := 1; i <= 2; i++ {
		r := scenario.Result{Scenario: "s" + string(rune('0'+i)), Target: "system", Platform: "linux/arm/v7", Verdict: scenario.Pass,
			ImageRef: sample, ImageDigest: "sha256:" + strings.Repeat("ab", 32), FailedStep: -1, Attempts: 1,
			Start: time.Date(2026, 12, 1, 4, 0, i, 0, time.UTC), Duration: time.Second}
		d := filepath.Join(dir, "shard"+string(rune('0'+i)))
		if _, err := report.New([]scenario.Result{r}, report.WithShard(scenario.Shard{Index: i, Count: 2}, 2),
			report.WithImage(sample, r.ImageDigest)).WriteDir(d); err != nil {
			t.Fatal(err)
		}
		shards = append(shards, d)
	}
	merged := filepath.Join(dir, "merged")

	for _, c := range []struct {
		args []string
		loc  string
		code int
	}{
		{[]string{"version", "--json"}, schemas.Def("version"), 0},
		{[]string{"kernel", "list", "--json"}, schemas.Def("kernel_list"), 0},
		{[]string{"image", "inspect", sample, "--json"}, schemas.Def("image_inspect"), 0},
		{[]string{"check", sample, "--json"}, schemas.Check, 0},
		{append([]string{"report", "merge", "--json", "--out", merged}, shards...), schemas.Def("report_merge"), 0},
	} {
		r := execHil(t, c.args...)
		if r.code != c.code {
			t.Errorf("hil %s: exit %d (%s), want %d", strings.Join(c.args, " "), r.code, r.errText, c.code)
			continue
		}
		validates(t, "hil "+strings.Join(c.args, " "), c.loc, r.stdout)
	}
	b, err := os.ReadFile(filepath.Join(merged, report.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	validates(t, "the merged results.json", schemas.Results, string(b))
}
