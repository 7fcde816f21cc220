package device

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/targettest"
)

const quietSteps = `name: quiet
targets: [device]
platforms: [linux/amd64]
startup: {budget: 60s, ready: {regex: "^ready iface=eth0$"}}
steps:
  - wait: 3s
  - expect_output: {regex: error, count: "== 0", within: 3s, settle: 2s}
  - expect_no_output: {regex: error}
`

// The channel to the board lost under a wait or an upper-bound step (the
// agent killed on the board, the SSH connection dropped) is a dead device:
// an infra-error naming what died, never a pass, never the app's failure,
// and hil still removes what it started on the board.
func TestLostBoardChannelIsInfra(t *testing.T) {
	b := newLabBoard(t)
	img := targettest.Images{Img: busyboxImage(t)}
	killAgent := func(t testing.TB, dev target.App) {
		// The agent runs by docker exec in the holder container; on this
		// lab board its processes are this host's.
		top := b.docker(t, "top", dev.Info().String("container")+"-net", "-eo", "pid,args")
		for _, l := range strings.Split(top, "\n") {
			if f := strings.Fields(l); len(f) > 2 && strings.HasSuffix(f[1], "hil-agent") && f[2] == "link" {
				pid, _ := strconv.Atoi(f[0])
				targettest.Kill(t, pid, syscall.SIGKILL)
				return
			}
		}
		t.Errorf("no hil-agent link process in the holder: %s", top)
	}
	dropSSH := func(t testing.TB, dev target.App) {
		if err := b.sshd.DropConnections(); err != nil {
			t.Error(err)
		}
	}
	dockerKill := func(t testing.TB, dev target.App) { b.docker(t, "kill", dev.Info().String("container")) }
	for _, tc := range []struct {
		name  string
		fault targettest.Fault
		want  string
	}{
		{"agent killed during wait", targettest.Fault{Step: 0, After: time.Second, Do: killAgent},
			"hil's agent on board lab-1"},
		{"SSH dropped during expect_output == 0", targettest.Fault{Step: 1, After: 300 * time.Millisecond, Do: dropSSH},
			"the SSH connection to board lab-1"},
		{"docker kill on the board during wait", targettest.Fault{Step: 0, After: time.Second, Do: dockerKill},
			"was killed by signal 9 (SIGKILL), which hil did not send"},
		// The end of the case: the last step checks at once, and the death
		// must still be seen (the step's own check, or the case's last).
		{"agent killed as the last step starts", targettest.Fault{Step: 2, Do: killAgent},
			"hil's agent on board lab-1"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			res := targettest.RunCase(t, New(b.Machine), img, quietSteps, &tc.fault)
			t.Logf("%s: %s: %s", tc.name, res.Verdict, res.Reason)
			if res.Verdict != scenario.InfraError || !strings.Contains(res.Reason, tc.want) {
				t.Fatalf("verdict %s, want infra-error naming %q: %s", res.Verdict, tc.want, res.Reason)
			}
			if td := res.Steps[len(res.Steps)-1]; td.Kind != scenario.PhaseTeardown || td.Verdict != scenario.Pass {
				t.Errorf("tear down: %s %s", td.Verdict, td.Message)
			}
			b.assertClean(t)
		})
	}
}
