//go:build linux

package user_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/hilproject/hil/harness/link/veth"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/targettest"
	"github.com/hilproject/hil/harness/target/user"
	"github.com/hilproject/hil/internal/testenv"
)

const deliverySteps = `name: delivery
targets: [user]
platforms: [linux/amd64]
%s
startup: {budget: 30s, ready: {regex: "^ready iface=eth0$"}}
steps:
  - replay: {fixture: tcp-bulk, schedule: top}
`

// A replay into an interface that drops frames is reported with the
// counts, never as a silent pass: here the app's end of the veth pair has
// an MTU of 1000, smaller than most of tcp-bulk's frames (a real drop by
// the kernel on the way). By default the step passes with a warning naming
// the counts; with strict_delivery it is an infra-error (the harness failed
// to deliver), not the app's failure. With nothing dropped, no warning.
func TestDroppedFramesAreAccountedFor(t *testing.T) {
	testenv.RequireRoot(t)
	img := targettest.Images{Img: targettest.Open(t, "pcapwatch", "linux/amd64")}
	shrink := &targettest.Fault{Step: targettest.BeforeReady, Do: func(t testing.TB, dev target.App) {
		l := dev.Link().(*veth.Link)
		ns, err := netns.GetFromPath(l.NetNSPath())
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		app, err := h.LinkByName(l.AppIface())
		if err == nil {
			err = h.LinkSetMTU(app, 1000)
		}
		if err != nil {
			t.Fatal(err)
		}
	}}
	replayStep := func(res scenario.Result) *scenario.StepResult {
		for i := range res.Steps {
			if res.Steps[i].Kind == scenario.StepReplay {
				return &res.Steps[i]
			}
		}
		t.Fatalf("no replay step in %+v", res.Steps)
		return nil
	}

	res := targettest.RunCase(t, user.New(), img, fmt.Sprintf(deliverySteps, ""), shrink)
	st := replayStep(res)
	t.Logf("%s: %s; step: %s; warnings %v", res.Verdict, res.Reason, st.Message, st.Warnings)
	d := st.Replay.Delivery
	if d == nil {
		t.Fatalf("no delivery stats: %+v", st.Replay)
	}
	if d.RxPackets == 0 || d.RxDropped == 0 || int64(d.RxPackets+d.RxDropped) != st.Replay.FramesSent {
		t.Errorf("delivery %+v for %d frames sent; want some received, the rest dropped", *d, st.Replay.FramesSent)
	}
	want := fmt.Sprintf("received %d of the %d frames sent (%d dropped)", d.RxPackets, st.Replay.FramesSent, d.RxDropped)
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], want) || !strings.Contains(st.Message, "WARNING: ") {
		t.Errorf("step warnings %q, message %q; want one naming the counts: %q", st.Warnings, st.Message, want)
	}

	res = targettest.RunCase(t, user.New(), img, fmt.Sprintf(deliverySteps, "strict_delivery: true"), shrink)
	if res.Verdict != scenario.InfraError || !strings.Contains(res.Reason, "the harness failed to deliver (strict_delivery)") || !strings.Contains(res.Reason, "of the 1811 frames sent (") {
		t.Errorf("strict: %s: %s; want an infra-error naming the counts", res.Verdict, res.Reason)
	}

	res = targettest.RunCase(t, user.New(), img, fmt.Sprintf(deliverySteps, "strict_delivery: true"), nil)
	st = replayStep(res)
	if res.Verdict != scenario.Pass || len(st.Warnings) != 0 || st.Replay.Delivery == nil || st.Replay.Delivery.RxPackets != 1811 || res.Device["rx_offload"] != "off" {
		t.Errorf("nothing dropped: %s: %s; warnings %v, delivery %+v, rx_offload %q", res.Verdict, res.Reason, st.Warnings, st.Replay.Delivery, res.Device["rx_offload"])
	}
}
