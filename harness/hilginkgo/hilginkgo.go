// Package hilginkgo turns hil scenarios into Ginkgo specs: one spec per
// case (scenario × target × platform), declared while Ginkgo builds its
// tree, so that labels, focus, `ginkgo -p` and `--label-filter` work on
// cases as on any spec.
//
//	func TestImage(t *testing.T) {
//		RegisterFailHandler(Fail)
//		RunSpecs(t, "my image")
//	}
//
//	var _ = hilginkgo.Specs(harness.Config{
//		Image:     "oci:build/app",
//		Scenarios: []string{"scenarios"},
//	}, hilginkgo.FromEnv())
//
//	var _ = hilginkgo.Reports("build/report")
//
// Each spec is labelled with its target, its board (for a board of the
// device target), its platform ("linux-arm-v7": Ginkgo labels cannot hold
// "/") and the scenario's tags; its timeout is the scenario's
// (harness.Suite.Timeout). A case the target cannot run (capture under
// qemu-user) is skipped with the reason; a failure, or an infra-error
// after the retries, fails the spec with the reason and the step
// timeline. Reports gathers the result of every spec of every parallel
// process and writes hil's reports once, at the end of the suite.
package hilginkgo

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/hiltest"
	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
)

// entryName names the report entry each spec attaches its result to.
const entryName = "hil-result"

type options struct {
	env     bool
	labels  []string
	variant string
	budget  time.Duration
	fail    *expectFail
}

type expectFail struct {
	phase  scenario.StepKind
	reason *regexp.Regexp
}

// Option configures Specs.
type Option func(*options)

// FromEnv lets the HIL_* environment variables change the configuration
// (harness.ConfigFromEnv): HIL_IMAGE, HIL_TARGETS, HIL_PLATFORMS,
// HIL_DEVICES, HIL_DEVICE, HIL_INSECURE, HIL_SHARD, HIL_TIMINGS,
// HIL_BOARDS and HIL_BOARD_PROFILES. A
// variable that is set wrong becomes a failing spec that says so.
func FromEnv() Option { return func(o *options) { o.env = true } }

// Labels adds labels to every spec (cleaned up as Label does).
func Labels(labels ...string) Option {
	return func(o *options) { o.labels = append(o.labels, labels...) }
}

// Variant names the image of these specs when a suite tests several (a
// sample's Rust build, a broken variant): the name is the text of the
// container the specs are in ("pcapwatch-rs passes startup on system
// linux-arm-v7") and a label.
func Variant(name string) Option { return func(o *options) { o.variant = name } }

// StartupBudget replaces every scenario's startup budget (a variant that
// is ready only after 30 s is caught by a 10 s budget without the wait).
func StartupBudget(d time.Duration) Option { return func(o *options) { o.budget = d } }

// ExpectFail turns the specs around: each case must fail, decided at a
// step of kind phase (scenario.PhaseStaticCheck, scenario.PhaseReady, a
// step kind), with a reason that reason matches; a failed static check
// must not have booted. This is how a suite proves its teeth on broken
// builds of the image.
func ExpectFail(phase scenario.StepKind, reason *regexp.Regexp) Option {
	return func(o *options) { o.fail = &expectFail{phase: phase, reason: reason} }
}

// Label is s as a Ginkgo label: the characters Ginkgo refuses in labels
// ("&|!,()/") become "-" and surrounding space goes ("linux/arm/v7" is
// "linux-arm-v7").
func Label(s string) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if strings.ContainsRune("&|!,()/", r) {
			return '-'
		}
		return r
	}, s))
	s = strings.TrimLeft(s, ":")
	if strings.HasSuffix(s, ":") {
		s = strings.TrimRight(s, ":")
	}
	return s
}

// Labels of a case: its target, its board (the NAME of a target instance
// KIND@NAME), its platform, its board profile as a label set
// ("board:pi3b+", "board:pi4-64": --label-filter='board: containsAny
// pi3b+'), and the scenario's tags.
func caseLabels(c scenario.Case) []string {
	ls := []string{c.Target, c.Platform}
	if kind, board, ok := strings.Cut(c.Target, "@"); ok {
		ls = append(ls, kind, board)
	}
	if c.Board != nil {
		ls = append(ls, "board:"+c.Board.Label())
	}
	return append(ls, c.Scenario.Tags...)
}

