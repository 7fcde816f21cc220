package imgrun

import (
	"context"
	"strings"
	"syscall"
	"testing"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/emu"
)

func TestStatusExitAndGap(t *testing.T) {
	s := NewStatus("the app container", target.Info{"target": "x"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Wait(ctx); err == nil || !strings.Contains(err.Error(), "waiting for the app container to exit") {
		t.Errorf("Wait before exit with a done ctx: got %v", err)
	}
	if err := s.AlreadyExited("signal SIGTERM"); err != nil {
		t.Errorf("AlreadyExited while running: %v", err)
	}
	s.Observe(target.Line{Text: "SIOCETHTOOL(ETHTOOL_GET_TS_INFO) ioctl failed: Function not implemented"})
	if _, ok := s.EmulatorGap(); ok {
		t.Error("a gap line was recorded although capture is supported")
	}
	s.ProbeEmulator(context.Background(), emu.Emulator{Native: true}, "native", "emulated")
	if info := s.Info(); info.String("mode") != "native" || info.String("capture") != "supported" || !s.Capabilities().Capture {
		t.Errorf("native: info %v caps %+v", info, s.Capabilities())
	}

	s.RecordExit(target.KilledBy("SIGTERM", 143), nil)
	ex, err := s.Wait(context.Background())
	if err != nil || ex.Code != 143 {
		t.Errorf("Wait after exit: %v %v", ex, err)
	}
	if err := s.AlreadyExited("signal SIGINT"); err == nil || !strings.HasPrefix(err.Error(), "signal SIGINT: the app already exited") {
		t.Errorf("AlreadyExited after exit: %v", err)
	}
	info := s.Info()
	info["target"] = "changed"
	if s.Get("target") != "x" {
		t.Error("Info is not a copy")
	}
}

// A SIGKILL hil did not send is a kill from outside; hil's own, any other
// signal, an exit code and an exit nobody saw are not.
func TestKilledFromOutside(t *testing.T) {
	var sent Sent
	if how := KilledFromOutside(target.KilledBy("SIGKILL", 137), &sent); !strings.Contains(how, "which hil did not send") {
		t.Errorf("an unsent SIGKILL: %q", how)
	}
	for _, ex := range []target.Exit{target.KilledBy("SIGSEGV", 139), target.Exited(137), target.NotObserved("stopped by hil")} {
		if how := KilledFromOutside(ex, &sent); how != "" {
			t.Errorf("%s: %q", ex, how)
		}
	}
	sent.Add(syscall.SIGKILL)
	if how := KilledFromOutside(target.KilledBy("SIGKILL", 137), &sent); how != "" {
		t.Errorf("hil's own SIGKILL: %q", how)
	}
}
