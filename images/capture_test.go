//go:build linux

package images_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/pcapfixtures"
)

// netnsVeth makes a network namespace with eth0 inside, the peer of a host
// interface. IPv6 is off on both ends so that nothing but the injected
// frames reaches the capture. Everything is removed at cleanup.
func netnsVeth(t *testing.T) (ns, hostIface string) {
	t.Helper()
	testenv.RequireRoot(t)
	b := make([]byte, 4)
	rand.Read(b)
	id := hex.EncodeToString(b)
	ns, hostIface, peer := "hil-img-"+id, "hilh"+id, "hilp"+id
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip("netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	ip("link", "add", hostIface, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostIface).Run() })
	os.WriteFile("/proc/sys/net/ipv6/conf/"+hostIface+"/disable_ipv6", []byte("1"), 0o644)
	ip("link", "set", peer, "netns", ns)
	ip("-n", ns, "link", "set", peer, "name", "eth0")
	ip("-n", ns, "link", "set", "eth0", "up")
	ip("link", "set", hostIface, "up")
	return ns, hostIface
}

// rootfs flattens one platform of an image into a temp dir, the way the
// harness does.
func rootfs(t *testing.T, layoutDir, platform string) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := image.Flatten(context.Background(), platformImage(t, layoutDir, platform), dir); err != nil {
		t.Fatalf("flattening %s %s: %v", layoutDir, platform, err)
	}
	return dir
}

// app is pcapwatch running chrooted in its image's rootfs inside ns.
type app struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	stderr strings.Builder
	newLn  chan struct{}
	done   chan struct{}
	err    error
}

func startApp(t *testing.T, ns, root string, args ...string) *app {
	t.Helper()
	return startProg(t, ns, root, "/opt/pcapwatch", args...)
}

// sampleApps are the two builds of the sample app and where each image
// keeps it: the amd64 tests run against both.
var sampleApps = []struct{ image, prog string }{
	{"pcapwatch", "/opt/pcapwatch"},
	{"pcapwatch-rs", "/usr/local/bin/pcapwatch-rs"},
}

// startProg is startApp for the program at prog in the rootfs.
func startProg(t *testing.T, ns, root, prog string, args ...string) *app {
	t.Helper()
	cmdArgs := append([]string{"netns", "exec", ns, "chroot", root, prog}, args...)
	a := &app{cmd: exec.Command("ip", cmdArgs...), newLn: make(chan struct{}, 1), done: make(chan struct{})}
	a.cmd.Stderr = &syncWriter{b: &a.stderr, mu: &a.mu}
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.cmd.Process.Kill()
		<-a.done
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			a.mu.Lock()
			a.lines = append(a.lines, sc.Text())
			a.mu.Unlock()
			select {
			case a.newLn <- struct{}{}:
			default:
			}
		}
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	return a
}

type syncWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (a *app) snapshot() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.lines)
}

