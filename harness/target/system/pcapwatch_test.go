package system

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/link/qemustream"
	"github.com/hilproject/hil/harness/replay"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/pcapfixtures"
)

// sampleImage opens one of the built sample images for linux/arm/v7.
func sampleImage(t testing.TB, name string) (*image.Image, target.RunConfig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := image.Open(ctx, "oci:"+filepath.Join(testenv.ImagesDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	img, err := a.Image("linux/arm/v7")
	if err != nil {
		t.Fatal(err)
	}
	c := img.Config
	return img, target.RunConfig{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, Ready: pcapwatchReady}
}

func pcapwatchReady(l target.Line) bool {
	return l.Stream == target.Stdout && strings.HasPrefix(l.Text, "ready ")
}

type pcapwatchSummary struct {
	Event     string `json:"event"`
	Frames    int    `json:"frames"`
	Received  int    `json:"pcap_received"`
	Dropped   int    `json:"pcap_dropped"`
	IfDropped int    `json:"pcap_if_dropped"`
}

func isSummary(l target.Line) bool {
	return l.Stream == target.Stdout && strings.Contains(l.Text, `"event":"summary"`)
}

// TestPcapwatchBurst is the acceptance run: the arm/v7 sample image boots
// on the real kernel, captures every frame of the 100k burst fixture sent
// through the qemustream link, and exits 0 on a SIGTERM sent via hil-init.
func TestPcapwatchBurst(t *testing.T) {
	img, cfg := sampleImage(t, "pcapwatch")
	// pcapwatch's defaults (immediate mode, snaplen 65535, 16 MiB) make
	// libpcap a TPACKET_V2 ring of few, huge slots: the kernel drops most
	// of a 100k burst before an emulated app can read it. A ring that
	// holds the whole burst isolates what this test checks: every frame
	// reaches the app's capture through the link, the NIC and the kernel.
	cfg.Cmd = append(cfg.Cmd, "--snaplen", "256", "--buffer-mib", "64")
	ctx := testCtx(t, 90*time.Second)
	tg := New(WithSnapshotDir(t.TempDir()))
	d, err := tg.Boot(ctx, img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); noLeftovers(t, d) })
	if _, seen, ok := waitLine(t, d, 30*time.Second, pcapwatchReady); !ok {
		t.Fatalf("pcapwatch never printed ready; app output: %v; console log %s", seen, d.Info().String("console_log"))
	}
	// pcapwatch captures in promiscuous mode: QEMU's NIC passes every
	// frame, so frames missing would be the harness's.
	if diag, filters := d.(target.DeliveryDiagnoser).DeliveryDiagnosis(ctx); filters || !strings.HasPrefix(diag, "QEMU's virtio-net receive queue: ") {
		t.Errorf("delivery diagnosis %q, filters %v; want the queue and no filtering", diag, filters)
	}
	fx, err := pcapfixtures.Lookup("burst-100k")
	if err != nil {
		t.Fatal(err)
	}
	path, err := fx.Path()
	if err != nil {
		t.Fatal(err)
	}
	sched, _ := replay.ParseSchedule("100000pps")
	st, err := replay.Run(ctx, d.Link(), path, replay.WithSchedule(sched))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replay: %s", st)
	if st.Frames != 100000 {
		t.Fatalf("replay sent %d frames, want 100000", st.Frames)
	}
	// Until QEMU has read every frame, then a settle time: under TCG on a
	// busy host the guest app can be seconds behind its capture ring, and
	// pcapwatch summarises at the first empty poll after SIGTERM.
	if err := d.Link().(*qemustream.Link).Drain(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	l, seen, ok := waitLine(t, d, 30*time.Second, isSummary)
	if !ok {
		t.Fatalf("no summary after SIGTERM; output: %v", seen)
	}
	var sum pcapwatchSummary
	if err := json.Unmarshal([]byte(l.Text), &sum); err != nil {
		t.Fatalf("summary %q: %v", l.Text, err)
	}
	if sum.Frames != 100000 || sum.Dropped != 0 || sum.IfDropped != 0 {
		t.Fatalf("pcapwatch summary %+v, want 100000 frames and 0 drops", sum)
	}
	e, err := d.Wait(ctx)
	if err != nil || e.Code != 0 || e.Signal != "" {
		t.Fatalf("exit %v, %v; want exit 0", e, err)
	}
}
