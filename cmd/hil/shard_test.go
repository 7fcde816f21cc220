package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/testenv"
)

// Bad --shard values are refused before anything is opened, with the form
// expected.
func TestShardFlagRefusesBadInput(t *testing.T) {
	for _, bad := range []string{"4/3", "0/3", "a/b"} {
		for _, verb := range [][]string{
			{"run", "--image", "oci:/nonexistent", "--shard", bad},
			{"gate", "--image", "127.0.0.1:1/app:candidate", "--shard", bad},
		} {
			_, errText, code := runHil(t, verb...)
			if code != 2 || !strings.Contains(errText, fmt.Sprintf("--shard: shard %q", bad)) || !strings.Contains(errText, "expected i/n with 1 <= i <= n, like 1/3") {
				t.Errorf("%s --shard %s: exit %d, %q; expected 2 and the expected form", verb[0], bad, code, errText)
			}
		}
	}
	if _, errText, code := runHil(t, "run", "--image", "oci:/nonexistent", "--timings", "x.json"); code != 2 || !strings.Contains(errText, "give --shard i/n too") {
		t.Errorf("--timings alone: exit %d, %q", code, errText)
	}
	if _, errText, code := runHil(t, "gate", "--image", "127.0.0.1:1/app:candidate", "--shard", "1/2", "--results", "x"); code != 2 || !strings.Contains(errText, "give one of them") {
		t.Errorf("--shard with --results: exit %d, %q", code, errText)
	}
	if _, errText, code := runHil(t, "gate", "--image", "127.0.0.1:1/app:candidate"); code != 2 || !strings.Contains(errText, "--promote is required") {
		t.Errorf("gate without --promote: exit %d, %q", code, errText)
	}
}

type procRun struct {
	out  string
	code int
	took time.Duration
}

func runBin(ctx context.Context, bin string, args ...string) procRun {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	r := procRun{out: out.String(), took: time.Since(start)}
	if err != nil {
		r.code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
	}
	return r
}

var runLine = regexp.MustCompile(`(?m)^=== RUN   (.+ \[.+\])$`)