// waitFor waits until cond holds on the lines so far.
func (a *app) waitFor(t *testing.T, what string, d time.Duration, cond func([]string) bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		if cond(a.snapshot()) {
			return
		}
		select {
		case <-a.newLn:
		case <-a.done:
			if cond(a.snapshot()) {
				return
			}
			t.Fatalf("pcapwatch exited (%v) before %s; stdout %q stderr %q", a.err, what, a.snapshot(), a.stderr.String())
		case <-deadline:
			t.Fatalf("no %s within %s; stdout %q stderr %q", what, d, a.snapshot(), a.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and returns the summary line's fields.
func (a *app) stop(t *testing.T) map[string]any {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("pcapwatch did not exit within 10 s of SIGTERM")
	}
	if a.err != nil {
		t.Fatalf("pcapwatch after SIGTERM: expected exit 0, found %v; stderr %q", a.err, a.stderr.String())
	}
	lines := a.snapshot()
	if len(lines) == 0 {
		t.Fatal("no output")
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum["event"] != "summary" {
		t.Fatalf("expected a summary JSON line last, found %q", lines[len(lines)-1])
	}
	return sum
}

func hasReady(iface string) func([]string) bool {
	return func(ls []string) bool { return slices.Contains(ls, "ready iface="+iface) }
}

// events returns the event lines (not ready, not summary) decoded.
func events(lines []string) []map[string]any {
	var evs []map[string]any
	for _, l := range lines {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["event"] != "summary" {
			evs = append(evs, m)
		}
	}
	return evs
}

// injector writes frames on the host end; they arrive as ingress on eth0
// in the namespace.
type injector struct{ fd, ifindex int }

func newInjector(t *testing.T, iface string) *injector {
	t.Helper()
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		t.Fatal(err)
	}
	// Protocol 0: this socket only sends, it receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &injector{fd: fd, ifindex: ifi.Index}
}

func (in *injector) send(t *testing.T, frame []byte) {
	t.Helper()
	if err := unix.Sendto(in.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: in.ifindex}); err != nil {
		t.Fatalf("injecting a %d-byte frame: %v", len(frame), err)
	}
}

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	bc   = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func arpFrame(t *testing.T, mac net.HardwareAddr, ip string, op uint16) []byte {
	return serialize(t,
		&layers.Ethernet{SrcMAC: mac, DstMAC: bc, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: op, SourceHwAddress: mac, SourceProtAddress: net.ParseIP(ip).To4(),
			DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP("192.168.77.1").To4()})
}

func dhcpFrame(t *testing.T, mac net.HardwareAddr, msg layers.DHCPMsgType, host string) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4zero, DstIP: net.IPv4bcast}
	udp := &layers.UDP{SrcPort: 68, DstPort: 67}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t,
		&layers.Ethernet{SrcMAC: mac, DstMAC: bc, EthernetType: layers.EthernetTypeIPv4}, ip, udp,
		&layers.DHCPv4{Operation: layers.DHCPOpRequest, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6, Xid: 0x1234,
			ClientHWAddr: mac, Options: layers.DHCPOptions{
				layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(msg)}),
				layers.NewDHCPOption(layers.DHCPOptHostname, []byte(host)),
				layers.NewDHCPOption(layers.DHCPOptEnd, nil),
			}})
}

func dnsFrame(t *testing.T, qname string, qtype layers.DNSType, response bool) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP("192.168.77.10"), DstIP: net.ParseIP("192.168.77.1")}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
	if response {
		udp.SrcPort, udp.DstPort = 53, 40000
	}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t,
		&layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}, ip, udp,
		&layers.DNS{ID: 7, QR: response, OpCode: layers.DNSOpCodeQuery, RD: true,
			Questions: []layers.DNSQuestion{{Name: []byte(qname), Type: qtype, Class: layers.DNSClassIN}}})
}

// The amd64 pcapwatch, run from its own image's rootfs, really captures:
// ready, then one event per ARP sender / DHCPREQUEST / DNS query, nothing
// for the decoys, and on SIGTERM a summary and exit 0.
func TestAmd64PcapwatchCaptures(t *testing.T) {
	for _, sa := range sampleApps {
		t.Run(sa.image, func(t *testing.T) { testAmd64Captures(t, sa.image, sa.prog) })
	}
}