func labelsOf(ss []string) ginkgo.Labels {
	var out ginkgo.Labels
	seen := map[string]bool{}
	for _, s := range ss {
		if l := Label(s); l != "" && !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

// Specs declares one spec per case of cfg (harness.LoadSuite plans them;
// with cfg.Shard, only that shard's). Call it while Ginkgo builds the tree:
// at the top level of a test file (var _ = hilginkgo.Specs(...)) or inside
// a container node. The image is opened by the first spec that runs, once
// per Ginkgo process. A configuration or scenario error becomes one
// failing spec that says what is wrong.
func Specs(cfg harness.Config, opts ...Option) bool {
	var o options
	for _, f := range opts {
		f(&o)
	}
	labels := append(append([]string{}, o.labels...), o.variant)
	s, shard, err := load(cfg, o)
	if err != nil {
		ginkgo.Describe(cmp.Or(o.variant, cfg.Image), labelsOf(labels), func() {
			ginkgo.It("loads the configuration and scenarios", func() { ginkgo.Fail(err.Error()) })
		})
		return true
	}
	cfg = s.Config()
	text := cmp.Or(o.variant, cfg.Image)
	plan.add(s, shard, o.variant == "")
	ginkgo.Describe(text, labelsOf(labels), func() {
		for _, c := range s.Cases() {
			ginkgo.It(specText(c, o), labelsOf(caseLabels(c)), ginkgo.NodeTimeout(s.Timeout(c)), func(ctx ginkgo.SpecContext) {
				res, err := s.Run(ctx, c)
				gomega.Expect(err).NotTo(gomega.HaveOccurred(), "opening %s", cfg.Image)
				ginkgo.AddReportEntry(entryName, res, ginkgo.ReportEntryVisibilityNever)
				if o.fail != nil {
					checkFails(res, o.fail)
					return
				}
				if res.Verdict == scenario.Unsupported {
					// Honest, not a failure of the app: e.g. capture under
					// qemu-user. It shows as skipped, with the reason.
					ginkgo.Skip("unsupported: " + res.Reason)
				}
				gomega.Expect(res.Verdict).To(gomega.Equal(scenario.Pass), "%s\n%s", res.Reason, hiltest.Steps(res))
			})
		}
	})
	return true
}

// load makes the suite of one Specs call. It returns the shard the user
// asked for: the suite's own is rotated (see below).
func load(cfg harness.Config, o options) (*harness.Suite, *scenario.Shard, error) {
	if o.env {
		var err error
		if cfg, err = harness.ConfigFromEnv(cfg); err != nil {
			return nil, nil, err
		}
	}
	shard := cfg.Shard
	if shard != nil {
		// Each Specs call splits its own cases; a call with fewer cases
		// than shards would always fill the first shards. Rotating each
		// call's split by the cases planned before it spreads small calls
		// over every shard, and still puts each case in exactly one
		// (every process builds the same tree, so all agree).
		plan.mu.Lock()
		off := plan.count
		plan.mu.Unlock()
		n := shard.Count
		rot := scenario.Shard{Index: ((shard.Index-1-off)%n+n)%n + 1, Count: n}
		cfg.Shard = &rot
	}
	s, err := harness.LoadSuite(cfg)
	if err != nil {
		return nil, nil, err
	}
	if o.budget > 0 {
		for _, sc := range s.Scenarios() {
			sc.Startup.Budget = o.budget
		}
	}
	return s, shard, nil
}

func specText(c scenario.Case, o options) string {
	t := harness.CaseName(c)
	switch {
	case o.fail != nil:
		t = "fails " + t
	case o.variant != "":
		t = "passes " + t
	}
	return t
}

func checkFails(res scenario.Result, want *expectFail) {
	gomega.Expect(res.Verdict).To(gomega.Equal(scenario.Fail), "must fail, got %s: %s", res.Verdict, res.Reason)
	gomega.Expect(res.FailedStep).To(gomega.BeNumerically(">=", 0))
	gomega.Expect(res.Steps[res.FailedStep].Kind).To(gomega.Equal(want.phase), "decided at the wrong step: %s", res.Reason)
	gomega.Expect(res.Reason).To(gomega.MatchRegexp(want.reason.String()))
	if want.phase == scenario.PhaseStaticCheck {
		for _, st := range res.Steps {
			gomega.Expect(st.Kind).NotTo(gomega.Equal(scenario.PhaseBoot), "a failed static check must not boot")
		}
	}
}

// plan is what this process's Specs calls declared: every Ginkgo process
// builds the same tree, so each knows the whole suite.
var plan planned

type planned struct {
	mu sync.Mutex
	// subject is the image under test: the first Specs call's without a
	// Variant (Go initializes the test files of a package in file-name
	// order, so "first" alone would depend on file names).
	subject      *harness.Suite
	subjectFinal bool
	count        int // cases all shards together plan
	shard        *scenario.Shard
}

func (p *planned) add(s *harness.Suite, shard *scenario.Shard, final bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.subject == nil || final && !p.subjectFinal {
		p.subject, p.subjectFinal = s, final
	}
	p.count += s.Planned()
	if shard != nil {
		p.shard = shard
	}
}

// Reports declares, once for the suite, a ReportAfterSuite node that
// gathers the result of every spec that Specs declared, from every
// parallel process (`ginkgo -p`), and writes junit.xml, results.json and
// report.html into dir. The report is about the image of the first Specs
// call without a Variant (its results first); a sharded suite writes its report even when its
// shard had no spec, so that `hil report merge` can check every shard is
// there. Use it at the top level: var _ = hilginkgo.Reports(dir).
func Reports(dir string, opts ...report.Option) bool {
	return ginkgo.ReportAfterSuite("hil reports", func(r ginkgo.Report) {
		results := Results(r)
		plan.mu.Lock()
		subject, count, shard := plan.subject, plan.count, plan.shard
		plan.mu.Unlock()
		if len(results) == 0 && shard == nil {
			return
		}
		ropts := []report.Option{report.WithTitle("hil suite")}
		if subject != nil {
			cfg := subject.Config()
			ref := cfg.Image
			sort.SliceStable(results, func(i, j int) bool { return results[i].ImageRef == ref && results[j].ImageRef != ref })
			ropts = append(ropts, report.WithMeta("targets", strings.Join(subject.TargetNames(), ",")))
			if digest := digestOf(results, cfg); digest != "" {
				ropts = append(ropts, report.WithImage(ref, digest))
			}
		}
		if shard != nil {
			ropts = append(ropts, report.WithShard(*shard, count))
		}
		paths, err := report.New(results, append(ropts, opts...)...).WriteDir(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hil reports: %v\n", err)
			return
		}
		fmt.Fprintf(os.Stderr, "hil reports: %s\n", strings.Join(paths, " "))
	})
}

// Results are the results the specs of r attached, from every parallel
// process: in-process entries keep the value, entries of other processes
// arrive as JSON.
func Results(r ginkgo.Report) []scenario.Result {
	var out []scenario.Result
	for _, sr := range r.SpecReports {
		for _, e := range sr.ReportEntries {
			if e.Name != entryName {
				continue
			}
			if res, ok := e.GetRawValue().(scenario.Result); ok {
				out = append(out, res)
				continue
			}
			var res scenario.Result
			if err := json.Unmarshal([]byte(e.Value.AsJSON), &res); err != nil {
				fmt.Fprintf(os.Stderr, "hil reports: the result of %s: %v\n", sr.FullText(), err)
				continue
			}
			out = append(out, res)
		}
	}
	return out
}

// digestOf is the digest of the image under test: from its results, or,
// in a shard that ran none of its cases, by opening it.
func digestOf(results []scenario.Result, cfg harness.Config) string {
	for _, r := range results {
		if r.ImageRef == cfg.Image {
			return r.ImageDigest
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img, err := harness.OpenImage(ctx, cfg.Image, cfg.ImageOptions...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hil reports: %v\n", err)
		return ""
	}
	return img.Digest()
}