// The bundled suite as 3 shards in parallel processes on the system
// target, merged: the merged results are a single unsharded run's, case
// for case, and every case ran in exactly one shard, once. Merging in a
// shard that tested another image is refused, naming both digests.
//
// The scenarios tagged performance are left out: whether the app keeps up
// with a 100k-frame burst depends on the host's load (four emulated ARM
// guests on two cores here), which is what its own bench measures, not
// what sharding changes.
func TestShardedRunMergesToTheUnshardedRun(t *testing.T) {
	images := testenv.ImagesDir(t)
	root := testenv.RepoRoot(t)
	bin := buildHil(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	img := "oci:" + filepath.Join(images, "pcapwatch")
	scen := filepath.Join(dir, "scenarios")
	bundled, err := scenario.LoadDir(filepath.Join(root, "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(scen, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sc := range bundled {
		if slices.Contains(sc.Tags, "performance") {
			continue
		}
		b, err := os.ReadFile(sc.Pos.File)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(scen, filepath.Base(sc.Pos.File)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := func(report string, extra ...string) []string {
		return append([]string{"run", "--image", img, "--target", "system", "--progress", "plain", "--report", report, scen}, extra...)
	}

	single := runBin(ctx, bin, args(filepath.Join(dir, "single"))...)
	if single.code != 0 {
		t.Fatalf("unsharded run: exit %d\n%s", single.code, single.out)
	}
	var wg sync.WaitGroup
	shards := make([]procRun, 3)
	start := time.Now()
	for i := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			shards[i] = runBin(ctx, bin, args(filepath.Join(dir, fmt.Sprintf("shard%d", i+1)), "--shard", fmt.Sprintf("%d/3", i+1))...)
		}()
	}
	wg.Wait()
	parallel := time.Since(start)
	ranIn := map[string][]int{}
	for i, s := range shards {
		if s.code != 0 {
			t.Fatalf("shard %d/3: exit %d\n%s", i+1, s.code, s.out)
		}
		for _, m := range runLine.FindAllStringSubmatch(s.out, -1) {
			ranIn[m[1]] = append(ranIn[m[1]], i+1)
		}
	}
	t.Logf("unsharded run %v; 3 shards in parallel %v (%v, %v, %v)", single.took.Round(10*time.Millisecond), parallel.Round(10*time.Millisecond),
		shards[0].took.Round(10*time.Millisecond), shards[1].took.Round(10*time.Millisecond), shards[2].took.Round(10*time.Millisecond))

	merged := runBin(ctx, bin, "report", "merge", "--out", filepath.Join(dir, "merged"), filepath.Join(dir, "shard1"), filepath.Join(dir, "shard2"), filepath.Join(dir, "shard3"))
	if merged.code != 0 {
		t.Fatalf("merge: exit %d\n%s", merged.code, merged.out)
	}
	want, err := report.ReadDir(filepath.Join(dir, "single"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := report.ReadDir(filepath.Join(dir, "merged"))
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Results) < 5 {
		t.Fatalf("the unsharded run has %d cases; expected the bundled scenarios", len(want.Results))
	}
	if len(got.Results) != len(want.Results) || got.ImageDigest != want.ImageDigest || got.Summary != want.Summary {
		t.Fatalf("merged %d results of %s %+v; unsharded %d of %s %+v", len(got.Results), got.ImageDigest, got.Summary, len(want.Results), want.ImageDigest, want.Summary)
	}
	for i := range want.Results {
		w, g := want.Results[i], got.Results[i]
		if w.Key() != g.Key() || w.Verdict != g.Verdict {
			t.Errorf("case %d: merged %s %s; unsharded %s %s", i, g.Key(), g.Verdict, w.Key(), w.Verdict)
		}
		if in := ranIn[g.ID()]; len(in) != 1 {
			t.Errorf("%s ran in shards %v; expected exactly one", g.ID(), in)
		}
	}
	if len(ranIn) != len(want.Results) {
		t.Errorf("the shards ran %d distinct cases; expected %d", len(ranIn), len(want.Results))
	}

	// A shard of another image (its static check fails at once) does not
	// merge with the others.
	broken := runBin(ctx, bin, "run", "--image", "oci:"+filepath.Join(images, "no-libpcap"), "--target", "system", "--progress", "none",
		"--report", filepath.Join(dir, "other"), "--shard", "2/3", scen)
	if broken.code != 1 {
		t.Fatalf("the no-libpcap shard: exit %d, expected 1 (fail)\n%s", broken.code, broken.out)
	}
	other, err := report.ReadDir(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	refused := runBin(ctx, bin, "report", "merge", "--out", filepath.Join(dir, "refused"), filepath.Join(dir, "shard1"), filepath.Join(dir, "other"), filepath.Join(dir, "shard3"))
	if refused.code != 2 || !strings.Contains(refused.out, want.ImageDigest) || !strings.Contains(refused.out, other.ImageDigest) || other.ImageDigest == want.ImageDigest {
		t.Errorf("merging two digests: exit %d; expected 2 naming %s and %s:\n%s", refused.code, want.ImageDigest, other.ImageDigest, refused.out)
	}
	if _, err := os.Stat(filepath.Join(dir, "refused")); err == nil {
		t.Error("a refused merge wrote a report")
	}
}

// hil gate --results decides from merged results without running: it
// promotes when they are for the pinned digest, cover every planned case
// and all passed, and refuses (naming why) when one case is missing, one
// did not pass, or they are for another digest.
func TestGateDecidesFromResults(t *testing.T) {
	reg := testenv.Registry(t)
	root := testenv.RepoRoot(t)
	scen := filepath.Join(root, "scenarios")
	cand := reg.Host + "/pcapwatch:candidate"
	digest := pushArmIndex(t, cand).String()
	scs, err := scenario.LoadFiles([]string{scen})
	if err != nil {
		t.Fatal(err)
	}
	plan := scenario.PlanCases(scs, []string{"system"}, []string{"linux/arm/v7"})
	resultsDir := func(digest string, edit func([]scenario.Result) []scenario.Result) string {
		var rs []scenario.Result
		for _, c := range plan {
			rs = append(rs, scenario.Result{Scenario: c.Scenario.Name, Target: c.Target, Platform: c.Platform, Verdict: scenario.Pass,
				ImageRef: cand, ImageDigest: digest, FailedStep: -1, Attempts: 1, Start: time.Now(), Duration: time.Second})
		}
		rs = edit(rs)
		d := t.TempDir()
		if _, err := report.New(rs, report.WithImage(cand, digest)).WriteDir(d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	same := func(rs []scenario.Result) []scenario.Result { return rs }
	gate := func(results string) (string, int) {
		out, errOut, code := runHilStderr(t, "gate", "--image", cand, "--scenarios", scen, "--target", "system", "--promote", "latest",
			"--results", results, "--report", t.TempDir())
		return out + errOut, code
	}
	latest := func() string {
		out, _, _ := runHilStderr(t, "registry", "digest", reg.Host+"/pcapwatch:latest")
		return strings.TrimSpace(out)
	}

	for _, tc := range []struct {
		name    string
		results string
		want    []string
	}{
		{"a case missing", resultsDir(digest, func(rs []scenario.Result) []scenario.Result { return rs[1:] }),
			[]string{"REFUSED", plan[0].Scenario.Name, "no result for this case"}},
		{"a case failed", resultsDir(digest, func(rs []scenario.Result) []scenario.Result {
			rs[2].Verdict, rs[2].Reason = scenario.Fail, "expected count == 12, saw 11"
			return rs
		}), []string{"REFUSED", "expected count == 12, saw 11"}},
		{"another digest", resultsDir("sha256:"+strings.Repeat("ab", 32), same),
			[]string{"REFUSED", "sha256:" + strings.Repeat("ab", 32), "not for the pinned candidate " + digest}},
	} {
		out, code := gate(tc.results)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1:\n%s", tc.name, code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, out)
			}
		}
		if got := latest(); got == digest {
			t.Fatalf("%s moved latest to the candidate", tc.name)
		}
	}
	out, code := gate(resultsDir(digest, same))
	if code != 0 || !strings.Contains(out, "PROMOTED") {
		t.Fatalf("complete passing results: exit %d, want 0:\n%s", code, out)
	}
	if got := latest(); got != digest {
		t.Fatalf("latest = %s, want the tested %s", got, digest)
	}
}

// A sharded gate end to end on the sample image and the system target:
// each shard pins the candidate, tests its part and promotes nothing; the
// merged reports let hil gate --results promote exactly the tested digest.
func TestGateShardsThenResults(t *testing.T) {
	images := testenv.ImagesDir(t)
	root := testenv.RepoRoot(t)
	reg := testenv.Registry(t)
	scen := t.TempDir()
	for _, n := range []string{"startup.yaml", "graceful-stop.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, "scenarios", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(scen, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cand := reg.Host + "/pcapwatch:candidate"
	if _, errOut, code := runHilStderr(t, "registry", "push", filepath.Join(images, "pcapwatch"), cand); code != 0 {
		t.Fatalf("push: %s", errOut)
	}
	var dirs []string
	for i := 1; i <= 2; i++ {
		d := filepath.Join(t.TempDir(), "shard")
		dirs = append(dirs, d)
		out, errOut, code := runHilStderr(t, "gate", "--image", cand, "--scenarios", scen, "--target", "system", "--shard", fmt.Sprintf("%d/2", i), "--report", d)
		if code != 0 || !strings.Contains(out, fmt.Sprintf("gate: shard %d/2 PASSED (a shard promotes nothing)", i)) || !strings.Contains(out, "1 pass") {
			t.Fatalf("shard %d/2: exit %d\n%s\n%s", i, code, out, errOut)
		}
	}
	if out, _, _ := runHilStderr(t, "registry", "digest", reg.Host+"/pcapwatch:latest"); strings.HasPrefix(strings.TrimSpace(out), "sha256:") {
		t.Fatalf("a shard wrote latest: %s", out)
	}
	merged := filepath.Join(t.TempDir(), "merged")
	if out, errOut, code := runHilStderr(t, append([]string{"report", "merge", "--out", merged}, dirs...)...); code != 0 {
		t.Fatalf("merge: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code := runHilStderr(t, "gate", "--image", cand, "--scenarios", scen, "--target", "system", "--results", merged, "--promote", "latest", "--report", t.TempDir())
	if code != 0 || !strings.Contains(out, "gate: PROMOTED") || !strings.Contains(out, "2 pass") {
		t.Fatalf("gate --results: exit %d\n%s\n%s", code, out, errOut)
	}
	rep, err := report.ReadDir(merged)
	if err != nil {
		t.Fatal(err)
	}
	if out, _, _ := runHilStderr(t, "registry", "digest", reg.Host+"/pcapwatch:latest"); strings.TrimSpace(out) != rep.ImageDigest {
		t.Fatalf("latest = %s; the shards tested %s", out, rep.ImageDigest)
	}
}
