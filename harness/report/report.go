// Package report writes the results of a scenario run as JUnit XML (for CI
// systems), a JSON result file (for machines and the gate) and a
// self-contained HTML page (for a person opening a CI artifact): verdict
// table, per-step timeline, console log and replay stats, with no external
// assets.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/jsonfmt"
)

// File names WriteDir uses.
const (
	JUnitFile = "junit.xml"
	JSONFile  = "results.json"
	HTMLFile  = "report.html"
)

// Schema is the $id of results.json's JSON Schema
// (schemas/results.schema.json), written into every results.json.
const Schema = "https://hil.dev/schemas/results/v2"

// Report is one run: the image under test and every case's result. Its
// JSON is results.json (schemas/results.schema.json).
type Report struct {
	Schema      string        `json:"schema"`
	Title       string        `json:"title"`
	ImageRef    string        `json:"image_ref,omitempty"`
	ImageDigest string        `json:"image_digest,omitempty"`
	HilVersion  string        `json:"hil_version,omitempty"`
	Start       time.Time     `json:"start"`
	Duration    time.Duration `json:"-"`
	// Decision is a gate's decision (PROMOTED, REFUSED, ERROR), shown
	// before anything else; nil for a plain run.
	Decision *Decision        `json:"decision,omitempty"`
	Summary  scenario.Summary `json:"summary"`
	// StaticChecks lists each distinct static startup check once; the
	// results name theirs by ID.
	StaticChecks []scenario.StaticCheck `json:"static_checks,omitempty"`
	Results      []scenario.Result      `json:"results"`
	Meta         map[string]string      `json:"meta,omitempty"`
	// Shard is "i/n" when the run was one shard of a sharded run, and
	// Planned the number of cases all n shards together plan; a merged
	// report has Planned and MergedFrom (the shards' report directories).
	Shard      string   `json:"shard,omitempty"`
	Planned    int      `json:"planned,omitempty"`
	MergedFrom []string `json:"merged_from,omitempty"`
}

type reportJSON Report

