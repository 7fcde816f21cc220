//go:build linux

package veth_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hilproject/hil/harness/link/veth"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and veth pairs")
	}
}

// frame builds a broadcast Ethernet frame with an unregistered ethertype
// (0x88b5, IEEE local experimental) carrying a sequence number.
func frame(seq, size int) []byte {
	b := make([]byte, size)
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:12], []byte{0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:14], 0x88b5)
	binary.BigEndian.PutUint32(b[14:18], uint32(seq))
	for i := 18; i < size; i++ {
		b[i] = byte(seq + i)
	}
	return b
}

func assertGone(t *testing.T, l *veth.Link) {
	t.Helper()
	if _, err := netlink.LinkByName(l.HostIface()); err == nil {
		t.Errorf("host end %s still exists after Close", l.HostIface())
	}
	if name := l.NetNSName(); name != "" {
		if _, err := os.Stat("/run/netns/" + name); err == nil {
			t.Errorf("namespace %s still exists after Close", name)
		}
		out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
		if strings.Contains(string(out), name) {
			t.Errorf("ip netns list still shows %s:\n%s", name, out)
		}
	}
	out, _ := exec.Command("ip", "link").CombinedOutput()
	if strings.Contains(string(out), l.HostIface()) {
		t.Errorf("ip link still shows %s:\n%s", l.HostIface(), out)
	}
}

