// The hil suite: every scenarios/*.yaml × target × platform is a Ginkgo
// spec, run against the image in HIL_IMAGE (default: the bundled sample
// image). Labels are the target ("system"), the platform with dashes
// ("linux-arm-v7") and the scenario's tags, so that
//
//	ginkgo --label-filter=system
//	ginkgo --label-filter='capture && !performance' -p
//
// work. A case the target cannot run (capture under qemu-user) is skipped
// with the reason; infra errors (after a retry) and failures fail the spec.
// A second table runs the broken sample variants and asserts that the
// right scenarios fail for the right reason: the gate's teeth are tested.
// With the bundled sample, the Rust build (pcapwatch-rs) and late-crash
// must pass every case too.
//
// Environment:
//
//	HIL_IMAGE       image under test (default oci:build/images/pcapwatch)
//	HIL_TARGETS     comma-separated targets (default system)
//	HIL_PLATFORMS   comma-separated platforms replacing the scenarios' own
//	HIL_IMAGES      where the sample images are (default build/images)
//	HIL_REPORT_DIR  where junit.xml, results.json and report.html go (default build/report)
//	HIL_INSECURE    non-empty: plain HTTP for a loopback registry in HIL_IMAGE
//	HIL_DEVICES     board inventory for HIL_TARGETS=device (default devices.yaml)
//	HIL_DEVICE      the board to run on, by name in HIL_DEVICES
//	HIL_SHARD       i/n: only the i-th of n parts of the specs (CI matrices);
//	                merge the shards' HIL_REPORT_DIRs with hil report merge
//	HIL_TIMINGS     with HIL_SHARD: balance by the durations in this
//	                results.json (or report directory) of an earlier run
package hil_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
)

func TestHIL(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "hil scenarios")
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var (
	imagesDir = env("HIL_IMAGES", filepath.Join("build", "images"))
	imageRef  = env("HIL_IMAGE", "oci:"+filepath.Join(imagesDir, "pcapwatch"))
	targets   = list(env("HIL_TARGETS", "system"))
	platforms = list(os.Getenv("HIL_PLATFORMS"))
	reportDir = env("HIL_REPORT_DIR", filepath.Join("build", "report"))

	// Loaded while the spec tree is built, so that every case is a spec.
	bundled, loadErr = scenario.LoadDir("scenarios")

	// shardOf says which specs this process's shard runs (HIL_SHARD).
	shard, inShard, shardErr = shardFromEnv()
)

// specKey names a spec for sharding: a bundled case by its case key; a
// broken-variant spec with the variant before the scenario's name.
func specKey(c scenario.Case, variant string) scenario.CaseKey {
	k := c.Key()
	if variant != "" {
		k.Scenario = variant + "/" + k.Scenario
	}
	return k
}

// shardFromEnv splits every spec of the suite (bundled cases and broken
// variants) by HIL_SHARD, balanced by HIL_TIMINGS, the way hil run
// --shard splits cases: each spec is in exactly one shard.
func shardFromEnv() (*scenario.Shard, func(scenario.CaseKey) bool, error) {
	all := func(scenario.CaseKey) bool { return true }
	v := os.Getenv("HIL_SHARD")
	if v == "" {
		if os.Getenv("HIL_TIMINGS") != "" {
			return nil, all, fmt.Errorf("HIL_TIMINGS balances shards: set HIL_SHARD=i/n too")
		}
		return nil, all, nil
	}
	s, err := scenario.ParseShard(v)
	if err != nil {
		return nil, all, fmt.Errorf("HIL_SHARD: %w", err)
	}
	var t scenario.Timings
	if p := os.Getenv("HIL_TIMINGS"); p != "" {
		if t, err = scenario.ReadTimings(p); err != nil {
			return nil, all, fmt.Errorf("HIL_TIMINGS: %w", err)
		}
	}
	var keys []scenario.CaseKey
	for _, c := range cases(bundled) {
		keys = append(keys, specKey(c, ""))
		if os.Getenv("HIL_IMAGE") == "" {
			for _, v := range alsoPassing {
				keys = append(keys, specKey(c, v))
			}
		}
	}
	for _, bc := range brokenCases() {
		keys = append(keys, specKey(bc.c, bc.b.variant))
	}
	mine := map[scenario.CaseKey]bool{}
	for i, sh := range scenario.Split(keys, s.Count, t) {
		if sh == s.Index-1 {
			mine[keys[i]] = true
		}
	}
	return &s, func(k scenario.CaseKey) bool { return mine[k] }, nil
}

