//go:build linux

package veth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/hilproject/hil/harness/link/veth"
	"github.com/hilproject/hil/internal/ethtool"
)

// The app end of a fresh pair coalesces nothing (veth has GRO off by
// default); GRO can be turned on and off again through ethtool's ioctls,
// and the read-back says so.
func TestAppEndFeaturesReadAndSet(t *testing.T) {
	requireRoot(t)
	l, err := veth.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fs, err := l.AppFeatures()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fs["rx-gro"]; !ok {
		t.Fatalf("no rx-gro among the app end's %d features", len(fs))
	}
	if got := fs.Coalescing(); got != "off" {
		t.Errorf("a fresh veth end coalesces %q; expected off (%s)", got, fs.CoalescingState())
	}
	fs, err = l.SetAppFeatures(map[string]bool{"rx-gro": true})
	if err != nil || !fs["rx-gro"].Active {
		t.Fatalf("turning GRO on: %v (rx-gro active %v)", err, fs["rx-gro"].Active)
	}
	if got := fs.Coalescing(); got != "rx-gro" {
		t.Errorf("after GRO on, Coalescing = %q", got)
	}
	if fs, err = l.SetAppFeatures(ethtool.CoalescingOff()); err != nil || fs.Coalescing() != "off" {
		t.Errorf("turning coalescing off: %v (%s)", err, fs.CoalescingState())
	}
	// A feature the kernel does not know cannot be turned on: named.
	if _, err := l.SetAppFeatures(map[string]bool{"rx-no-such-thing": true}); err == nil || !strings.Contains(err.Error(), "rx-no-such-thing") {
		t.Errorf("asking for an unknown feature: %v; want an error naming it", err)
	}
}

// Counters count what reached the app end, and what the host end could not
// hand over as dropped: here, frames longer than the app end's MTU.
func TestCountersCountDeliveredAndDropped(t *testing.T) {
	requireRoot(t)
	l, err := veth.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A capture on the app end, as the app's: a frame nobody wants is
	// counted as dropped by the stack.
	capture, err := veth.OpenSocketIn(l.NetNSPath(), l.AppIface())
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	before, err := l.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if before.Seen != -1 {
		t.Errorf("veth cannot tell what a capture saw; Seen = %d, want -1", before.Seen)
	}
	for i := 0; i < 10; i++ {
		if err := l.WriteFrame(frame(i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	// The app end's MTU shrinks under the harness: frames over it are
	// dropped by the kernel on the way.
	shrinkAppMTU(t, l, 800)
	for i := 0; i < 5; i++ {
		if err := l.WriteFrame(frame(i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	after, err := l.Counters()
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	if d.RxPackets != 10 || d.RxDropped != 5 {
		t.Errorf("counted rx_packets %d, dropped %d; expected 10 delivered and 5 dropped", d.RxPackets, d.RxDropped)
	}
	if d.RxBytes != 10*1000 {
		t.Errorf("counted %d bytes, expected 10000", d.RxBytes)
	}
}

func shrinkAppMTU(t *testing.T, l *veth.Link, mtu int) {
	t.Helper()
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
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetMTU(app, mtu); err != nil {
		t.Fatal(err)
	}
}
