package scenario_test

import (
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"github.com/hilproject/hil/harness/scenario"
)

// splitInput is a random sharding problem: distinct case keys (some with a
// board, as fleets have), a shard count, and timings for some of the keys.
type splitInput struct {
	Keys    []scenario.CaseKey
	N       int
	Timings scenario.Timings
	Seed    uint64
}

func (splitInput) Generate(r *rand.Rand, size int) reflect.Value {
	in := splitInput{N: 1 + r.Intn(8), Seed: r.Uint64()}
	seen := map[scenario.CaseKey]bool{}
	for range r.Intn(3 * size) {
		k := scenario.CaseKey{
			Scenario: []string{"startup", "arp-sweep", "dns-names", "burst-100k", "graceful-stop", "malformed", "dhcp"}[r.Intn(7)] + string(rune('a'+r.Intn(4))),
			Target:   []string{"system", "user", "container", "device@pi-1"}[r.Intn(4)],
			Platform: []string{"linux/arm/v7", "linux/amd64", "linux/arm64"}[r.Intn(3)],
		}
		if r.Intn(3) == 0 {
			k.Board = []string{"pi-zero", "pi3", "pi4"}[r.Intn(3)]
		}
		if !seen[k] {
			seen[k] = true
			in.Keys = append(in.Keys, k)
		}
	}
	if r.Intn(2) == 0 {
		in.Timings = scenario.Timings{}
		for _, k := range in.Keys {
			if r.Intn(4) > 0 {
				in.Timings[k] = time.Duration(r.Intn(60000)) * time.Millisecond
			}
		}
	}
	return reflect.ValueOf(in)
}

func check(t *testing.T, prop any) {
	t.Helper()
	cfg := &quick.Config{MaxCount: 500}
	if err := quick.Check(prop, cfg); err != nil {
		t.Error(err)
	}
}

func weightOf(in splitInput, k scenario.CaseKey) time.Duration {
	if d, ok := in.Timings[k]; ok {
		return max(d, time.Millisecond)
	}
	var known []time.Duration
	for _, kk := range in.Keys {
		if d, ok := in.Timings[kk]; ok {
			known = append(known, max(d, time.Millisecond))
		}
	}
	if len(known) == 0 {
		return time.Millisecond
	}
	// The median, as Split documents.
	for i := range known {
		for j := i + 1; j < len(known); j++ {
			if known[j] < known[i] {
				known[i], known[j] = known[j], known[i]
			}
		}
	}
	return max(known[len(known)/2], time.Millisecond)
}

// Every case lands in exactly one shard, whatever the keys and n.
func TestSplitEveryCaseExactlyOnce(t *testing.T) {
	check(t, func(in splitInput) bool {
		shards := scenario.Split(in.Keys, in.N, in.Timings)
		if len(shards) != len(in.Keys) {
			return false
		}
		for _, s := range shards {
			if s < 0 || s >= in.N {
				return false
			}
		}
		return true
	})
}

// The split depends on the set of cases, not on the order a process lists
// them in: shards computed by separate processes agree.
func TestSplitIsDeterministic(t *testing.T) {
	check(t, func(in splitInput) bool {
		a := scenario.Split(in.Keys, in.N, in.Timings)
		shuffled := append([]scenario.CaseKey(nil), in.Keys...)
		r := rand.New(rand.NewSource(int64(in.Seed)))
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		b := scenario.Split(shuffled, in.N, in.Timings)
		at := map[scenario.CaseKey]int{}
		for i, k := range in.Keys {
			at[k] = a[i]
		}
		for i, k := range shuffled {
			if at[k] != b[i] {
				return false
			}
		}
		return true
	})
}

// Without timings the shards differ by at most one case; with timings no
// shard carries more than an even share plus one case (the bound of
// placing each case on the least loaded shard).
func TestSplitIsBalanced(t *testing.T) {
	check(t, func(in splitInput) bool {
		shards := scenario.Split(in.Keys, in.N, in.Timings)
		count := make([]int, in.N)
		load := make([]time.Duration, in.N)
		var total, heaviest time.Duration
		for i, k := range in.Keys {
			w := weightOf(in, k)
			count[shards[i]]++
			load[shards[i]] += w
			total += w
			heaviest = max(heaviest, w)
		}
		if in.Timings == nil {
			lo, hi := len(in.Keys), 0
			for _, c := range count {
				lo, hi = min(lo, c), max(hi, c)
			}
			return hi-lo <= 1
		}
		for _, l := range load {
			if l > total/time.Duration(in.N)+heaviest {
				t.Logf("load %v > %v/%d + %v", l, total, in.N, heaviest)
				return false
			}
		}
		return true
	})
}

