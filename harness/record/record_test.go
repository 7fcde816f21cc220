//go:build linux

package record_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/hilproject/hil/harness/link/veth"
	"github.com/hilproject/hil/harness/record"
	"github.com/hilproject/hil/internal/nspair"
	"github.com/hilproject/hil/internal/testenv"
)

func newLink(t *testing.T) *veth.Link {
	t.Helper()
	testenv.RequireRoot(t)
	l, err := veth.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// frame is a local-experimental EtherType frame of size bytes carrying seq.
func frame(seq, size int) []byte {
	b := make([]byte, size)
	copy(b, []byte{0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x88, 0xb5})
	binary.BigEndian.PutUint32(b[14:], uint32(seq))
	return b
}

type recorded struct {
	data [][]byte
	ci   []gopacket.CaptureInfo
}

func readFile(t *testing.T, path string) recorded {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var src interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	if strings.HasSuffix(path, ".pcapng") {
		r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("%s: not pcapng: %v", path, err)
		}
		src = r
	} else {
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatalf("%s: not pcap: %v", path, err)
		}
		if r.LinkType() != layers.LinkTypeEthernet {
			t.Errorf("link type %v, expected Ethernet", r.LinkType())
		}
		src = r
	}
	var out recorded
	for {
		d, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s record %d: %v", path, len(out.data)+1, err)
		}
		out.data = append(out.data, d)
		out.ci = append(out.ci, ci)
	}
}

// onlyFile fails unless dir holds exactly the named files: a capture must
// leave no temporary file behind.
func onlyFile(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, e := range ents {
		have = append(have, e.Name())
	}
	if strings.Join(have, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %q, expected exactly %q", dir, have, names)
	}
}

// Frames that arrive on an interface inside a namespace are recorded byte
// for byte, in order, up to the frame limit, in both formats.
func TestRecordsFramesInANamespaceUpToTheLimit(t *testing.T) {
	for _, name := range []string{"cap.pcap", "cap.pcapng"} {
		t.Run(name, func(t *testing.T) {
			l := newLink(t)
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			c, err := record.Start(context.Background(), l.AppIface(), path,
				record.WithNetNS(l.NetNSName()), record.WithFrameLimit(5))
			if err != nil {
				t.Fatal(err)
			}
			var sent [][]byte
			for i := range 8 {
				f := frame(i, 60+100*i)
				sent = append(sent, f)
				if err := l.WriteFrame(f); err != nil {
					t.Fatal(err)
				}
			}
			st, err := c.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if st.Frames != 5 || st.Ended != "frame limit" || st.LinkType != "EN10MB" || st.Dropped != 0 {
				t.Errorf("stats %+v: expected 5 frames, ended by the frame limit, EN10MB, no drops", st)
			}
			got := readFile(t, path)
			if len(got.data) != 5 {
				t.Fatalf("file holds %d frames, expected 5", len(got.data))
			}
			var total int64
			for i, d := range got.data {
				total += int64(len(d))
				if !bytes.Equal(d, sent[i]) {
					t.Errorf("frame %d differs from what was sent (%d vs %d bytes)", i, len(d), len(sent[i]))
				}
				if i > 0 && got.ci[i].Timestamp.Before(got.ci[i-1].Timestamp) {
					t.Errorf("frame %d is timestamped before frame %d", i, i-1)
				}
			}
			if st.Bytes != total || !st.First.Equal(got.ci[0].Timestamp) || !st.Last.Equal(got.ci[4].Timestamp) {
				t.Errorf("stats bytes %d first %v last %v; file has %d bytes, %v .. %v", st.Bytes, st.First, st.Last, total, got.ci[0].Timestamp, got.ci[4].Timestamp)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("output: %v %v, expected a 0644 file", fi, err)
			}
			onlyFile(t, dir, name)
		})
	}
}

// The time limit ends a capture; the BPF filter keeps only what it accepts
// and the snap length cuts long frames, recording their original length.
func TestTimeLimitFilterAndSnaplen(t *testing.T) {
	l := newLink(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "arp.pcap")
	c, err := record.Start(context.Background(), l.AppIface(), path, record.WithNetNS(l.NetNSPath()),
		record.WithDuration(time.Second), record.WithFilter("arp"), record.WithSnaplen(40))
	if err != nil {
		t.Fatal(err)
	}
	arp := frame(0, 600)
	arp[12], arp[13] = 0x08, 0x06
	for i := range 6 {
		f := frame(i, 100)
		if i%2 == 0 {
			f = arp
		}
		if err := l.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	st, err := c.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("a 1 s capture took %s to end", time.Since(start))
	}
	if st.Frames != 3 || st.Ended != "time limit" || st.Truncated != 3 || st.Filter != "arp" {
		t.Errorf("stats %+v: expected 3 ARP frames, all truncated, ended by the time limit", st)
	}
	got := readFile(t, path)
	if len(got.data) != 3 {
		t.Fatalf("file holds %d frames, expected the 3 ARP ones", len(got.data))
	}
	for i, ci := range got.ci {
		if ci.CaptureLength != 40 || ci.Length != 600 || !bytes.Equal(got.data[i], arp[:40]) {
			t.Errorf("frame %d: captured %d of %d bytes, expected the first 40 of 600", i, ci.CaptureLength, ci.Length)
		}
	}
}

