package imgrun

import (
	"context"
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/emu"
)

func TestStatusExitAndGap(t *testing.T) {
	s := NewStatus("the app container", map[string]string{"target": "x"})
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
	if info := s.Info(); info["mode"] != "native" || info["capture"] != "supported" || !s.Capabilities().Capture {
		t.Errorf("native: info %v caps %+v", info, s.Capabilities())
	}

	s.RecordExit(target.Exit{Code: 143, Signal: "SIGTERM"}, nil)
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
