// Package hiltest runs hil scenarios from a plain `go test`, the way
// testcontainers-go and vmtest fit into one: every case (scenario ×
// target × platform) is a subtest of its own that runs while go test
// reports it, so `go test -v` shows each case's live timing and
// `-run 'TestImage/arp-sweep'` picks cases.
//
//	func TestImage(t *testing.T) {
//		hiltest.Run(t, harness.Config{
//			Image:     "oci:build/app",
//			Scenarios: []string{"scenarios"},
//		})
//	}
//
// A case that failed, or ended in an infrastructure error after its
// retries, fails its subtest with the reason and the step timeline; a case
// the target cannot run (capture under qemu-user) is skipped with the
// reason. The container and device targets are plug-ins: import them for
// their side effect to run on them.
package hiltest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
)

type options struct {
	reportDir  string
	reportOpts []report.Option
	env        bool
}

// Option configures Run.
type Option func(*options)

// WithReports writes the JUnit XML, results.json and report.html of every
// case into dir when the cases are done (a failure to write fails t).
func WithReports(dir string, opts ...report.Option) Option {
	return func(o *options) { o.reportDir, o.reportOpts = dir, opts }
}

// FromEnv lets the HIL_* environment variables change the configuration
// (harness.ConfigFromEnv): HIL_IMAGE, HIL_TARGETS, HIL_PLATFORMS,
// HIL_DEVICES, HIL_DEVICE, HIL_INSECURE, HIL_SHARD and HIL_TIMINGS.
func FromEnv() Option { return func(o *options) { o.env = true } }

// Run plans cfg's cases (harness.LoadSuite: nothing boots when a scenario
// file has errors) and runs each as a subtest of t named by
// harness.CaseName, which has no "/": "arp-sweep on system linux-arm-v7".
// The cases of board instances (a device target on several boards) run
// side by side, one case at a time per board, as parallel subtests of a
// "boards" subtest. It returns every result, in the order the cases ran.
func Run(t *testing.T, cfg harness.Config, opts ...Option) []scenario.Result {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.env {
		var err error
		if cfg, err = harness.ConfigFromEnv(cfg); err != nil {
			t.Fatalf("hil: %v", err)
		}
	}
	s, err := harness.LoadSuite(cfg)
	if err != nil {
		t.Fatalf("hil: %v", err)
	}
	if s.Planned() == 0 {
		t.Fatalf("hil: no case to run: none of the %d scenarios lists a target of %s", len(s.Scenarios()), strings.Join(s.TargetNames(), ", "))
	}
	var (
		mu      sync.Mutex
		results []scenario.Result
	)
	run := func(c scenario.Case) func(*testing.T) {
		return func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), s.Timeout(c))
			defer cancel()
			res, err := s.Run(ctx, c)
			if err != nil {
				t.Fatalf("hil: %v", err)
			}
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
			Check(t, res)
		}
	}
	byInstance := map[string][]scenario.Case{}
	var instances []string
	for _, c := range s.Cases() {
		if !strings.Contains(c.Target, "@") {
			t.Run(harness.CaseName(c), run(c))
			continue
		}
		if _, ok := byInstance[c.Target]; !ok {
			instances = append(instances, c.Target)
		}
		byInstance[c.Target] = append(byInstance[c.Target], c)
	}
	if len(instances) > 0 {
		t.Run("boards", func(t *testing.T) {
			for _, inst := range instances {
				t.Run(inst, func(t *testing.T) {
					t.Parallel()
					for _, c := range byInstance[inst] {
						t.Run(harness.CaseName(c), run(c))
					}
				})
			}
		})
	}
	if o.reportDir != "" {
		ropts := o.reportOpts
		if r, img, err := s.Runner(t.Context()); err == nil && r != nil {
			ropts = append([]report.Option{report.WithImage(img.Ref(), img.Digest())}, ropts...)
		}
		if cfg.Shard != nil {
			ropts = append(ropts, report.WithShard(*cfg.Shard, s.Planned()))
		}
		if _, err := report.New(results, ropts...).WriteDir(o.reportDir); err != nil {
			t.Errorf("hil: writing the reports: %v", err)
		}
	}
	return results
}

// Check reports one result on t: a pass logs its duration, an
// unsupported case skips t with the reason, a failure or an infra-error
// fails t with the reason and the step timeline.
func Check(t testing.TB, res scenario.Result) {
	t.Helper()
	switch res.Verdict {
	case scenario.Pass:
		t.Logf("pass in %s (%d attempt(s)) on %s", res.Duration.Round(time.Millisecond), res.Attempts, res.ImageDigest)
	case scenario.Unsupported:
		// Honest, not a failure of the app: e.g. capture under qemu-user.
		t.Skipf("unsupported: %s", res.Reason)
	default:
		t.Errorf("%s: %s\n%s", res.Verdict, res.Reason, Steps(res))
	}
}

// Steps is the step timeline of res, one line per step: verdict,
// duration, what the step did.
func Steps(res scenario.Result) string {
	var b strings.Builder
	for _, st := range res.Steps {
		fmt.Fprintf(&b, "  %-11s %8s %s\n", st.Verdict, st.Duration.Round(time.Millisecond), st.Desc)
	}
	return b.String()
}