// Timings move work: one long case gets a shard to itself while the short
// ones share the other, where counting alone would split them 2 and 2.
func TestSplitUsesTimings(t *testing.T) {
	k := func(name string) scenario.CaseKey {
		return scenario.CaseKey{Scenario: name, Target: "system", Platform: "linux/arm/v7"}
	}
	keys := []scenario.CaseKey{k("a"), k("b"), k("c"), k("long")}
	byCount := scenario.Split(keys, 2, nil)
	sizes := map[int]int{}
	for _, s := range byCount {
		sizes[s]++
	}
	if sizes[0] != 2 || sizes[1] != 2 {
		t.Errorf("by count: %v; expected 2 and 2", byCount)
	}
	timed := scenario.Split(keys, 2, scenario.Timings{k("a"): time.Second, k("b"): time.Second, k("c"): time.Second, k("long"): time.Minute})
	if timed[3] == timed[0] || timed[0] != timed[1] || timed[1] != timed[2] {
		t.Errorf("with timings: %v; expected the long case alone", timed)
	}
}

// Select partitions real planned cases: the shards' cases together are the
// plan, each once.
func TestShardSelectPartitionsThePlan(t *testing.T) {
	scs, err := scenario.LoadDir(filepath.Join("..", "..", "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	plan := scenario.PlanCases(scs, []string{"system", "user"}, []string{"linux/arm/v7", "linux/amd64"})
	if len(plan) < 10 {
		t.Fatalf("only %d cases planned", len(plan))
	}
	seen := map[scenario.CaseKey]int{}
	for i := 1; i <= 3; i++ {
		for _, c := range (scenario.Shard{Index: i, Count: 3}).Select(plan, nil) {
			seen[c.Key()]++
		}
	}
	if len(seen) != len(plan) {
		t.Errorf("shards hold %d distinct cases; the plan has %d", len(seen), len(plan))
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s is in %d shards", k, n)
		}
	}
}

func TestParseShard(t *testing.T) {
	for in, want := range map[string]scenario.Shard{"1/1": {1, 1}, "2/3": {2, 3}, "3/3": {3, 3}, " 10/12 ": {10, 12}} {
		if got, err := scenario.ParseShard(in); err != nil || got != want {
			t.Errorf("ParseShard(%q) = %v, %v; expected %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"4/3", "0/3", "a/b", "3", "1/0", "-1/3", "1/3/4", "", "/", "2/-3"} {
		_, err := scenario.ParseShard(bad)
		if err == nil || !strings.Contains(err.Error(), "expected i/n with 1 <= i <= n") {
			t.Errorf("ParseShard(%q): %v; expected a refusal naming the form i/n", bad, err)
		}
	}
}

// Timings come from the results.json of an earlier run.
func TestReadTimings(t *testing.T) {
	dir := t.TempDir()
	doc := `{"title":"x","results":[
	 {"scenario":"a","target":"system","platform":"linux/arm/v7","duration_ms":2000,"verdict":"pass"},
	 {"scenario":"a","target":"system","platform":"linux/arm/v7","board":"pi4","duration_ms":3000.5,"verdict":"pass"},
	 {"scenario":"b","target":"system","platform":"linux/arm/v7","duration_ns":4000000000,"verdict":"pass"}]}`
	if err := os.WriteFile(filepath.Join(dir, "results.json"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	tm, err := scenario.ReadTimings(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := scenario.CaseKey{Scenario: "a", Target: "system", Platform: "linux/arm/v7"}
	b := a
	b.Board = "pi4"
	old := a // a results.json of before schema v2 (duration_ns) still counts
	old.Scenario = "b"
	if tm[a] != 2*time.Second || tm[b] != 3*time.Second+500*time.Microsecond || tm[old] != 4*time.Second || len(tm) != 3 {
		t.Errorf("timings %v", tm)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"results":[{"scenario":"a"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := scenario.ReadTimings(filepath.Join(dir, "bad.json")); err == nil || !strings.Contains(err.Error(), "lacks scenario, target, platform or duration_ms") {
		t.Errorf("a result without a duration: %v", err)
	}
}