// Real traffic between two namespaces (the kernel's ARP, a TCP handshake
// and payload from Go's net stack) is recorded as it crossed the link.
func TestRecordsRealTrafficBetweenNamespaces(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	p, err := nspair.New(ctx, "rect")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	path := filepath.Join(t.TempDir(), "tcp.pcapng")
	c, err := record.Start(ctx, p.B.Iface, path, record.WithNetNS(p.B.Name))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := p.B.Listen("tcp", p.B.IPv4.String()+":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(conn)
		conn.Close()
		got <- string(b)
	}()
	conn, err := p.A.Dial(ctx, "tcp", p.B.IPv4.String()+":7000")
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("hello from A"))
	conn.Close()
	if s := <-got; s != "hello from A" {
		t.Fatalf("server read %q", s)
	}
	time.Sleep(200 * time.Millisecond) // the last ACK
	st, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if st.Ended != "stopped" {
		t.Errorf("ended %q, expected stopped", st.Ended)
	}
	var arpReq, syn, payload bool
	for _, d := range readFile(t, path).data {
		pk := gopacket.NewPacket(d, layers.LayerTypeEthernet, gopacket.Default)
		if a, ok := pk.Layer(layers.LayerTypeARP).(*layers.ARP); ok && a.Operation == layers.ARPRequest &&
			bytes.Equal(a.SourceHwAddress, p.A.MAC) && bytes.Equal(a.DstProtAddress, p.B.IPv4.To4()) {
			arpReq = true
		}
		if tc, ok := pk.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
			syn = syn || (tc.SYN && !tc.ACK && tc.DstPort == 7000)
			payload = payload || bytes.Equal(tc.Payload, []byte("hello from A"))
		}
	}
	if !arpReq || !syn || !payload {
		t.Errorf("recording: ARP request from A %v, SYN to :7000 %v, payload %v; expected all (%d frames)", arpReq, syn, payload, st.Frames)
	}
}

// A missing namespace or interface is refused up front with what was
// expected, and no file appears.
func TestRefusesMissingNamespaceOrInterface(t *testing.T) {
	l := newLink(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "x.pcap")
	_, err := record.Record(context.Background(), "eth0", path, record.WithNetNS("hil-no-such-ns"), record.WithFrameLimit(1))
	if err == nil || !strings.Contains(err.Error(), "network namespace hil-no-such-ns") || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing namespace: got %v", err)
	}
	_, err = record.Record(context.Background(), "eth9", path, record.WithNetNS(l.NetNSName()), record.WithFrameLimit(1))
	if err == nil || !strings.Contains(err.Error(), "no interface eth9 in network namespace") || !strings.Contains(err.Error(), "eth0") {
		t.Errorf("missing interface: got %v, expected it named with the interfaces that exist", err)
	}
	_, err = record.Record(context.Background(), "hilnosuch0", path, record.WithFrameLimit(1))
	if err == nil || !strings.Contains(err.Error(), "no interface hilnosuch0 in this network namespace") {
		t.Errorf("missing interface here: got %v", err)
	}
	onlyFile(t, dir)
}

// A capture that fails or is cancelled leaves no partial file and does not
// touch a file of the same name.
func TestFailureLeavesNoPartialFile(t *testing.T) {
	l := newLink(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "keep.pcap")
	if err := os.WriteFile(path, []byte("older recording"), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		if b, _ := os.ReadFile(path); string(b) != "older recording" {
			t.Errorf("%s: the existing file was changed to %d bytes", what, len(b))
		}
		onlyFile(t, dir, "keep.pcap")
	}

	_, err := record.Record(context.Background(), l.AppIface(), path, record.WithNetNS(l.NetNSName()),
		record.WithFrameLimit(1), record.WithFilter("this is not bpf"))
	if err == nil || !strings.Contains(err.Error(), "filter") {
		t.Errorf("bad filter: got %v", err)
	}
	check("bad filter")

	ctx, cancel := context.WithCancel(context.Background())
	c, err := record.Start(ctx, l.AppIface(), path, record.WithNetNS(l.NetNSName()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		l.WriteFrame(frame(i, 100))
	}
	time.Sleep(300 * time.Millisecond)
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("while recording: expected the file and its temporary twin, found %d entries", len(ents))
	}
	cancel()
	if _, err := c.Wait(); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "cancelled after 3 frames") {
		t.Errorf("cancelled capture: got %v", err)
	}
	check("cancelled")
}

func TestBadOptions(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		path string
		opts []record.Option
		want string
	}{
		{"x.txt", []record.Option{record.WithFrameLimit(1)}, "expected .pcap or .pcapng"},
		{"x.pcap", []record.Option{record.WithFrameLimit(1), record.WithSnaplen(4)}, "snap length 4"},
		{"x.pcap", []record.Option{record.WithFrameLimit(-1)}, "frame limit -1"},
		{"x.pcap", nil, "no frame limit and no time limit"},
		{"x.pcap", []record.Option{record.WithFrameLimit(1), record.WithFormat("erf")}, `format "erf"`},
		{".", []record.Option{record.WithFrameLimit(1), record.WithFormat(record.PCAP)}, "is a directory"},
	} {
		p := c.path
		if p != "." {
			p = filepath.Join(dir, p)
		}
		_, err := record.Record(context.Background(), "lo", p, c.opts...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %d options: got %v, expected %q", c.path, len(c.opts), err, c.want)
		}
	}
	onlyFile(t, dir)
}
