package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/scenario"
)

// shardReports splits the sample results into n shard reports the way a
// sharded run writes them (through results.json and back).
func shardReports(t *testing.T, n int) []Shard {
	t.Helper()
	rs := sampleResults()
	var cases []scenario.CaseKey
	for _, r := range rs {
		cases = append(cases, r.Key())
	}
	split := scenario.Split(cases, n, nil)
	var out []Shard
	for i := 1; i <= n; i++ {
		var mine []scenario.Result
		for j, r := range rs {
			if split[j] == i-1 {
				mine = append(mine, r)
			}
		}
		rep := New(mine, WithImage("oci:build/images/pcapwatch", "sha256:1111"), WithShard(scenario.Shard{Index: i, Count: n}, len(rs)), WithVersion("v1"))
		dir := filepath.Join(t.TempDir(), "shard")
		if _, err := rep.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		back, err := ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Shard{Name: dir, Report: back})
	}
	return out
}

// The shards' reports merge into the report a single run writes: the same
// cases, verdicts, summary, JUnit and HTML.
func TestMergeEqualsTheUnshardedReport(t *testing.T) {
	for _, n := range []int{1, 3, 6} { // 6 shards of 4 cases: two are empty
		merged, warnings, err := Merge(shardReports(t, n))
		if err != nil || len(warnings) > 0 {
			t.Fatalf("%d shards: %v %v", n, err, warnings)
		}
		single := New(sampleResults(), WithImage("oci:build/images/pcapwatch", "sha256:1111"), WithVersion("v1"))
		if merged.Summary != single.Summary || len(merged.Results) != len(single.Results) || merged.ImageDigest != "sha256:1111" || merged.Planned != 4 || len(merged.MergedFrom) != n {
			t.Fatalf("%d shards: merged %+v; single %+v", n, merged.Summary, single.Summary)
		}
		for i := range single.Results {
			a, b := merged.Results[i], single.Results[i]
			if a.Key() != b.Key() || a.Verdict != b.Verdict || a.Reason != b.Reason || len(a.Steps) != len(b.Steps) || len(a.Output) != len(b.Output) {
				t.Errorf("%d shards: case %d: merged %s %s; single %s %s", n, i, a.Key(), a.Verdict, b.Key(), b.Verdict)
			}
		}
		var mj, sj bytes.Buffer
		if err := merged.WriteJUnit(&mj); err != nil {
			t.Fatal(err)
		}
		if err := single.WriteJUnit(&sj); err != nil {
			t.Fatal(err)
		}
		if mj.String() != sj.String() {
			t.Errorf("%d shards: the merged JUnit differs from a single run's", n)
		}
		var html bytes.Buffer
		if err := merged.WriteHTML(&html); err != nil || !strings.Contains(html.String(), "merged from") {
			t.Errorf("%d shards: HTML %v, says nothing of the merge", n, err)
		}
	}
}

// What would make merged verdicts wrong is refused, naming what and where.
func TestMergeRefuses(t *testing.T) {
	other := func(sh []Shard) []Shard {
		sh[1].Report.ImageDigest = "sha256:9999"
		sh[1].Report.ImageRef = "registry.lan/app:candidate"
		return sh
	}
	twice := func(sh []Shard) []Shard {
		sh[1].Report.Results = append(sh[1].Report.Results, sh[0].Report.Results[0])
		return sh
	}
	cases := []struct {
		name   string
		shards func([]Shard) []Shard
		want   []string
	}{
		{"two digests", other, []string{"different images", "sha256:1111", "sha256:9999", "registry.lan/app:candidate"}},
		{"a case twice", twice, []string{"has results in", "and in", "exactly one shard"}},
		{"a shard missing", func(sh []Shard) []Shard { return sh[:2] }, []string{"shard 3/3 missing"}},
		{"a shard twice", func(sh []Shard) []Shard { return append(sh, sh[0]) }, []string{"are both shard 1/3"}},
		{"different splits", func(sh []Shard) []Shard { sh[2].Report.Shard = "3/4"; return sh }, []string{"not the same split"}},
		{"a plain report among shards", func(sh []Shard) []Shard { sh[0].Report.Shard = ""; return sh }, []string{"not from a sharded run"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Merge(tc.shards(shardReports(t, 3)))
			if err == nil {
				t.Fatal("merged")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// An interrupted shard merges, with a warning.
	sh := shardReports(t, 2)
	sh[0].Report.Results = sh[0].Report.Results[:len(sh[0].Report.Results)-1]
	_, warnings, err := Merge(sh)
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "3 of the 4 planned cases") {
		t.Errorf("interrupted shard: %v, %v", err, warnings)
	}
	if _, err := ReadDir(t.TempDir()); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("a directory without results.json: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
