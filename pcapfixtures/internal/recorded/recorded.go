//go:build linux && cgo

// Package recorded re-records hil's real-traffic fixtures: each one is
// traffic that real programs make between two network namespaces on this
// machine (Go's net/http and crypto/tls, dnsmasq, iputils ping, the
// kernel's ARP, 802.1Q and IPv6 neighbour discovery), captured with
// harness/record (libpcap) on one end, and described in recorded.json
// with what pcapwatch must report after seeing it.
//
// Unlike the generated fixtures, a recording is not reproducible byte for
// byte: timestamps, TCP sequence numbers, ephemeral ports, TLS keys and
// the kernel's timers differ on every run. The manifest entry is derived
// from the file that was written, so it is always true of that file.
//
// Offloads are off on both ends (nspair.WithoutOffloads): the frames are
// what a NIC would put on a wire, at most 1514 bytes with correct
// checksums, rather than veth's 64 KiB TSO super-frames.
package recorded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcap"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/hilproject/hil/harness/record"
	"github.com/hilproject/hil/internal/nspair"
	"github.com/hilproject/hil/pcapfixtures/internal/manifest"
)

// File is the manifest of the recorded fixtures, beside manifest.json.
const File = "recorded.json"

// mtu is what oversize counts refer to, as for the generated fixtures.
const mtu = 1500

// recipe is one recorded fixture: how to make its traffic.
type recipe struct {
	name, file, description, notes, traffic string
	// run makes the traffic once the capture on A's eth0 is active; a
	// note it returns replaces traffic in the recording's provenance.
	run func(ctx context.Context, p *nspair.Pair) (note string, err error)
}

// Recipes lists the fixtures in manifest order.
func Recipes() []string {
	var ns []string
	for _, r := range recipes {
		ns = append(ns, r.name)
	}
	return ns
}

var recipes = []recipe{
	{
		name:        "tcp-bulk",
		file:        "tcp-bulk.pcap",
		description: "An HTTP download of 2 MiB between two hosts: TCP handshake, back-to-back full-size (1514-byte) segments with the receiver's ACKs, FIN; ARP first",
		notes:       "Back-to-back segments microseconds apart are what receive offload (GRO) in a capturing guest coalesces into larger packets; replay it paced, or with GRO off, when counting frames",
		traffic:     "Go net/http server (10.77.0.2:80) and client (10.77.0.1) in two network namespaces joined by a veth pair, offloads off",
		run:         noNote(httpDownload),
	},
	{
		name:        "tls-handshake",
		file:        "tls-handshake.pcap",
		description: "A TLS 1.3 session: TCP handshake, ClientHello, ServerHello and the encrypted server flight with an ECDSA certificate, one request and reply, close_notify, FIN",
		notes:       "The certificate is generated for each recording (ECDSA P-256, CN device.home.arpa)",
		traffic:     "Go crypto/tls server (10.77.0.2:443) and client (10.77.0.1, verifying the server's certificate) in two network namespaces",
		run:         noNote(tlsSession),
	},
	{
		name:        "dns-resolver",
		file:        "dns-resolver.pcap",
		description: "DNS against a real resolver: A, AAAA, PTR, TXT and MX queries from a client and dnsmasq's answers, one NXDOMAIN; ARP first",
		notes:       "dns_query: one event per query (QR=0); the answers (QR=1) are not queries",
		traffic:     "dnsmasq (Debian dnsmasq-base) serving home.arpa on 10.77.0.2:53, queried by Go's DNS resolver (net.Resolver, PreferGo) from 10.77.0.1",
		run:         noNote(dnsQueries),
	},
	{
		name:        "icmp-ping",
		file:        "icmp-ping.pcap",
		description: "ping: four ICMP echo requests and replies between two hosts, ARP first",
		traffic:     "iputils ping -c 4 from 10.77.0.1 to 10.77.0.2 in two network namespaces",
		run:         noNote(ping),
	},
	{
		name:        "vlan-tagged",
		file:        "vlan-tagged.pcap",
		description: "802.1Q VLAN 100: tagged ARP and ICMP echo between two hosts, captured on the trunk (parent) interface",
		notes:       "Every frame carries a VLAN tag; the kernel moves tags into metadata on receive and libpcap puts them back, so a capturing app sees them as sent",
		traffic:     "iputils ping -c 3 over 802.1Q links eth0.100 (192.168.100.1 -> .2) on a veth pair, captured on eth0",
		run:         vlanPing,
	},
	{
		name:        "ipv6-nd",
		file:        "ipv6-nd.pcapng",
		description: "IPv6 coming up on a link: MLDv2 reports, duplicate address detection, router solicitations, then neighbour solicitation/advertisement and ICMPv6 echo",
		notes:       "pcapng with nanosecond timestamps and an interface statistics block (libpcap's counts)",
		traffic:     "the kernels of two network namespaces enabling IPv6 (fd00:77::1/64, fd00:77::2/64) on a veth pair, then iputils ping -6 -c 2",
		run:         noNote(ipv6ND),
	},
}

