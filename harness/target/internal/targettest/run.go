package targettest

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/target"
)

// Boot boots img on tgt with the sample app capturing on iface, and
// registers a cleanup that closes the device, checks with Gone that nothing
// it made is left, then runs after (may be nil). name says which image in
// a failure.
func Boot(t *testing.T, tgt target.Target, img *image.Image, name, iface string, timeout time.Duration, after func()) (target.App, *Collector) {
	t.Helper()
	cfg := RunConfig(img, iface)
	cfg.Cmd = []string{"--iface", iface}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dev, err := tgt.Boot(ctx, img, cfg)
	if err != nil {
		t.Fatalf("boot %s: %v", name, err)
	}
	t.Cleanup(func() {
		info := dev.Info()
		if err := dev.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		Gone(t, info)
		if after != nil {
			after()
		}
	})
	return dev, Collect(t, dev)
}

// CapturesARPs checks a sample app that captures on iface: once it is
// ready, n ARP requests written to the device's link each give a
// device_seen with the sender's IP, and SIGTERM gives a summary of n frames
// and exit 0 within exitTimeout.
func CapturesARPs(t *testing.T, dev target.App, out *Collector, iface string, n int, readyTimeout, exitTimeout time.Duration) {
	t.Helper()
	out.Until(Contains("ready iface="+iface), readyTimeout)
	for i := 1; i <= n; i++ {
		if err := dev.Link().WriteFrame(ARP(byte(i))); err != nil {
			t.Fatalf("write frame %d: %v", i, err)
		}
	}
	for seen := 1; seen <= n; seen++ {
		l := out.Until(func(l target.Line) bool { ev, _ := Event(l); return ev == "device_seen" }, 10*time.Second)
		if _, m := Event(l); m["ip"] != fmt.Sprintf("192.168.1.%d", seen) {
			t.Errorf("device_seen %d: got %v", seen, m)
		}
	}
	if err := dev.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sum := out.Until(func(l target.Line) bool { ev, _ := Event(l); return ev == "summary" }, 10*time.Second)
	if _, m := Event(sum); m["frames"] != float64(n) {
		t.Errorf("summary: expected %d frames, got %s", n, sum.Text)
	}
	if ex := Wait(t, dev, exitTimeout); ex.Code != 0 || ex.Signal != "" {
		t.Errorf("exit: expected 0 after SIGTERM, got %s", ex)
	}
}

// FailsLikeABoard checks a broken sample variant: it exits with code,
// never reports ready and, when line is set, says line on stderr. The
// output must end within rest after the exit.
func FailsLikeABoard(t *testing.T, dev target.App, out *Collector, code int, line string, exitTimeout, rest time.Duration) {
	t.Helper()
	ex := Wait(t, dev, exitTimeout)
	lines := out.Rest(rest)
	if ex.Code != code {
		t.Errorf("exit: expected %d, got %s; output:\n%s", code, ex, out.Text())
	}
	found := false
	for _, l := range lines {
		found = found || (l.Stream == target.Stderr && strings.Contains(l.Text, line))
		if strings.HasPrefix(l.Text, "ready ") {
			t.Errorf("a broken image reported ready: %q", l.Text)
		}
	}
	if line != "" && !found {
		t.Errorf("expected a stderr line with %q; output:\n%s", line, out.Text())
	}
}

// HitsEmulatorGap checks the ARM sample app under qemu-user: the device
// says capture is unsupported with the emulator's reason, the app's libpcap
// error (SIOCETHTOOL) comes on stderr within timeout, the app exits 2 within
// exitTimeout, and the device remembers that line as the emulator gap. It
// returns the error line.
func HitsEmulatorGap(t *testing.T, dev target.App, out *Collector, timeout, exitTimeout time.Duration) target.Line {
	t.Helper()
	caps := target.CapabilitiesOf(dev)
	if caps.Capture {
		t.Fatalf("capabilities: expected capture unsupported under qemu-user, got %+v", caps)
	}
	if !strings.Contains(caps.Reason, "SIOCETHTOOL") || !strings.Contains(caps.Reason, "qemu") {
		t.Errorf("capabilities reason %q: expected the emulator and SIOCETHTOOL named", caps.Reason)
	}
	errLine := out.Until(Contains("SIOCETHTOOL"), timeout)
	if errLine.Stream != target.Stderr {
		t.Errorf("the capture error came on %s, expected stderr", errLine.Stream)
	}
	if ex := Wait(t, dev, exitTimeout); ex.Code != 2 || ex.Signal != "" {
		t.Errorf("exit: expected exit 2 (capture error), got %s", ex)
	}
	gd, ok := dev.(target.GapReporter)
	if !ok {
		t.Fatal("device does not expose EmulatorGap")
	}
	if reason, ok := gd.EmulatorGap(); !ok || !strings.Contains(reason, "SIOCETHTOOL") {
		t.Errorf("device EmulatorGap = %q, %v: expected the SIOCETHTOOL line", reason, ok)
	}
	return errLine
}
