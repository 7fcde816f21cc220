//go:build linux

package user_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target/internal/targettest"
	"github.com/hilproject/hil/harness/target/user"
	"github.com/hilproject/hil/internal/testenv"
)

const quietSteps = `name: quiet
targets: [user]
platforms: [linux/amd64]
startup: {budget: 30s, ready: {regex: "^ready iface=eth0$"}}
steps:
  - wait: 3s
  - expect_output: {regex: error, count: "== 0", within: 3s, settle: 2s}
  - expect_no_output: {regex: error}
`

// The app's process killed (kill -9) or stopped from outside hil under a
// wait or an upper-bound step is a dead device: infra-error naming the
// process, never a pass, never the app's failure. The app's own end and
// hil's own signals are not.
func TestProcessKilledFromOutsideIsInfra(t *testing.T) {
	testenv.RequireRoot(t)
	img := targettest.Images{Img: targettest.Open(t, "pcapwatch", "linux/amd64")}
	for _, tc := range []struct {
		name  string
		fault targettest.Fault
		want  string
	}{
		{"kill -9 during wait", targettest.Fault{Step: 0, After: time.Second, Do: targettest.KillDevice(syscall.SIGKILL)},
			"was killed by signal 9 (SIGKILL), which hil did not send"},
		{"SIGSTOP during expect_output == 0", targettest.Fault{Step: 1, After: 300 * time.Millisecond, Do: targettest.KillDevice(syscall.SIGSTOP)},
			"is stopped (state T"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			res := targettest.RunCase(t, user.New(), img, quietSteps, &tc.fault)
			t.Logf("%s: %s: %s", tc.name, res.Verdict, res.Reason)
			if res.Verdict != scenario.InfraError || !strings.Contains(res.Reason, tc.want) || !strings.Contains(res.Reason, "the app's process pcapwatch (pid ") {
				t.Fatalf("verdict %s, want infra-error saying %q: %s", res.Verdict, tc.want, res.Reason)
			}
		})
	}

	t.Run("a kill ends a long wait at once", func(t *testing.T) {
		// The case timeout is far below the wait: only the death ends it.
		res := targettest.RunCase(t, user.New(), img, strings.Replace(quietSteps, "wait: 3s", "wait: 5m", 1),
			&targettest.Fault{Step: 0, After: 500 * time.Millisecond, Do: targettest.KillDevice(syscall.SIGKILL)}, scenario.WithCaseTimeout(time.Minute))
		if res.Verdict != scenario.InfraError || !strings.Contains(res.Reason, "which hil did not send") || !strings.Contains(res.Reason, "during step 1 (wait 5m0s)") {
			t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
		}
	})

	t.Run("hil's own SIGKILL is the app's exit", func(t *testing.T) {
		res := targettest.RunCase(t, user.New(), img, quietSteps+"  - signal: KILL\n  - expect_exit: {signal: KILL}\n", nil)
		if res.Verdict != scenario.Pass || res.Exit == nil || res.Exit.String() != "killed by SIGKILL" {
			t.Fatalf("verdict %s exit %v: %s", res.Verdict, res.Exit, res.Reason)
		}
	})
}