// Record re-records the named fixtures (all when names is empty) into
// dir and updates dir/recorded.json, keeping the other entries.
func Record(ctx context.Context, dir string, names []string, log io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("recording needs root: network namespaces and packet capture")
	}
	for _, n := range names {
		if !slices.Contains(Recipes(), n) {
			return fmt.Errorf("no recorded fixture %q; expected one of %s", n, strings.Join(Recipes(), ", "))
		}
	}
	m, err := readManifest(filepath.Join(dir, File))
	if err != nil {
		return err
	}
	for _, r := range recipes {
		if len(names) > 0 && !slices.Contains(names, r.name) {
			continue
		}
		e, err := r.record(ctx, dir)
		if err != nil {
			return fmt.Errorf("recording %s: %w", r.name, err)
		}
		fmt.Fprintf(log, "%-14s %5d frames %8d bytes %10s  device_seen %d dns_query %d\n", e.Name, e.Frames, e.Size,
			time.Duration(e.DurationNS).Round(time.Microsecond), len(e.Expect.DeviceSeen), len(e.Expect.DNSQuery))
		m = upsert(m, e)
	}
	return writeManifest(filepath.Join(dir, File), m)
}

func readManifest(path string) (manifest.Manifest, error) {
	var m manifest.Manifest
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// upsert replaces the entry of the same name, keeping recipe order.
func upsert(m manifest.Manifest, e manifest.Fixture) manifest.Manifest {
	byName := map[string]manifest.Fixture{}
	for _, f := range m.Fixtures {
		byName[f.Name] = f
	}
	byName[e.Name] = e
	m.Fixtures = nil
	for _, r := range recipes {
		if f, ok := byName[r.name]; ok {
			m.Fixtures = append(m.Fixtures, f)
		}
	}
	return m
}

func writeManifest(path string, m manifest.Manifest) error {
	m.Comment = "Recorded from real traffic by `go run ./pcapfixtures/cmd/record-real` (pcapfixtures/internal/recorded); do not edit. " +
		"Not reproducible byte for byte: re-recording changes the files and these entries. Oversize counts refer to MTU 1500."
	j, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(j, '\n'), 0o644)
}

func (r recipe) record(ctx context.Context, dir string) (manifest.Fixture, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	p, err := nspair.New(ctx, "rec", nspair.WithoutOffloads())
	if err != nil {
		return manifest.Fixture{}, err
	}
	defer p.Close()
	path := filepath.Join(dir, r.file)
	c, err := record.Start(ctx, p.A.Iface, path, record.WithNetNS(p.A.Name))
	if err != nil {
		return manifest.Fixture{}, err
	}
	note, err := r.run(ctx, p)
	if err != nil {
		cancel() // the capture is discarded
		c.Wait()
		return manifest.Fixture{}, err
	}
	// The last ACKs and FINs, then stop.
	time.Sleep(300 * time.Millisecond)
	st, err := c.Stop()
	if err != nil {
		return manifest.Fixture{}, err
	}
	if st.Dropped+st.IfDropped > 0 {
		os.Remove(path)
		return manifest.Fixture{}, fmt.Errorf("libpcap dropped %d frames while recording: record again on a quieter machine", st.Dropped+st.IfDropped)
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	e, err := Describe(path)
	if err != nil {
		return manifest.Fixture{}, err
	}
	e.Name, e.File, e.Description, e.Notes = r.name, r.file, r.description, r.notes
	if note != "" {
		r.traffic = note
	}
	e.Recorded = &manifest.Recording{
		Traffic: r.traffic,
		Capture: fmt.Sprintf("hil record (harness/record, %s) on %s of the client's namespace", pcap.Version(), p.A.Iface),
		Command: "sudo go run ./pcapfixtures/cmd/record-real -only " + r.name,
		Kernel:  "Linux " + unix.ByteSliceToString(uts.Release[:]),
		Date:    time.Now().UTC().Format(time.DateOnly),
	}
	return e, nil
}

// Describe reads a recording back and fills the manifest fields that
// depend on its bytes, including what pcapwatch must report.
func Describe(path string) (manifest.Fixture, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return manifest.Fixture{}, err
	}
	sum := sha256.Sum256(b)
	e := manifest.Fixture{
		Format: "pcap", LinkType: "EN10MB", LinkTypeID: 1, Resolution: "us",
		Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]),
	}
	var src interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var ng *pcapgo.NgReader
	if strings.HasSuffix(path, ".pcapng") {
		r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return e, err
		}
		e.Format, e.Resolution, ng = "pcapng", "ns", r
		src = r
	} else {
		r, err := pcapgo.NewReader(bytes.NewReader(b))
		if err != nil {
			return e, err
		}
		src = r
	}
	w := newWatcher()
	var first, last time.Time
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return e, fmt.Errorf("%s record %d: %w", path, e.Frames+1, err)
		}
		if e.Frames == 0 {
			first = ci.Timestamp
		}
		last = ci.Timestamp
		e.Frames++
		e.Bytes += int64(len(data))
		if len(data) > mtu+14 {
			e.OversizeFrames++
			continue // replay skips it: the app never sees it
		}
		w.frame(data)
	}
	if ng != nil {
		e.Interfaces = ng.NInterfaces()
	}
	e.DurationNS = last.Sub(first).Nanoseconds()
	e.Expect = manifest.Expect{
		FramesSeen: e.Frames - e.OversizeFrames, Exact: true,
		DeviceSeen: w.devices, DHCPRequest: w.dhcp, DNSQuery: w.dns,
	}
	return e, nil
}

