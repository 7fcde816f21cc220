package report

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hilproject/hil/harness/scenario"
)

// Shard is one shard's report and where it came from (its directory).
type Shard struct {
	Name   string
	Report *Report
}

// Merge joins the reports of a sharded run into one report, refusing what
// would make the merged verdicts wrong: shards that tested different image
// digests (a candidate tag that moved between shards), a case with results
// in two shards, shards of different splits, and a missing or repeated
// shard when the reports say which shard they were. Warnings are what is
// merged but incomplete (fewer results than the shards planned: a shard
// was interrupted).
func Merge(shards []Shard, opts ...Option) (*Report, []string, error) {
	if len(shards) == 0 {
		return nil, nil, fmt.Errorf("merging reports: no report given")
	}
	first := shards[0]
	var digestFrom *Shard
	for i := range shards {
		s := &shards[i]
		if s.Report.ImageDigest == "" {
			if len(s.Report.Results) > 0 {
				return nil, nil, fmt.Errorf("merging reports: %s names no image digest: expected a report written by hil run, hil gate or the suite", s.Name)
			}
			continue
		}
		if digestFrom == nil {
			digestFrom = s
			continue
		}
		if s.Report.ImageDigest != digestFrom.Report.ImageDigest {
			return nil, nil, fmt.Errorf("merging reports: they tested different images: %s has %s (%s) but %s has %s (%s); the shards of one run must test one digest (pin --image by digest, or gate the candidate again)",
				digestFrom.Name, digestFrom.Report.ImageDigest, digestFrom.Report.ImageRef, s.Name, s.Report.ImageDigest, s.Report.ImageRef)
		}
	}
	if err := checkShards(shards); err != nil {
		return nil, nil, err
	}
	var results []scenario.Result
	// Suites also run broken variants of the image: a case is one per
	// image digest.
	type caseID struct {
		digest string
		key    scenario.CaseKey
	}
	where := map[caseID]string{}
	for _, s := range shards {
		for _, res := range s.Report.Results {
			id := caseID{res.ImageDigest, res.Key()}
			if prev, ok := where[id]; ok {
				return nil, nil, fmt.Errorf("merging reports: case %s has results in %s and in %s: each case must run in exactly one shard (were the shards split with the same --shard n and --timings?)",
					id.key, prev, s.Name)
			}
			where[id] = s.Name
			results = append(results, res)
		}
	}
	merged := New(results, opts...)
	if digestFrom != nil {
		merged.ImageRef, merged.ImageDigest = digestFrom.Report.ImageRef, digestFrom.Report.ImageDigest
	}
	if merged.Title == "hil scenarios" && first.Report.Title != "" {
		merged.Title = first.Report.Title
	}
	merged.HilVersion = first.Report.HilVersion
	var warnings []string
	versions := map[string]bool{}
	for _, s := range shards {
		merged.MergedFrom = append(merged.MergedFrom, s.Name)
		versions[s.Report.HilVersion] = true
		for k, v := range s.Report.Meta {
			if _, ok := merged.Meta[k]; !ok {
				if merged.Meta == nil {
					merged.Meta = map[string]string{}
				}
				merged.Meta[k] = v
			}
		}
	}
	if len(versions) > 1 {
		warnings = append(warnings, fmt.Sprintf("the shards ran different hil versions: %s", strings.Join(slices.Sorted(maps.Keys(versions)), ", ")))
	}
	merged.Planned = first.Report.Planned
	if merged.Planned > 0 && len(results) < merged.Planned {
		warnings = append(warnings, fmt.Sprintf("%d of the %d planned cases have results: a shard did not finish", len(results), merged.Planned))
	}
	return merged, warnings, nil
}

// checkShards: reports that say which shard they are must be every shard
// of one split, once each.
func checkShards(shards []Shard) error {
	var marked []Shard
	for _, s := range shards {
		if s.Report.Shard != "" {
			marked = append(marked, s)
		}
	}
	if len(marked) == 0 {
		return nil
	}
	if len(marked) != len(shards) {
		var plain []string
		for _, s := range shards {
			if s.Report.Shard == "" {
				plain = append(plain, s.Name)
			}
		}
		return fmt.Errorf("merging reports: %s %s not from a sharded run but %s is shard %s: merge the shards of one run only", strings.Join(plain, ", "), isAre(len(plain)), marked[0].Name, marked[0].Report.Shard)
	}
	seen := map[int]string{}
	var count int
	for _, s := range marked {
		sh, err := scenario.ParseShard(s.Report.Shard)
		if err != nil {
			return fmt.Errorf("merging reports: %s: %w", s.Name, err)
		}
		if count == 0 {
			count = sh.Count
		}
		if sh.Count != count || s.Report.Planned != marked[0].Report.Planned {
			return fmt.Errorf("merging reports: %s is shard %s of %d planned cases but %s is shard %s of %d: not the same split",
				marked[0].Name, marked[0].Report.Shard, marked[0].Report.Planned, s.Name, s.Report.Shard, s.Report.Planned)
		}
		if prev, ok := seen[sh.Index]; ok {
			return fmt.Errorf("merging reports: %s and %s are both shard %s", prev, s.Name, sh)
		}
		seen[sh.Index] = s.Name
	}
	var missing []string
	for i := 1; i <= count; i++ {
		if _, ok := seen[i]; !ok {
			missing = append(missing, scenario.Shard{Index: i, Count: count}.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("merging reports: shard %s missing: expected all %d shards' reports", strings.Join(missing, ", "), count)
	}
	return nil
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
