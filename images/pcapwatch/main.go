//go:build cgo

// Command pcapwatch is the sample IoT app that hil tests: it captures on one
// interface with libpcap and reports, one JSON line each, the devices it sees
// (ARP), DHCP requests and DNS queries. It links libpcap.so.0.8 and glibc
// dynamically through cgo, like the C/Rust apps it stands in for, so that a
// broken image (missing loader, library, or too old a glibc) fails the same
// way on a board.
//
// Output contract (stdout, one line each, flushed as written):
//
//	ready iface=eth0                     once the capture is active
//	{"event":"device_seen","mac":"02:00:00:00:00:01","ip":"192.168.1.10"}
//	{"event":"dhcp_request","mac":"02:00:00:00:00:02","hostname":"sensor-1"}
//	{"event":"dns_query","name":"example.com","type":"A","src":"192.168.1.10"}
//	{"event":"summary","frames":N,"counts":{...},"pcap_received":R,"pcap_dropped":D,"pcap_if_dropped":I}
//
// The summary is printed on SIGTERM or SIGINT, then the exit status is 0.
// Capture errors go to stderr with exit status 2.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcap"
)

// Set with -ldflags -X by the image builder to make the deliberately
// broken variants: a fault baked into the binary, as it would be in a bad
// release, rather than a flag the harness could notice.
var (
	crashOnStart string // non-empty: print it to stderr and exit 1 before capturing
	startDelay   string // a time.Duration to wait before the capture starts
)

const (
	exitCaptureError = 2
	pollTimeout      = 100 * time.Millisecond
	// drainLimit bounds how long frames queued before SIGTERM are still
	// read before the summary (a full 32 MiB ring takes well under that).
	drainLimit = 10 * time.Second
)

func main() {
	iface := flag.String("iface", "eth0", "network interface to capture on")
	bufMiB := flag.Int("buffer-mib", 32, "kernel capture ring in MiB")
	// In immediate mode libpcap uses a TPACKET_V2 ring of fixed-size
	// slots sized by the snaplen (the MTU is ignored when the NIC offloads,
	// as veth does): 65535 would leave 16 MiB with 256 slots, and a burst
	// overflows it. 1024 bytes hold every ARP, DHCP (≤ 576-byte messages
	// in practice) and DNS query we decode, and give ~30,000 slots; longer
	// frames are still counted, just truncated.
	snaplen := flag.Int("snaplen", 1024, "bytes captured per frame")
	flag.Parse()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	out := &emitter{counts: map[string]int{"device_seen": 0, "dhcp_request": 0, "dns_query": 0}}

	if crashOnStart != "" {
		fmt.Fprintf(os.Stderr, "pcapwatch: %s\n", crashOnStart)
		os.Exit(1)
	}
	if startDelay != "" {
		d, err := time.ParseDuration(startDelay)
		if err == nil {
			select {
			case <-time.After(d):
			case <-sigs:
				out.summary(0, nil)
				return
			}
		}
	}

	handle, err := open(*iface, *bufMiB, *snaplen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pcapwatch: capture on %s: %v\n", *iface, err)
		os.Exit(exitCaptureError)
	}
	defer handle.Close()
	out.line(fmt.Sprintf("ready iface=%s", *iface))

	w := newWatcher(out)
	// After a signal, the frames the kernel had already queued are still
	// read (a test that replays a burst then stops the app wants them all
	// counted), but nothing that arrives later: traffic that never pauses
	// must not keep us from stopping.
	stopping, drainTo := false, 0
	var stopBy time.Time
	for {
		if stopping && (w.frames >= drainTo || time.Now().After(stopBy)) {
			summarize(out, w, handle)
			return
		}
		data, _, err := handle.ZeroCopyReadPacketData()
		switch {
		case err == nil:
			w.frame(data)
		case errors.Is(err, pcap.NextErrorTimeoutExpired):
			if stopping { // the ring is empty
				summarize(out, w, handle)
				return
			}
		default:
			fmt.Fprintf(os.Stderr, "pcapwatch: reading from %s: %v\n", *iface, err)
			os.Exit(exitCaptureError)
		}
		if !stopping {
			select {
			case <-sigs:
				stopping, stopBy = true, time.Now().Add(drainLimit)
				if st, err := handle.Stats(); err == nil {
					// Linux counts dropped frames as received too.
					drainTo = st.PacketsReceived - st.PacketsDropped
				}
			default:
			}
		}
	}
}

func summarize(out *emitter, w *watcher, h *pcap.Handle) {
	st, _ := h.Stats()
	out.summary(w.frames, st)
}

func open(iface string, bufMiB, snaplen int) (*pcap.Handle, error) {
	in, err := pcap.NewInactiveHandle(iface)
	if err != nil {
		return nil, err
	}
	defer in.CleanUp()
	for _, set := range []func() error{
		func() error { return in.SetSnapLen(snaplen) },
		func() error { return in.SetPromisc(true) },
		// Immediate mode hands each frame over at once; the large buffer
		// absorbs bursts while we print.
		func() error { return in.SetImmediateMode(true) },
		func() error { return in.SetBufferSize(bufMiB << 20) },
		func() error { return in.SetTimeout(pollTimeout) },
	} {
		if err := set(); err != nil {
			return nil, err
		}
	}
	return in.Activate()
}

