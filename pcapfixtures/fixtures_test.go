package pcapfixtures_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/hilproject/hil/pcapfixtures"
	"github.com/hilproject/hil/pcapfixtures/internal/generate"
)

// The committed generated files are exactly what the generator writes.
// Recorded fixtures are not reproducible and not covered.
func TestGeneratorReproducesCommittedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := generate.Write(dir); err != nil {
		t.Fatal(err)
	}
	names := []string{"manifest.json"}
	for _, f := range pcapfixtures.Manifest() {
		if f.Recorded != nil {
			continue
		}
		names = append(names, f.File)
	}
	for _, n := range names {
		want, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(n)
		if err != nil {
			t.Fatalf("committed %s: %v (run go generate ./pcapfixtures)", n, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generator's output (run go generate ./pcapfixtures)", n)
		}
	}
}

type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

func readAll(t *testing.T, f pcapfixtures.Fixture) [][]byte {
	t.Helper()
	b, err := f.Data()
	if err != nil {
		t.Fatal(err)
	}
	var src packetSource
	if f.Format == "pcapng" {
		r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if r.NInterfaces() != f.Interfaces {
				t.Errorf("%s: %d interfaces, manifest says %d", f.Name, r.NInterfaces(), f.Interfaces)
			}
		}()
		src = r
	} else {
		r, err := pcapgo.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		src = r
	}
	var frames [][]byte
	for {
		d, _, err := src.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s record %d: %v", f.Name, len(frames), err)
		}
		frames = append(frames, d)
	}
	return frames
}

func TestManifestMatchesFiles(t *testing.T) {
	t.Parallel()
	var total int64
	for _, f := range pcapfixtures.Manifest() {
		b, err := f.Data()
		if err != nil {
			t.Fatal(err)
		}
		total += int64(len(b))
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(b)) != f.Size {
			t.Errorf("%s: sha256/size mismatch with manifest", f.Name)
		}
		frames := readAll(t, f)
		over := 0
		for _, fr := range frames {
			if len(fr) > 1514 {
				over++
			}
			if len(fr) < 14 {
				t.Errorf("%s: a %d-byte frame cannot be sent on Ethernet", f.Name, len(fr))
			}
		}
		if len(frames) != f.Frames || over != f.OversizeFrames || f.Expect.FramesSeen != f.Frames-over {
			t.Errorf("%s: read %d frames (%d oversize); manifest says %d (%d), frames_seen %d", f.Name, len(frames), over, f.Frames, f.OversizeFrames, f.Expect.FramesSeen)
		}
		p, err := f.Path()
		if err != nil {
			t.Fatal(err)
		}
		if onDisk, err := os.ReadFile(p); err != nil || !bytes.Equal(onDisk, b) {
			t.Errorf("%s: Path() %s does not hold the fixture (%v)", f.Name, p, err)
		}
	}
	if total > 15<<20 {
		t.Errorf("fixtures total %d bytes; keep them under 15 MiB", total)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"arp-sweep", "arp-sweep.pcap"} {
		if f, err := pcapfixtures.Lookup(n); err != nil || f.Name != "arp-sweep" {
			t.Errorf("Lookup(%q) = %v, %v", n, f.Name, err)
		}
	}
	_, err := pcapfixtures.Lookup("nope")
	if err == nil || !strings.Contains(err.Error(), "home-minute") {
		t.Errorf("Lookup(nope): got %v, expected an error listing the fixtures", err)
	}
}

// events decodes frames with gopacket the way pcapwatch is specified to
// and returns what it should print: an independent check of the generator's
// expectations.
func events(frames [][]byte) (ev pcapfixtures.Expect) {
	ev.DeviceSeen, ev.DHCPRequest, ev.DNSQuery = []pcapfixtures.DeviceSeen{}, []pcapfixtures.DHCPRequest{}, []pcapfixtures.DNSQuery{}
	have := map[pcapfixtures.DeviceSeen]bool{}
	for _, fr := range frames {
		if len(fr) > 1514 {
			continue
		}
		ev.FramesSeen++
		p := gopacket.NewPacket(fr, layers.LayerTypeEthernet, gopacket.Default)
		if a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok && p.ErrorLayer() == nil {
			d := pcapfixtures.DeviceSeen{MAC: net.HardwareAddr(a.SourceHwAddress).String(), IP: net.IP(a.SourceProtAddress).String()}
			if !have[d] {
				have[d] = true
				ev.DeviceSeen = append(ev.DeviceSeen, d)
			}
		}
		if p.ErrorLayer() != nil {
			continue
		}
		if d, ok := p.Layer(layers.LayerTypeDHCPv4).(*layers.DHCPv4); ok {
			var typ byte
			var host string
			for _, o := range d.Options {
				switch o.Type {
				case layers.DHCPOptMessageType:
					if len(o.Data) == 1 {
						typ = o.Data[0]
					}
				case layers.DHCPOptHostname:
					host = string(o.Data)
				}
			}
			if typ == byte(layers.DHCPMsgTypeRequest) {
				ev.DHCPRequest = append(ev.DHCPRequest, pcapfixtures.DHCPRequest{MAC: d.ClientHWAddr.String(), Hostname: host})
			}
		}
		if d, ok := p.Layer(layers.LayerTypeDNS).(*layers.DNS); ok && !d.QR {
			for _, q := range d.Questions {
				ev.DNSQuery = append(ev.DNSQuery, pcapfixtures.DNSQuery{Name: string(q.Name), Type: q.Type.String()})
			}
		}
	}
	return ev
}

func TestExpectedEventsMatchGopacketDecoding(t *testing.T) {
	t.Parallel()
	for _, f := range pcapfixtures.Manifest() {
		got := events(readAll(t, f))
		want := f.Expect
		if got.FramesSeen != want.FramesSeen ||
			!reflect.DeepEqual(got.DeviceSeen, want.DeviceSeen) ||
			!reflect.DeepEqual(got.DHCPRequest, want.DHCPRequest) ||
			!reflect.DeepEqual(got.DNSQuery, want.DNSQuery) {
			t.Errorf("%s: decoding gives\n  %+v\nmanifest expects\n  %+v", f.Name, got, want)
		}
	}
}
