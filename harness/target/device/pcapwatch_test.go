package device

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/replay"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/pcapfixtures"
)

// The sample app, natively on an amd64 "board", captures the ARP sweep the
// agent relays into its interface and reports exactly the fixture's devices.
func TestBoardSampleAppCapturesThroughTheAgent(t *testing.T) {
	b := newLabBoard(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	art, err := image.Open(ctx, "oci:"+filepath.Join(testenv.ImagesDir(t), "pcapwatch"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := art.Image("linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := New(b.Machine).Boot(ctx, img, runConfig(img))
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	defer dev.Close()
	waitLine(t, dev.Output(), "ready iface=eth0")

	fx, err := pcapfixtures.Lookup("arp-sweep")
	if err != nil {
		t.Fatal(err)
	}
	path, err := fx.Path()
	if err != nil {
		t.Fatal(err)
	}
	st, err := replay.Run(ctx, dev.Link(), path, replay.WithSchedule(replay.Schedule{Kind: replay.TopSpeed}))
	if err != nil {
		t.Fatal(err)
	}
	sent := st.Frames
	// Drain returns once the agent has put every frame on the interface.
	if err := dev.Link().(interface{ Drain(context.Context) error }).Drain(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, d := range fx.Expect.DeviceSeen {
		want[d.MAC+" "+d.IP] = true
	}
	got := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for len(got) < len(want) {
		select {
		case l := <-dev.Output():
			var ev struct{ Event, MAC, IP string }
			if json.Unmarshal([]byte(l.Text), &ev) == nil && ev.Event == "device_seen" {
				if !want[ev.MAC+" "+ev.IP] {
					t.Errorf("device_seen %s %s is not in the fixture", ev.MAC, ev.IP)
				}
				got[ev.MAC+" "+ev.IP] = true
			}
		case <-timeout:
			dev.Signal(syscall.SIGTERM)
			lines := waitLine(t, dev.Output(), `"summary"`)
			t.Fatalf("saw %d of %d devices within 30s; %s", len(got), len(want), lines[len(lines)-1].Text)
		}
	}
	if err := dev.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	lines := waitLine(t, dev.Output(), `"summary"`)
	summary := lines[len(lines)-1].Text
	if !strings.Contains(summary, `"frames":294,`) {
		t.Errorf("summary after %d frames: %s", sent, summary)
	}
	exit, err := dev.Wait(ctx)
	if err != nil || exit != target.Exited(0) {
		t.Fatalf("exit = %v, %v; want exit 0", exit, err)
	}
	dev.Close()
	b.assertClean(t)
}