func testAmd64Captures(t *testing.T, image, prog string) {
	_, imgs := built(t)
	ns, host := netnsVeth(t)
	root := rootfs(t, imgs[image].Layout, "linux/amd64")
	a := startProg(t, ns, root, prog, "--iface", "eth0")
	a.waitFor(t, "ready line", 10*time.Second, hasReady("eth0"))

	in := newInjector(t, host)
	frames := [][]byte{
		arpFrame(t, macA, "192.168.77.10", layers.ARPRequest),
		arpFrame(t, macA, "192.168.77.10", layers.ARPRequest), // same pair: no new event
		arpFrame(t, macB, "0.0.0.0", layers.ARPRequest),       // probe: no address yet
		arpFrame(t, macB, "192.168.77.11", layers.ARPReply),
		dhcpFrame(t, macB, layers.DHCPMsgTypeDiscover, "sensor-1"), // not a request
		dhcpFrame(t, macB, layers.DHCPMsgTypeRequest, "sensor-1"),
		dnsFrame(t, "example.com", layers.DNSTypeA, false),
		dnsFrame(t, "example.com", layers.DNSTypeA, true), // an answer, not a query
		dnsFrame(t, "mqtt.home.arpa", layers.DNSTypeAAAA, false),
		// A truncated IPv4 header must not kill it.
		append(append(append([]byte{}, macB...), macA...), 0x08, 0x00, 0x45, 0x00, 0x01),
	}
	for _, f := range frames {
		in.send(t, f)
	}
	want := []string{
		`{"event":"device_seen","mac":"02:00:00:00:00:0a","ip":"192.168.77.10"}`,
		`{"event":"device_seen","mac":"02:00:00:00:00:0b","ip":"192.168.77.11"}`,
		`{"event":"dhcp_request","mac":"02:00:00:00:00:0b","hostname":"sensor-1"}`,
		`{"event":"dns_query","name":"example.com","type":"A","src":"192.168.77.10"}`,
		`{"event":"dns_query","name":"mqtt.home.arpa","type":"AAAA","src":"192.168.77.10"}`,
	}
	a.waitFor(t, "the expected event lines", 10*time.Second, func(ls []string) bool {
		return len(events(ls)) >= len(want)
	})
	sum := a.stop(t)
	lines := a.snapshot()
	var got []string
	for _, l := range lines[1 : len(lines)-1] {
		got = append(got, l)
	}
	if !slices.Equal(got, want) {
		t.Errorf("event lines:\n expected %q\n found    %q", want, got)
	}
	if lines[0] != "ready iface=eth0" {
		t.Errorf("first line: expected ready iface=eth0, found %q", lines[0])
	}
	counts, _ := sum["counts"].(map[string]any)
	if sum["frames"] != float64(len(frames)) || counts["device_seen"] != 2.0 || counts["dhcp_request"] != 1.0 || counts["dns_query"] != 2.0 {
		t.Errorf("summary: expected frames %d and counts device_seen 2 dhcp_request 1 dns_query 2, found %v", len(frames), sum)
	}
	if sum["pcap_dropped"] != 0.0 {
		t.Errorf("summary: expected no pcap drops, found %v", sum["pcap_dropped"])
	}
}

// pcapwatch agrees with the fixtures' manifest (what the other tests of
// hil assert through the targets) when the frames come straight in: the
// generated fixtures and every one recorded from real traffic, whose
// expected events the recorder derived from the frames.
func TestAmd64PcapwatchMatchesFixtureManifest(t *testing.T) {
	for _, sa := range sampleApps {
		t.Run(sa.image, func(t *testing.T) { testAmd64MatchesFixtureManifest(t, sa.image, sa.prog) })
	}
}

func testAmd64MatchesFixtureManifest(t *testing.T, image, prog string) {
	_, imgs := built(t)
	root := rootfs(t, imgs[image].Layout, "linux/amd64")
	names := []string{"arp-sweep", "dhcp", "dns", "home-minute", "malformed", "burst-100k"}
	for _, fx := range pcapfixtures.Manifest() {
		if fx.Recorded != nil {
			names = append(names, fx.Name)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			fx, err := pcapfixtures.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := fx.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			var r interface {
				ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
			}
			if fx.Format == "pcapng" {
				r, err = pcapgo.NewNgReader(rc, pcapgo.DefaultNgReaderOptions)
			} else {
				r, err = pcapgo.NewReader(rc)
			}
			if err != nil {
				t.Fatal(err)
			}
			ns, host := netnsVeth(t)
			a := startProg(t, ns, root, prog, "--iface", "eth0")
			a.waitFor(t, "ready line", 10*time.Second, hasReady("eth0"))
			in := newInjector(t, host)
			sent := 0
			for {
				data, _, err := r.ReadPacketData()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(data) > 1514 {
					continue
				}
				in.send(t, data)
				sent++
			}
			ex := fx.Expect
			nWant := len(ex.DeviceSeen) + len(ex.DHCPRequest) + len(ex.DNSQuery)
			deadline := time.Now().Add(5 * time.Second)
			for len(events(a.snapshot())) < nWant && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			sum := a.stop(t)
			t.Logf("sent %d frames, summary %v", sent, sum)
			if ex.Exact && sum["frames"] != float64(ex.FramesSeen) {
				t.Errorf("frames: manifest expects %d, pcapwatch saw %v (sent %d)", ex.FramesSeen, sum["frames"], sent)
			}
			var want, got []string
			for _, d := range ex.DeviceSeen {
				want = append(want, "device_seen "+d.MAC+" "+d.IP)
			}
			for _, d := range ex.DHCPRequest {
				want = append(want, "dhcp_request "+d.MAC+" "+d.Hostname)
			}
			for _, d := range ex.DNSQuery {
				want = append(want, "dns_query "+d.Name+" "+d.Type)
			}
			for _, e := range events(a.snapshot()) {
				switch e["event"] {
				case "device_seen":
					got = append(got, fmt.Sprint("device_seen ", e["mac"], " ", e["ip"]))
				case "dhcp_request":
					got = append(got, fmt.Sprint("dhcp_request ", e["mac"], " ", e["hostname"]))
				case "dns_query":
					got = append(got, fmt.Sprint("dns_query ", e["name"], " ", e["type"]))
				}
			}
			slices.Sort(want)
			slices.Sort(got)
			if ex.Exact && !slices.Equal(got, want) {
				t.Errorf("events:\n expected %q\n found    %q", want, got)
			}
		})
	}
}