// emitter writes whole lines with one write each, so that a pipe or a
// serial console sees every line as soon as it is produced.
type emitter struct {
	counts map[string]int
}

func (e *emitter) line(s string) {
	os.Stdout.Write([]byte(s + "\n"))
}

func (e *emitter) event(name string, fields map[string]any) {
	e.counts[name]++
	b, _ := json.Marshal(orderedEvent(name, fields))
	e.line(string(b))
}

func (e *emitter) summary(frames int, st *pcap.Stats) {
	s := struct {
		Event    string         `json:"event"`
		Frames   int            `json:"frames"`
		Counts   map[string]int `json:"counts"`
		Received int            `json:"pcap_received"`
		Dropped  int            `json:"pcap_dropped"`
		IfDrop   int            `json:"pcap_if_dropped"`
	}{Event: "summary", Frames: frames, Counts: e.counts}
	if st != nil {
		s.Received, s.Dropped, s.IfDrop = st.PacketsReceived, st.PacketsDropped, st.PacketsIfDropped
	}
	b, _ := json.Marshal(s)
	e.line(string(b))
}

// orderedEvent keeps "event" first in the line, which makes logs easy to
// read; json.Marshal sorts map keys, so a small struct-like encoding is used.
func orderedEvent(name string, fields map[string]any) json.Marshaler {
	return rawEvent{name: name, fields: fields}
}

type rawEvent struct {
	name   string
	fields map[string]any
}

func (r rawEvent) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	n, _ := json.Marshal(r.name)
	b.WriteString(`{"event":` + string(n))
	for _, k := range []string{"mac", "ip", "hostname", "name", "type", "src"} {
		v, ok := r.fields[k]
		if !ok {
			continue
		}
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b.WriteString(`,"` + k + `":` + string(vb))
	}
	b.WriteString("}")
	return []byte(b.String()), nil
}

// watcher decodes frames and turns them into events.
type watcher struct {
	out    *emitter
	frames int
	seen   map[string]bool // "mac ip" pairs already reported

	parser  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	arp     layers.ARP
	ip4     layers.IPv4
	ip6     layers.IPv6
	udp     layers.UDP
	dhcp    layers.DHCPv4
	dns     layers.DNS
}

func newWatcher(out *emitter) *watcher {
	w := &watcher{out: out, seen: map[string]bool{}}
	w.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet,
		&w.eth, &w.dot1q, &w.arp, &w.ip4, &w.ip6, &w.udp, &w.dhcp, &w.dns)
	w.parser.IgnoreUnsupported = true
	return w
}

func (w *watcher) frame(data []byte) {
	w.frames++
	// Malformed frames are counted but otherwise ignored: a capture app
	// must survive whatever the wire carries.
	_ = w.parser.DecodeLayers(data, &w.decoded)
	var src net.IP
	for _, lt := range w.decoded {
		switch lt {
		case layers.LayerTypeARP:
			w.onARP()
		case layers.LayerTypeIPv4:
			src = w.ip4.SrcIP
		case layers.LayerTypeIPv6:
			src = w.ip6.SrcIP
		case layers.LayerTypeDHCPv4:
			w.onDHCP()
		case layers.LayerTypeDNS:
			w.onDNS(src)
		}
	}
}

func (w *watcher) onARP() {
	if w.arp.AddrType != layers.LinkTypeEthernet || w.arp.Protocol != layers.EthernetTypeIPv4 ||
		len(w.arp.SourceHwAddress) != 6 || len(w.arp.SourceProtAddress) != 4 {
		return
	}
	ip := net.IP(w.arp.SourceProtAddress)
	if ip.IsUnspecified() { // ARP probes announce no address yet
		return
	}
	mac := net.HardwareAddr(w.arp.SourceHwAddress).String()
	key := mac + " " + ip.String()
	if w.seen[key] {
		return
	}
	w.seen[key] = true
	w.out.event("device_seen", map[string]any{"mac": mac, "ip": ip.String()})
}

func (w *watcher) onDHCP() {
	if w.dhcp.Operation != layers.DHCPOpRequest {
		return
	}
	var msgType layers.DHCPMsgType
	hostname := ""
	for _, o := range w.dhcp.Options {
		switch o.Type {
		case layers.DHCPOptMessageType:
			if len(o.Data) == 1 {
				msgType = layers.DHCPMsgType(o.Data[0])
			}
		case layers.DHCPOptHostname:
			hostname = string(o.Data)
		}
	}
	if msgType != layers.DHCPMsgTypeRequest {
		return
	}
	w.out.event("dhcp_request", map[string]any{
		"mac": w.dhcp.ClientHWAddr.String(), "hostname": hostname,
	})
}

func (w *watcher) onDNS(src net.IP) {
	if w.dns.QR || w.dns.OpCode != layers.DNSOpCodeQuery {
		return
	}
	for _, q := range w.dns.Questions {
		f := map[string]any{"name": string(q.Name), "type": q.Type.String()}
		if src != nil {
			f["src"] = src.String()
		}
		w.out.event("dns_query", f)
	}
}