// labelOf turns a platform into a Ginkgo label (no slashes allowed).
func labelOf(platform string) string { return strings.ReplaceAll(platform, "/", "-") }

// runners holds one runner per image for this Ginkgo process; the targets
// inside keep their warm-boot state across specs.
var runners = map[string]*scenario.Runner{}

func runnerFor(ctx context.Context, ref string) *scenario.Runner {
	if r, ok := runners[ref]; ok {
		return r
	}
	if strings.HasPrefix(ref, "oci:") {
		dir := strings.TrimPrefix(ref, "oci:")
		if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
			Fail(fmt.Sprintf("image %s is not built (%v): run `make images`", ref, err))
		}
	}
	retries := 1
	// Cases carry their platform; the runner's platform list only matters
	// to Plan, which the suite does not use.
	cfg := harness.Config{Image: ref, Targets: targets, Retries: &retries,
		Devices: env("HIL_DEVICES", "devices.yaml"), Device: os.Getenv("HIL_DEVICE")}
	if os.Getenv("HIL_INSECURE") != "" {
		cfg.ImageOptions = append(cfg.ImageOptions, image.WithRegistry(registry.New(registry.WithInsecure())))
	}
	r, _, err := harness.NewRunner(ctx, cfg)
	Expect(err).NotTo(HaveOccurred(), "opening %s", ref)
	runners[ref] = r
	return r
}

