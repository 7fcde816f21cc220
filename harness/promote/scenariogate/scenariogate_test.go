package scenariogate_test

import (
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/promote/scenariogate"
	"github.com/hilproject/hil/harness/scenario"
)

// Every verdict the runner gives has the gate's verdict of the same
// meaning; one the gate does not know refuses (infra-error) and says so.
func TestVerdict(t *testing.T) {
	for sv, pv := range map[scenario.Verdict]promote.Verdict{
		scenario.Pass:        promote.Pass,
		scenario.Fail:        promote.Fail,
		scenario.Unsupported: promote.Unsupported,
		scenario.InfraError:  promote.InfraError,
		"":                   promote.InfraError,
		"flaky":              promote.InfraError,
	} {
		if got := scenariogate.Verdict(sv); got != pv {
			t.Errorf("Verdict(%q) = %q, want %q", sv, got, pv)
		}
	}
	o := scenariogate.Outcome(scenario.Result{Scenario: "startup", Target: "system", Platform: "linux/arm/v7", Verdict: "flaky", Reason: "sometimes"}, nil)
	if o.Verdict != promote.InfraError || !strings.Contains(o.Reason, `"flaky" is not one this gate knows`) || o.Board != "virt" {
		t.Errorf("unknown verdict: %+v", o)
	}
	o = scenariogate.Outcome(scenario.Result{Scenario: "startup", Target: "user", Platform: "linux/amd64", Verdict: scenario.Fail, Reason: "exit 1", Attempts: 1}, nil)
	if o.Verdict != promote.Fail || o.Reason != "exit 1" || o.Board != "" || o.Attempts != 1 || o.Scenario != "startup" {
		t.Errorf("fail: %+v", o)
	}
}

// The gate's input is checked before anything is pinned: a missing
// scenario directory, a scenario file with errors, a target nobody
// registered.
func TestInputErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  scenariogate.Config
		want string
	}{
		{scenariogate.Config{Scenarios: []string{"testdata/absent"}, Targets: []string{"system"}}, "no such file"},
		{scenariogate.Config{Scenarios: []string{"testdata/broken.yaml"}, Targets: []string{"system"}}, "broken.yaml:"},
		{scenariogate.Config{Scenarios: []string{"testdata/startup.yaml"}, Targets: []string{"vm"}}, `unknown target "vm"`},
		{scenariogate.Config{Scenarios: []string{"testdata/startup.yaml"}, Targets: []string{"container"}}, "not linked into this program"},
	} {
		if _, err := scenariogate.Test(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
