//go:build linux

package nspair_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/hilproject/hil/harness/record"
	"github.com/hilproject/hil/internal/nspair"
	"github.com/hilproject/hil/internal/testenv"
)

// vlanOf returns the VLAN id of every recorded frame (-1: untagged).
func vlanOf(t *testing.T, path string) []int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for {
		d, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return ids
		}
		if err != nil {
			t.Fatal(err)
		}
		id := -1
		if q, ok := gopacket.NewPacket(d, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok {
			id = int(q.VLANIdentifier)
		}
		ids = append(ids, id)
	}
}

// Traffic between the two ends is tagged on the link, both ways, whether
// the kernel has 802.1Q links (AddVLAN) or not (TagVLAN); the ends still
// talk (the tags are taken off on receive); Close leaves no namespace.
func TestVLANTagsEveryFrameOnTheLink(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	p, err := nspair.New(ctx, "vlant")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, b, err := p.AddVLAN(ctx, 42, "192.168.42.1/24", "192.168.42.2/24")
	if errors.Is(err, nspair.ErrNo8021Q) {
		t.Logf("%v: tagging with tc programs instead", err)
		a, b, err = p.TagVLAN(ctx, 42, "192.168.42.1/24", "192.168.42.2/24")
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vlan.pcap")
	c, err := record.Start(ctx, p.A.Iface, path, record.WithNetNS(p.A.Name))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := b.Listen("tcp", b.IPv4.String()+":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("tagged"))
			c.Close()
		}
	}()
	conn, err := a.Dial(ctx, "tcp", b.IPv4.String()+":9000")
	if err != nil {
		t.Fatalf("dial across VLAN 42: %v", err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(conn)
	conn.Close()
	if string(got) != "tagged" {
		t.Fatalf("read %q, %v across VLAN 42", got, err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	ids := vlanOf(t, path)
	if len(ids) < 6 {
		t.Fatalf("recorded %d frames, expected ARP and a TCP exchange", len(ids))
	}
	for i, id := range ids {
		if id != 42 {
			t.Errorf("frame %d: VLAN %d, expected every frame tagged 42", i, id)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(out), p.A.Name) || strings.Contains(string(out), p.B.Name) {
		t.Errorf("namespaces left after Close:\n%s", out)
	}
}
