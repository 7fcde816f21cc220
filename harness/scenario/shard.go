package scenario

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hilproject/hil/internal/jsonfmt"
)

// CaseKey names a case the same way in every process and every run:
// sharding splits by it, timings are looked up by it, merged reports are
// checked by it. Board is empty for a case without a board; a key with a
// board is a different case from one without.
type CaseKey struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Platform string `json:"platform"`
	Board    string `json:"board,omitempty"`
}

func (k CaseKey) String() string {
	if k.Board != "" {
		return k.Scenario + " [" + k.Target + " " + k.Board + " " + k.Platform + "]"
	}
	return k.Scenario + " [" + k.Target + " " + k.Platform + "]"
}

func (k CaseKey) compare(o CaseKey) int {
	return cmp.Or(cmp.Compare(k.Scenario, o.Scenario), cmp.Compare(k.Target, o.Target),
		cmp.Compare(k.Platform, o.Platform), cmp.Compare(k.Board, o.Board))
}

// Key is the case's CaseKey.
func (c Case) Key() CaseKey {
	return CaseKey{Scenario: c.Scenario.Name, Target: c.Target, Platform: c.Platform, Board: c.BoardName()}
}

// Key is the CaseKey of the case the result is for.
func (r *Result) Key() CaseKey {
	return CaseKey{Scenario: r.Scenario, Target: r.Target, Platform: r.Platform, Board: r.Board}
}

// Shard is one of Count parts of a run's cases, Index counting from 1
// (as CI matrices and "--shard 2/3" do).
type Shard struct{ Index, Count int }

func (s Shard) String() string { return strconv.Itoa(s.Index) + "/" + strconv.Itoa(s.Count) }

// ParseShard reads "i/n" with 1 <= i <= n.
func ParseShard(s string) (Shard, error) {
	bad := func(why string) (Shard, error) {
		return Shard{}, fmt.Errorf("shard %q: %s; expected i/n with 1 <= i <= n, like 1/3", s, why)
	}
	is, ns, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return bad("no slash")
	}
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	switch {
	case err1 != nil || err2 != nil:
		return bad("not two whole numbers")
	case n < 1:
		return bad("n must be at least 1")
	case i < 1:
		return bad("i counts from 1")
	case i > n:
		return bad(fmt.Sprintf("shard %d of only %d", i, n))
	}
	return Shard{Index: i, Count: n}, nil
}

// Timings are how long cases took in an earlier run: Split balances the
// shards by them.
type Timings map[CaseKey]time.Duration

// ReadTimings reads the case durations of a results.json that hil run,
// hil gate or hil report merge wrote (a directory means its results.json).
func ReadTimings(path string) (Timings, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "results.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading timings: %w", err)
	}
	// duration_ns is the spelling of results.json before schema v2: an
	// earlier run's file still balances the shards.
	var doc struct {
		Results []struct {
			CaseKey
			DurationMS *float64       `json:"duration_ms"`
			Duration   *time.Duration `json:"duration_ns"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("reading timings from %s: %w (expected a results.json written by hil)", path, err)
	}
	t := Timings{}
	for i, r := range doc.Results {
		if r.DurationMS != nil {
			d := jsonfmt.Duration(*r.DurationMS)
			r.Duration = &d
		}
		if r.Scenario == "" || r.Target == "" || r.Platform == "" || r.Duration == nil {
			return nil, fmt.Errorf("reading timings from %s: result %d lacks scenario, target, platform or duration_ms", path, i+1)
		}
		t[r.CaseKey] = max(t[r.CaseKey], *r.Duration)
	}
	return t, nil
}

// minWeight keeps a case that took no measurable time from weighing
// nothing (it still costs a boot).
const minWeight = time.Millisecond

// Split assigns each of keys to one of n shards and returns the shard
// (0-based) of each, in the order of keys. It depends only on the set of
// keys, n and the timings, never on their order, so every process of a
// sharded run computes the same split. Without timings the shards get
// equal counts (±1); with timings, the longest cases are placed first,
// each on the least loaded shard (ties: the lower shard), and a case the
// timings lack weighs the median of those they have. Equal keys go to the
// same shard.
func Split(keys []CaseKey, n int, t Timings) []int {
	out := make([]int, len(keys))
	if n <= 1 {
		return out
	}
	uniq := slices.Clone(keys)
	slices.SortFunc(uniq, CaseKey.compare)
	uniq = slices.Compact(uniq)
	weight := make(map[CaseKey]time.Duration, len(uniq))
	var known []time.Duration
	for _, k := range uniq {
		if d, ok := t[k]; ok {
			known = append(known, max(d, minWeight))
		}
	}
	fallback := minWeight
	if len(known) > 0 {
		slices.Sort(known)
		fallback = known[len(known)/2]
	}
	for _, k := range uniq {
		w, ok := t[k]
		if !ok {
			w = fallback
		}
		weight[k] = max(w, minWeight)
	}
	// Heaviest first; equal weights in key order (a stable, total order).
	slices.SortStableFunc(uniq, func(a, b CaseKey) int { return cmp.Compare(weight[b], weight[a]) })
	load := make([]time.Duration, n)
	count := make([]int, n)
	shardOf := make(map[CaseKey]int, len(uniq))
	for _, k := range uniq {
		best := 0
		for s := 1; s < n; s++ {
			if load[s] < load[best] || load[s] == load[best] && count[s] < count[best] {
				best = s
			}
		}
		shardOf[k] = best
		load[best] += weight[k]
		count[best]++
	}
	for i, k := range keys {
		out[i] = shardOf[k]
	}
	return out
}

// Select returns the cases of cases that fall in this shard (see Split),
// in their original order.
func (s Shard) Select(cases []Case, t Timings) []Case {
	keys := make([]CaseKey, len(cases))
	for i, c := range cases {
		keys[i] = c.Key()
	}
	var out []Case
	for i, sh := range Split(keys, s.Count, t) {
		if sh == s.Index-1 {
			out = append(out, cases[i])
		}
	}
	return out
}