func TestWriteArrivesAsIngressByteIdentical(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	ctx := context.Background()
	l, err := veth.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if l.AppIface() != "eth0" || l.MTU() != 1500 {
		t.Fatalf("defaults: got iface %q MTU %d, expected eth0 1500", l.AppIface(), l.MTU())
	}
	app, err := veth.OpenSocketIn(l.NetNSPath(), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()

	const n = 20000 // well past the 208 KiB default buffer at top speed
	sent := make([][]byte, n)
	for i := range sent {
		sent[i] = frame(i, 60+i%1400)
		if err := l.WriteFrame(sent[i]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	app.SetDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < n; i++ {
		got, err := app.ReadFrame()
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", i, n, err)
		}
		if got.PktType == unixPacketOutgoing {
			t.Fatalf("frame %d arrived as outgoing, expected ingress", i)
		}
		if !bytes.Equal(got.Data, sent[i]) {
			t.Fatalf("frame %d: got %d bytes %x..., expected %d bytes %x...", i, len(got.Data), got.Data[:18], len(sent[i]), sent[i][:18])
		}
	}
	if d, _ := app.Drops(); d != 0 {
		t.Errorf("app end socket dropped %d frames", d)
	}
	// Nothing else arrives: no IPv6 solicitations, no extra frames.
	app.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if got, err := app.ReadFrame(); err == nil {
		t.Errorf("unexpected extra frame on the app end: %x", got.Data)
	}
	// Oversize frames are refused, not truncated.
	if err := l.WriteFrame(frame(0, 1515)); err == nil {
		t.Errorf("writing a 1515-byte frame on MTU 1500 succeeded; expected an error")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, l)
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

const unixPacketOutgoing = 4

func TestFramesDeliversWhatTheAppSends(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	l, err := veth.New(context.Background(), veth.WithName("wlan7"), veth.WithMTU(9000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	app, err := veth.OpenSocketIn(l.NetNSPath(), "wlan7")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	// A frame we write must not come back on Frames().
	if err := l.WriteFrame(frame(999, 100)); err != nil {
		t.Fatal(err)
	}
	var sent [][]byte
	for i := 0; i < 50; i++ {
		f := frame(i, 64+i*150)
		sent = append(sent, f)
		if err := app.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	timeout := time.After(5 * time.Second)
	for i := range sent {
		select {
		case got := <-l.Frames():
			if !bytes.Equal(got.Data, sent[i]) {
				t.Fatalf("frame %d from the app: got %x..., expected %x...", i, got.Data[:18], sent[i][:18])
			}
			if time.Since(got.Time) > 5*time.Second || got.Time.IsZero() {
				t.Errorf("frame %d timestamp %v is not a recent receive time", i, got.Time)
			}
		case <-timeout:
			t.Fatalf("got %d of %d frames the app sent", i, len(sent))
		}
	}
	l.Close()
	if _, ok := <-l.Frames(); ok {
		// Drain: a closed link's channel must end.
		for range l.Frames() {
		}
	}
	assertGone(t, l)
}

func TestCancelReleasesEverything(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := veth.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := netlink.LinkByName(l.HostIface())
		_, serr := os.Stat("/run/netns/" + l.NetNSName())
		if (err != nil && serr != nil) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case _, ok := <-l.Frames():
		if ok {
			t.Error("Frames() delivered a frame after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Error("Frames() not closed 5 s after cancel")
	}
	assertGone(t, l)
}

func TestExistingNamespaceIsKept(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	outer, err := veth.New(context.Background(), veth.WithName("eth0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outer.Close() })
	// Same namespace, and a clash with eth0 must be a clear error.
	if _, err := veth.New(context.Background(), veth.WithNetNSPath(outer.NetNSPath())); err == nil || !strings.Contains(err.Error(), "already has an interface eth0") {
		t.Fatalf("second eth0 in the same namespace: got %v, expected an 'already has an interface eth0' error", err)
	}
	inner, err := veth.New(context.Background(), veth.WithNetNSPath(outer.NetNSPath()), veth.WithName("eth1"))
	if err != nil {
		t.Fatal(err)
	}
	app, err := veth.OpenSocketIn(outer.NetNSPath(), "eth1")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	want := frame(7, 200)
	if err := inner.WriteFrame(want); err != nil {
		t.Fatal(err)
	}
	app.SetDeadline(time.Now().Add(2 * time.Second))
	got, err := app.ReadFrame()
	if err != nil || !bytes.Equal(got.Data, want) {
		t.Fatalf("frame on eth1: got %x, %v; expected %x", got.Data, err, want)
	}
	if inner.NetNSName() != "" {
		t.Errorf("NetNSName for a given namespace: got %q, expected empty", inner.NetNSName())
	}
	if err := inner.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, inner)
	if _, err := os.Stat(outer.NetNSPath()); err != nil {
		t.Fatalf("closing the inner link removed the given namespace: %v", err)
	}
	if _, err := veth.OpenSocketIn(outer.NetNSPath(), "eth1"); err == nil {
		t.Error("eth1 still present in the namespace after Close")
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	if _, err := veth.New(context.Background(), veth.WithName("averyveryverylongname")); err == nil {
		t.Error("16+ character interface name accepted")
	}
	if _, err := veth.New(context.Background(), veth.WithMTU(10)); err == nil {
		t.Error("MTU 10 accepted")
	}
	if _, err := veth.New(context.Background(), veth.WithNetNSPath("/nonexistent/ns")); err == nil || !strings.Contains(err.Error(), "/nonexistent/ns") {
		t.Errorf("missing namespace path: got %v, expected an error naming it", err)
	}
}

func TestAttachAndPeerOf(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	l, err := veth.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	peer, err := veth.PeerOf(l.NetNSPath(), "eth0")
	if err != nil || peer != l.HostIface() {
		t.Fatalf("PeerOf: %q, %v; expected %q", peer, err, l.HostIface())
	}
	if _, err := veth.PeerOf(l.NetNSPath(), "lo"); err == nil {
		t.Error("PeerOf(lo) succeeded; expected a not-a-veth error")
	}
	a, err := veth.Attach(context.Background(), peer)
	if err != nil {
		t.Fatal(err)
	}
	app, err := veth.OpenSocketIn(l.NetNSPath(), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	want := frame(1, 300)
	if err := a.WriteFrame(want); err != nil {
		t.Fatal(err)
	}
	app.SetDeadline(time.Now().Add(2 * time.Second))
	if got, err := app.ReadFrame(); err != nil || !bytes.Equal(got.Data, want) {
		t.Fatalf("through Attach: %v; expected the frame", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(peer); err != nil {
		t.Errorf("closing an attached link removed %s", peer)
	}
	if _, err := veth.Attach(context.Background(), "nonexistent0"); err == nil {
		t.Error("Attach to a missing interface succeeded")
	}
}

// A caller that panics still releases the link through its deferred Close.
func TestReleasedOnPanic(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	var l *veth.Link
	func() {
		defer func() { recover() }()
		var err error
		l, err = veth.New(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		panic("scenario step blew up")
	}()
	assertGone(t, l)
}

// An 802.1Q-tagged frame reaches a reader on the app end with its tag, as
// a libpcap app sees it, although the kernel moves the tag into metadata
// on receive; and so do the QinQ (802.1ad) outer tag and an untagged frame.
func TestVLANTagsSurviveTheReceivePath(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	l, err := veth.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	app, err := veth.OpenSocketIn(l.NetNSPath(), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	tagged := func(tpid uint16, tci uint16) []byte {
		f := frame(7, 64)
		return append(append(append([]byte{}, f[:12]...), byte(tpid>>8), byte(tpid), byte(tci>>8), byte(tci)), f[12:]...)
	}
	sent := [][]byte{tagged(0x8100, 100), tagged(0x8100, 0x2000|7), tagged(0x88a8, 300), frame(8, 64)}
	for _, f := range sent {
		if err := l.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	app.SetDeadline(time.Now().Add(5 * time.Second))
	for i, want := range sent {
		got, err := app.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got.Data, want) {
			t.Errorf("frame %d: got %x, expected %x", i, got.Data[:20], want[:20])
		}
	}
}