// crash-on-start exits 1 with a message before ready; slow-start is not
// ready within a few seconds yet stops cleanly on SIGTERM.
func TestAmd64FaultyVariantsBehave(t *testing.T) {
	_, imgs := built(t)
	ns, _ := netnsVeth(t)

	crash := startApp(t, ns, rootfs(t, imgs["crash-on-start"].Layout, "linux/amd64"), "--iface", "eth0")
	select {
	case <-crash.done:
	case <-time.After(10 * time.Second):
		t.Fatal("crash-on-start still running after 10 s")
	}
	var ee *exec.ExitError
	if !errors.As(crash.err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("crash-on-start: expected exit status 1, found %v", crash.err)
	}
	if len(crash.snapshot()) != 0 || !strings.Contains(crash.stderr.String(), "fatal") {
		t.Errorf("crash-on-start: expected no stdout and a fatal message on stderr, found %q / %q", crash.snapshot(), crash.stderr.String())
	}

	slow := startApp(t, ns, rootfs(t, imgs["slow-start"].Layout, "linux/amd64"), "--iface", "eth0")
	time.Sleep(2 * time.Second)
	if hasReady("eth0")(slow.snapshot()) {
		t.Fatal("slow-start was ready within 2 s")
	}
	sum := slow.stop(t)
	if sum["frames"] != 0.0 {
		t.Errorf("slow-start stopped before capturing: expected frames 0, found %v", sum["frames"])
	}
}

// A capture error (no such interface) is a message on stderr and exit 2.
func TestAmd64CaptureErrorExits2(t *testing.T) {
	for _, sa := range sampleApps {
		t.Run(sa.image, func(t *testing.T) { testAmd64CaptureErrorExits2(t, sa.image, sa.prog) })
	}
}

func testAmd64CaptureErrorExits2(t *testing.T, image, prog string) {
	_, imgs := built(t)
	ns, _ := netnsVeth(t)
	a := startProg(t, ns, rootfs(t, imgs[image].Layout, "linux/amd64"), prog, "--iface", "nosuch0")
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		t.Fatal("still running after 10 s on a missing interface")
	}
	var ee *exec.ExitError
	if !errors.As(a.err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("expected exit status 2, found %v (stderr %q)", a.err, a.stderr.String())
	}
	if !strings.Contains(a.stderr.String(), "nosuch0") || len(a.snapshot()) != 0 {
		t.Errorf("expected the interface named on stderr and nothing on stdout, found %q / %q", a.stderr.String(), a.snapshot())
	}
}

// SIGTERM in the middle of traffic that never pauses still ends with a
// summary and exit 0 (the drain after the signal is bounded).
func TestAmd64StopsDuringContinuousTraffic(t *testing.T) {
	for _, sa := range sampleApps {
		t.Run(sa.image, func(t *testing.T) { testAmd64StopsDuringContinuousTraffic(t, sa.image, sa.prog) })
	}
}

func testAmd64StopsDuringContinuousTraffic(t *testing.T, image, prog string) {
	_, imgs := built(t)
	ns, host := netnsVeth(t)
	a := startProg(t, ns, rootfs(t, imgs[image].Layout, "linux/amd64"), prog, "--iface", "eth0")
	a.waitFor(t, "ready line", 10*time.Second, hasReady("eth0"))
	in := newInjector(t, host)
	frame := arpFrame(t, macA, "192.168.77.10", layers.ARPRequest)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				unix.Sendto(in.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: in.ifindex})
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(300 * time.Millisecond)
	sum := a.stop(t) // fails unless exit 0 within 10 s
	if f, _ := sum["frames"].(float64); f < 100 {
		t.Errorf("expected a stream of frames counted, found %v", sum)
	}
}