// MarshalJSON writes the duration as duration_ms.
func (r Report) MarshalJSON() ([]byte, error) {
	r.Schema = Schema
	if r.Results == nil {
		r.Results = []scenario.Result{}
	}
	return json.Marshal(struct {
		reportJSON
		DurationMS float64 `json:"duration_ms"`
	}{reportJSON(r), jsonfmt.Millis(r.Duration)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Report) UnmarshalJSON(b []byte) error {
	var v struct {
		reportJSON
		DurationMS float64 `json:"duration_ms"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Report(v.reportJSON)
	r.Duration = jsonfmt.Duration(v.DurationMS)
	return nil
}

// Decision is what a gate decided, as its report opens with it.
type Decision struct {
	// Verdict is PROMOTED, REFUSED, ERROR, or WOULD PROMOTE (a dry run).
	Verdict   string `json:"verdict"`
	Candidate string `json:"candidate"`
	Tested    string `json:"tested,omitempty"`
	Tag       string `json:"tag"`
	OldDigest string `json:"old_digest"`
	NewDigest string `json:"new_digest"`
	// Attestation is where the test result about the tested digest is
	// stored ("" when none was attached).
	Attestation string `json:"attestation,omitempty"`
	Reason      string `json:"reason"`
}

// Option configures New.
type Option func(*Report)

// WithTitle sets the report's title (default "hil scenarios").
func WithTitle(t string) Option { return func(r *Report) { r.Title = t } }

// WithVersion records the hil version.
func WithVersion(v string) Option { return func(r *Report) { r.HilVersion = v } }

// WithImage names the image under test (otherwise the first result's):
// a report of a shard that ran no case still says what it tested.
func WithImage(ref, digest string) Option {
	return func(r *Report) { r.ImageRef, r.ImageDigest = ref, digest }
}

// WithShard marks the report as shard s of a sharded run whose shards
// together plan planned cases.
func WithShard(s scenario.Shard, planned int) Option {
	return func(r *Report) { r.Shard, r.Planned = s.String(), planned }
}

// WithDecision makes the report a gate's: it opens with d.
func WithDecision(d Decision) Option { return func(r *Report) { r.Decision = &d } }

// WithMeta adds a key/value shown in the report header and JSON.
func WithMeta(k, v string) Option {
	return func(r *Report) {
		if r.Meta == nil {
			r.Meta = map[string]string{}
		}
		r.Meta[k] = v
	}
}

// New builds a report from results, failures first: sorted by verdict
// (fail, infra-error, unsupported, pass), then image (in order of first
// appearance), scenario, target, board, platform. Each distinct static
// check is listed once in StaticChecks and named by its results.
func New(results []scenario.Result, opts ...Option) *Report {
	rs := append([]scenario.Result(nil), results...)
	// Images keep the order they first appear in (the image under test
	// before the broken variants of a suite); within one, by case.
	imageOrder := map[string]int{}
	for _, res := range rs {
		if _, ok := imageOrder[res.ImageRef]; !ok {
			imageOrder[res.ImageRef] = len(imageOrder)
		}
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if ra, rb := verdictRank(a.Verdict), verdictRank(b.Verdict); ra != rb {
			return ra < rb
		}
		if a.ImageRef != b.ImageRef {
			return imageOrder[a.ImageRef] < imageOrder[b.ImageRef]
		}
		if a.Scenario != b.Scenario {
			return a.Scenario < b.Scenario
		}
		if a.Target != b.Target {
			return a.Target < b.Target
		}
		if a.Board != b.Board {
			return a.Board < b.Board
		}
		return a.Platform < b.Platform
	})
	r := &Report{Title: "hil scenarios", Results: rs, Summary: scenario.Summarize(rs)}
	r.listStaticChecks()
	var end time.Time
	for _, res := range rs {
		if r.ImageRef == "" {
			r.ImageRef, r.ImageDigest = res.ImageRef, res.ImageDigest
		}
		if r.Start.IsZero() || (!res.Start.IsZero() && res.Start.Before(r.Start)) {
			r.Start = res.Start
		}
		if e := res.Start.Add(res.Duration); e.After(end) {
			end = e
		}
	}
	if !r.Start.IsZero() {
		r.Duration = end.Sub(r.Start)
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// HasBoards reports whether any case ran as a board: the tables then
// have a board column.
func (r *Report) HasBoards() bool {
	for _, res := range r.Results {
		if res.Board != "" {
			return true
		}
	}
	return false
}

// verdictRank orders verdicts for a reader: what needs attention first.
func verdictRank(v scenario.Verdict) int {
	switch v {
	case scenario.Fail:
		return 0
	case scenario.InfraError:
		return 1
	case scenario.Unsupported:
		return 2
	case scenario.Pass:
		return 4
	}
	return 3
}

// listStaticChecks lists each distinct static check of the results once,
// with an ID (its platform, numbered when one platform has several), and
// names it from each result.
func (r *Report) listStaticChecks() {
	r.StaticChecks = nil
	ids := map[string]int{}
	for i := range r.Results {
		res := &r.Results[i]
		res.StaticCheckID = ""
		if res.StaticCheck == nil {
			continue
		}
		found := -1
		for j := range r.StaticChecks {
			if r.StaticChecks[j].Same(res.StaticCheck) {
				found = j
				break
			}
		}
		if found < 0 {
			sc := *res.StaticCheck
			ids[sc.Platform]++
			sc.ID = sc.Platform
			if n := ids[sc.Platform]; n > 1 {
				sc.ID = fmt.Sprintf("%s #%d", sc.Platform, n)
			}
			r.StaticChecks = append(r.StaticChecks, sc)
			found = len(r.StaticChecks) - 1
		}
		res.StaticCheckID = r.StaticChecks[found].ID
	}
}

// StaticCheck returns the static check named id, or nil.
func (r *Report) StaticCheck(id string) *scenario.StaticCheck {
	for i := range r.StaticChecks {
		if r.StaticChecks[i].ID == id {
			return &r.StaticChecks[i]
		}
	}
	return nil
}

// MultiImage reports whether the results come from more than one image
// (a suite that also runs broken variants): the HTML then names the image
// on every row.
func (r *Report) MultiImage() bool {
	for _, res := range r.Results {
		if res.ImageDigest != r.ImageDigest || res.ImageRef != r.ImageRef {
			return true
		}
	}
	return false
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a report written by WriteJSON. A results.json of an
// older hil (before schema v2: durations in ns, camelCase elsewhere) is
// refused, saying so.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("reading JSON report: %w", err)
	}
	if r.Schema != Schema {
		got := r.Schema
		if got == "" {
			got = "none (written by a hil older than results v2)"
		}
		return nil, fmt.Errorf("reading JSON report: schema %s, expected %s: run it again, or merge it, with this hil", got, Schema)
	}
	for i := range r.Results {
		if id := r.Results[i].StaticCheckID; id != "" {
			r.Results[i].StaticCheck = r.StaticCheck(id)
		}
	}
	return &r, nil
}

// ReadDir reads the results.json of a report directory. Console logs it
// names are resolved against dir, so that writing the report elsewhere
// (a merge) copies them along.
func ReadDir(dir string) (*Report, error) {
	f, err := os.Open(filepath.Join(dir, JSONFile))
	if err != nil {
		return nil, fmt.Errorf("reading the report in %s: %w", dir, err)
	}
	defer f.Close()
	r, err := ReadJSON(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	for i := range r.Results {
		if p := r.Results[i].ConsoleLog; p != "" && !filepath.IsAbs(p) {
			r.Results[i].ConsoleLog = filepath.Join(dir, filepath.FromSlash(p))
		}
	}
	return r, nil
}

// WriteDir writes junit.xml, results.json and report.html into dir
// (created if needed) and returns their paths. Each case's guest console
// log is copied into dir/console/ first and linked from the report (a log
// in hil's cache is gone with the CI machine).
func (r *Report) WriteDir(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report dir: %w", err)
	}
	r.copyConsoleLogs(dir)
	var paths []string
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{{JUnitFile, r.WriteJUnit}, {JSONFile, r.WriteJSON}, {HTMLFile, r.WriteHTML}} {
		p := filepath.Join(dir, f.name)
		if err := writeAtomic(p, f.write); err != nil {
			return paths, fmt.Errorf("writing %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// ConsoleDir is where WriteDir copies the guest console logs.
const ConsoleDir = "console"

// copyConsoleLogs copies each result's console log (its ConsoleLog, or the
// device's console_log) into dir/console/ and points ConsoleLog there,
// relative to dir. A log that is gone (the cache was pruned) is left out.
func (r *Report) copyConsoleLogs(dir string) {
	for i := range r.Results {
		res := &r.Results[i]
		src := res.ConsoleLog
		if src == "" {
			src = res.Device.String("console_log")
		}
		if src == "" {
			continue
		}
		if !filepath.IsAbs(src) {
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(src))); err == nil {
				continue // already in this report directory
			}
		}
		name := res.Scenario + "-" + res.Target
		if res.Board != "" {
			name += "-" + res.Board
		}
		rel := path.Join(ConsoleDir, fmt.Sprintf("%02d-%s.log", i+1, fileSafe(name+"-"+res.Platform)))
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if same(src, dst) {
			res.ConsoleLog = rel
			continue
		}
		if err := copyFile(src, dst); err != nil {
			res.ConsoleLog = ""
			continue
		}
		res.ConsoleLog = rel
	}
}

func same(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return writeAtomic(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// writeAtomic writes through a temp file so a reader (or a CI upload)
// never sees half a report.
func writeAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