// watcher decodes frames exactly as images/pcapwatch does (same layers,
// same rules) and collects the events it would print.
type watcher struct {
	seen    map[string]bool
	devices []manifest.DeviceSeen
	dhcp    []manifest.DHCPRequest
	dns     []manifest.DNSQuery

	parser  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	arp     layers.ARP
	ip4     layers.IPv4
	ip6     layers.IPv6
	udp     layers.UDP
	dhcpL   layers.DHCPv4
	dnsL    layers.DNS
}

func newWatcher() *watcher {
	w := &watcher{seen: map[string]bool{}, devices: []manifest.DeviceSeen{}, dhcp: []manifest.DHCPRequest{}, dns: []manifest.DNSQuery{}}
	w.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet,
		&w.eth, &w.dot1q, &w.arp, &w.ip4, &w.ip6, &w.udp, &w.dhcpL, &w.dnsL)
	w.parser.IgnoreUnsupported = true
	return w
}

func (w *watcher) frame(data []byte) {
	_ = w.parser.DecodeLayers(data, &w.decoded)
	for _, lt := range w.decoded {
		switch lt {
		case layers.LayerTypeARP:
			a := &w.arp
			if a.AddrType != layers.LinkTypeEthernet || a.Protocol != layers.EthernetTypeIPv4 ||
				len(a.SourceHwAddress) != 6 || len(a.SourceProtAddress) != 4 || net.IP(a.SourceProtAddress).IsUnspecified() {
				continue
			}
			d := manifest.DeviceSeen{MAC: net.HardwareAddr(a.SourceHwAddress).String(), IP: net.IP(a.SourceProtAddress).String()}
			if !w.seen[d.MAC+" "+d.IP] {
				w.seen[d.MAC+" "+d.IP] = true
				w.devices = append(w.devices, d)
			}
		case layers.LayerTypeDHCPv4:
			if w.dhcpL.Operation != layers.DHCPOpRequest {
				continue
			}
			var typ layers.DHCPMsgType
			host := ""
			for _, o := range w.dhcpL.Options {
				switch o.Type {
				case layers.DHCPOptMessageType:
					if len(o.Data) == 1 {
						typ = layers.DHCPMsgType(o.Data[0])
					}
				case layers.DHCPOptHostname:
					host = string(o.Data)
				}
			}
			if typ == layers.DHCPMsgTypeRequest {
				w.dhcp = append(w.dhcp, manifest.DHCPRequest{MAC: w.dhcpL.ClientHWAddr.String(), Hostname: host})
			}
		case layers.LayerTypeDNS:
			if w.dnsL.QR || w.dnsL.OpCode != layers.DNSOpCodeQuery {
				continue
			}
			for _, q := range w.dnsL.Questions {
				w.dns = append(w.dns, manifest.DNSQuery{Name: string(q.Name), Type: q.Type.String()})
			}
		}
	}
}
