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
	"path/filepath"
	"sort"
	"time"

	"github.com/hilproject/hil/harness/scenario"
)

// File names WriteDir uses.
const (
	JUnitFile = "junit.xml"
	JSONFile  = "results.json"
	HTMLFile  = "report.html"
)

// Report is one run: the image under test and every case's result.
type Report struct {
	Title       string            `json:"title"`
	ImageRef    string            `json:"image_ref,omitempty"`
	ImageDigest string            `json:"image_digest,omitempty"`
	HilVersion  string            `json:"hil_version,omitempty"`
	Start       time.Time         `json:"start"`
	Duration    time.Duration     `json:"duration_ns"`
	Summary     scenario.Summary  `json:"summary"`
	Results     []scenario.Result `json:"results"`
	Meta        map[string]string `json:"meta,omitempty"`
	// Shard is "i/n" when the run was one shard of a sharded run, and
	// Planned the number of cases all n shards together plan; a merged
	// report has Planned and MergedFrom (the shards' report directories).
	Shard      string   `json:"shard,omitempty"`
	Planned    int      `json:"planned,omitempty"`
	MergedFrom []string `json:"merged_from,omitempty"`
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

// WithMeta adds a key/value shown in the report header and JSON.
func WithMeta(k, v string) Option {
	return func(r *Report) {
		if r.Meta == nil {
			r.Meta = map[string]string{}
		}
		r.Meta[k] = v
	}
}

// New builds a report from results, sorted by image (in order of first
// appearance), scenario, target, board, platform.
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

// ReadJSON reads a report written by WriteJSON.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("reading JSON report: %w", err)
	}
	return &r, nil
}

// ReadDir reads the results.json of a report directory.
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
	return r, nil
}

// WriteDir writes junit.xml, results.json and report.html into dir
// (created if needed) and returns their paths.
func (r *Report) WriteDir(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report dir: %w", err)
	}
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