// cases lists scenario × target × platform for the targets of this run.
func cases(scs []*scenario.Scenario) []scenario.Case {
	var out []scenario.Case
	for _, sc := range scs {
		ps := sc.Platforms
		if len(platforms) > 0 {
			ps = platforms
		}
		for _, t := range sc.Targets {
			if !contains(targets, t) {
				continue
			}
			for _, p := range ps {
				out = append(out, scenario.Case{Scenario: sc, Target: t, Platform: p})
			}
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func labels(c scenario.Case, extra ...string) Labels {
	ls := Labels{c.Target, labelOf(c.Platform)}
	ls = append(ls, c.Scenario.Tags...)
	return append(ls, extra...)
}

// timeoutOf bounds a case: startup budget, every deadline and wait, and
// room for a cold boot and a retry.
func timeoutOf(sc *scenario.Scenario) time.Duration {
	d := sc.Startup.Budget + time.Minute
	for _, st := range sc.Steps {
		switch {
		case st.ExpectOutput != nil:
			d += st.ExpectOutput.Within
		case st.ExpectFrames != nil:
			d += st.ExpectFrames.Within
		case st.ExpectExit != nil:
			d += st.ExpectExit.Within
		case st.Kind == scenario.StepWait:
			d += st.Wait
		case st.Replay != nil:
			d += time.Minute
		}
	}
	return 2 * d
}

// run runs one case and records its result for the suite's reports.
func run(ctx context.Context, ref string, c scenario.Case) scenario.Result {
	res := runnerFor(ctx, ref).Run(ctx, c)
	AddReportEntry("hil-result", res, ReportEntryVisibilityNever)
	return res
}

var _ = Describe("scenarios", Label("scenarios"), func() {
	if loadErr != nil {
		It("parse", func() { Fail(loadErr.Error()) })
		return
	}
	if shardErr != nil {
		It("shard", func() { Fail(shardErr.Error()) })
		return
	}
	passingTable(imageRef, "")
})

// alsoPassing are sample images that must pass every bundled scenario too
// when the suite runs on the bundled sample (HIL_IMAGE unset): the Rust
// build of the app, and late-crash, which passes them all and panics 10 s
// after ready, later than any bundled scenario looks (the health window
// after a promotion is what catches it).
var alsoPassing = []string{"pcapwatch-rs", "late-crash"}

var _ = Describe("other sample images", Label("scenarios"), func() {
	if loadErr != nil || shardErr != nil || os.Getenv("HIL_IMAGE") != "" {
		return
	}
	for _, name := range alsoPassing {
		passingTable("oci:"+filepath.Join(imagesDir, name), name)
	}
})

// passingTable is one spec per bundled case that ref must pass; variant,
// when set, labels the specs and names them.
func passingTable(ref, variant string) {
	for _, c := range cases(bundled) {
		c := c
		if !inShard(specKey(c, variant)) {
			continue
		}
		title := fmt.Sprintf("%s on %s %s", c.Scenario.Name, c.Target, c.Platform)
		var extra []string
		if variant != "" {
			title = variant + " passes " + title
			extra = append(extra, variant)
		}
		It(title, labels(c, extra...), NodeTimeout(timeoutOf(c.Scenario)), func(ctx SpecContext) {
			res := run(ctx, ref, c)
			if res.Verdict == scenario.Unsupported {
				// Honest, not a failure of the app: e.g. capture under
				// qemu-user. It shows as skipped, with the reason.
				Skip("unsupported: " + res.Reason)
			}
			Expect(res.Verdict).To(Equal(scenario.Pass), "%s\n%s", res.Reason, lastSteps(res))
		})
	}
}

// digestOf is the digest of the image under test: from its results, or,
// in a shard that ran only broken variants, by opening it.
func digestOf(results []scenario.Result, ref string) string {
	for _, r := range results {
		if r.ImageRef == ref {
			return r.ImageDigest
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var opts []image.Option
	if os.Getenv("HIL_INSECURE") != "" {
		opts = append(opts, image.WithRegistry(registry.New(registry.WithInsecure())))
	}
	img, err := harness.OpenImage(ctx, ref, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hil reports: %v\n", err)
		return ""
	}
	return img.Digest()
}

func lastSteps(res scenario.Result) string {
	var b strings.Builder
	for _, st := range res.Steps {
		fmt.Fprintf(&b, "  %-11s %8s %s\n", st.Verdict, st.Duration.Round(time.Millisecond), st.Desc)
	}
	return b.String()
}

// brokenCase says how a broken sample variant must be caught.
type brokenCase struct {
	variant   string
	scenarios []string
	phase     scenario.StepKind
	reason    *regexp.Regexp
	// budget, when set, replaces the scenarios' startup budget (the
	// slow-start variant is ready after 30 s: a 10 s budget catches it
	// without a 30 s wait).
	budget time.Duration
}

var brokenVariants = []brokenCase{
	{"no-libpcap", []string{"startup", "arp-sweep"}, scenario.PhaseStaticCheck, regexp.MustCompile(`needs libpcap\.so\.0\.8 but the image does not have it`), 0},
	{"old-glibc", []string{"startup", "graceful-stop"}, scenario.PhaseStaticCheck, regexp.MustCompile(`needs GLIBC_2\.\d+ \(symbol \w+@GLIBC_2\.\d+\) but the image's libc\.so\.6 \(glibc 2\.31\) provides up to GLIBC_2\.\d+`), 0},
	{"wrong-arch", []string{"startup"}, scenario.PhaseStaticCheck, regexp.MustCompile(`AArch64 64-bit.*needs ARM 32-bit`), 0},
	{"no-loader", []string{"startup"}, scenario.PhaseStaticCheck, regexp.MustCompile(`needs the loader /lib/ld-linux-armhf\.so\.3`), 0},
	{"crash-on-start", []string{"startup", "arp-sweep"}, scenario.PhaseReady, regexp.MustCompile(`(?s)the app ended \(exit 1\) before printing a line matching.*\[stderr\] pcapwatch: `), 0},
	{"slow-start", []string{"startup"}, scenario.PhaseReady, regexp.MustCompile(`not ready within the startup budget of 10s`), 10 * time.Second},
	{"rs-no-deps", []string{"startup"}, scenario.PhaseStaticCheck, regexp.MustCompile(`libpcap\.so\.0\.8 needs libdbus-1\.so\.3 but the image does not have it.*chain: /usr/local/bin/pcapwatch-rs → /lib/libpcap\.so\.0\.8 → libdbus-1\.so\.3`), 0},
}

type brokenSpec struct {
	b brokenCase
	c scenario.Case
}

// brokenCases lists the broken-variant specs of this run.
func brokenCases() []brokenSpec {
	if loadErr != nil {
		return nil
	}
	byName := map[string]*scenario.Scenario{}
	for _, sc := range bundled {
		byName[sc.Name] = sc
	}
	var out []brokenSpec
	for _, b := range brokenVariants {
		for _, n := range b.scenarios {
			sc := byName[n]
			if sc == nil {
				continue
			}
			if b.budget != 0 {
				cp := *sc
				cp.Startup.Budget = b.budget
				sc = &cp
			}
			// One target is enough to prove the teeth: the first of this run,
			// on the platform the variants are built for.
			if !contains(sc.Targets, targets[0]) {
				continue
			}
			out = append(out, brokenSpec{b, scenario.Case{Scenario: sc, Target: targets[0], Platform: scenario.DefaultPlatform}})
		}
	}
	return out
}

var _ = Describe("broken variants", Label("broken"), func() {
	if loadErr != nil || shardErr != nil {
		return
	}
	for _, bc := range brokenCases() {
		b, c := bc.b, bc.c
		if !inShard(specKey(c, b.variant)) {
			continue
		}
		It(fmt.Sprintf("%s fails %s on %s %s", b.variant, c.Scenario.Name, c.Target, c.Platform), labels(c, b.variant), NodeTimeout(timeoutOf(c.Scenario)), func(ctx SpecContext) {
			ref := "oci:" + filepath.Join(imagesDir, b.variant)
			res := run(ctx, ref, c)
			Expect(res.Verdict).To(Equal(scenario.Fail), "%s must fail, got %s: %s", b.variant, res.Verdict, res.Reason)
			Expect(res.FailedStep).To(BeNumerically(">=", 0))
			Expect(res.Steps[res.FailedStep].Kind).To(Equal(b.phase), "decided at the wrong step: %s", res.Reason)
			Expect(res.Reason).To(MatchRegexp(b.reason.String()))
			if b.phase == scenario.PhaseStaticCheck {
				for _, st := range res.Steps {
					Expect(st.Kind).NotTo(Equal(scenario.PhaseBoot), "a failed static check must not boot")
				}
			}
		})
	}
})

// The reports cover every process of a parallel run: each spec attached its
// result as a report entry; the suite report gathers them all.
var _ = ReportAfterSuite("hil reports", func(r Report) {
	var results []scenario.Result
	for _, sr := range r.SpecReports {
		for _, e := range sr.ReportEntries {
			if e.Name != "hil-result" {
				continue
			}
			// In-process entries keep the value; entries from other parallel
			// processes arrive as JSON.
			if res, ok := e.GetRawValue().(scenario.Result); ok {
				results = append(results, res)
				continue
			}
			var res scenario.Result
			if err := json.Unmarshal([]byte(e.Value.AsJSON), &res); err != nil {
				fmt.Fprintf(GinkgoWriter, "hil-result of %s: %v\n", sr.FullText(), err)
				continue
			}
			results = append(results, res)
		}
	}
	if len(results) == 0 && shard == nil {
		return
	}
	// The image under test first, then the broken variants.
	sort.SliceStable(results, func(i, j int) bool { return results[i].ImageRef == imageRef && results[j].ImageRef != imageRef })
	opts := []report.Option{report.WithTitle("hil suite"), report.WithMeta("targets", strings.Join(targets, ","))}
	if digest := digestOf(results, imageRef); digest != "" {
		opts = append(opts, report.WithImage(imageRef, digest))
	}
	if shard != nil {
		// Every shard reports, even one without a spec: the merge checks
		// all are there and tested one image.
		opts = append(opts, report.WithShard(*shard, len(cases(bundled))+len(brokenCases())))
	}
	rep := report.New(results, opts...)
	paths, err := rep.WriteDir(reportDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hil reports: %v\n", err)
		return
	}
	fmt.Fprintf(os.Stderr, "hil reports: %s\n", strings.Join(paths, " "))
})
