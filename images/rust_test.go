//go:build linux

package images_test

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/hilproject/hil/pcapfixtures"
)

const rustProg = "/usr/local/bin/pcapwatch-rs"

// The Rust build is what a Rust team ships: an ARM EABI5 hard-float ELF
// that links libpcap.so.0.8 dynamically (with glibc 2.34 symbol versions,
// like the Go build), in the image at /usr/local/bin/pcapwatch-rs.
func TestArmV7PcapwatchRsIsEABI5HardFloatAndNeedsLibpcap(t *testing.T) {
	_, imgs := built(t)
	rs := imgs["pcapwatch-rs"]
	f, err := os.Open(rs.Binaries["linux/arm/v7"])
	if err != nil {
		t.Fatalf("%v: run make images", err)
	}
	defer f.Close()
	checkArmhfBinary(t, "bin/pcapwatch-rs", f)
	_, data := files(t, platformImage(t, rs.Layout, "linux/arm/v7"), rustProg)
	checkArmhfBinary(t, rustProg+" in the arm/v7 image", strings.NewReader(string(data[rustProg])))
}

// What each Rust image holds: a libc6-only Debian base, then the copied
// libraries (libpcap and its closure in the multiarch dir; for rs-no-deps
// libpcap alone in /lib), then the binary; COPY-only history.
func TestRustImagesAndVariants(t *testing.T) {
	_, imgs := built(t)
	closure := []string{"libpcap.so.0.8", "libdbus-1.so.3", "libsystemd.so.0", "libcap.so.2", "libgcrypt.so.20", "libgpg-error.so.0", "liblz4.so.1", "liblzma.so.5", "libzstd.so.1"}
	for _, name := range []string{"pcapwatch-rs", "rs-no-deps", "late-crash"} {
		t.Run(name, func(t *testing.T) {
			bi, ok := imgs[name]
			if !ok {
				t.Fatalf("images.json has no %s: run make images", name)
			}
			if want := []string{"linux/arm/v7", "linux/amd64"}; !slices.Equal(bi.Platforms, want) {
				t.Errorf("expected platforms %v, found %v", want, bi.Platforms)
			}
			if (name == "pcapwatch-rs") != (bi.Breaks == "") {
				t.Errorf("breaks: %q", bi.Breaks)
			}
			for _, p := range bi.Platforms {
				img := platformImage(t, bi.Layout, p)
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(cf.Config.Entrypoint, []string{rustProg}) || !slices.Equal(cf.Config.Cmd, []string{"--iface", "eth0"}) {
					t.Errorf("%s: entrypoint %v cmd %v", p, cf.Config.Entrypoint, cf.Config.Cmd)
				}
				if len(cf.History) != 3 {
					t.Errorf("%s: expected 3 layers (base, libraries, app), found history %v", p, cf.History)
				}
				for _, h := range cf.History {
					if !strings.HasPrefix(h.CreatedBy, "COPY ") {
						t.Errorf("%s: a layer not made by COPY: %q", p, h.CreatedBy)
					}
				}
				h, _ := files(t, img)
				if hdr := h[rustProg]; hdr == nil || hdr.Mode&0o111 == 0 || hdr.Typeflag != tar.TypeReg {
					t.Fatalf("%s: %s missing or not executable", p, rustProg)
				}
				mustHave(t, h, loader(p), libDir(p)+"/libc.so.6", libDir(p)+"/libgcc_s.so.1")
				multi := "/usr" + libDir(p)
				for _, so := range closure {
					_, inMulti := h[multi+"/"+so]
					_, inLib := h["/lib/"+so]
					switch {
					case name == "rs-no-deps" && so == "libpcap.so.0.8":
						if !inLib || inMulti {
							t.Errorf("%s: expected libpcap.so.0.8 copied into /lib only", p)
						}
					case name == "rs-no-deps":
						for n := range h {
							if strings.HasSuffix(n, "/"+so) {
								t.Errorf("%s: expected no %s anywhere, found %s", p, so, n)
							}
						}
					default:
						if !inMulti {
							t.Errorf("%s: expected %s/%s", p, multi, so)
						}
					}
				}
			}
		})
	}
}

// diffFrames is the corpus both builds must report identically: every
// bundled fixture but the 100k burst, hand-made frames at the edges of
// what gopacket accepts, and deterministic mutations of all of them.
func diffFrames(t *testing.T) [][]byte {
	t.Helper()
	var base [][]byte
	for _, name := range []string{"arp-sweep", "dhcp", "dns", "home-minute", "malformed", "oversize", "two-interfaces"} {
		fx, err := pcapfixtures.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := fx.Open()
		if err != nil {
			t.Fatal(err)
		}
		if name == "two-interfaces" {
			// pcapng
			r, err := pcapgo.NewNgReader(rc, pcapgo.DefaultNgReaderOptions)
			if err != nil {
				t.Fatal(err)
			}
			for {
				d, _, err := r.ReadPacketData()
				if err != nil {
					break
				}
				base = append(base, d)
			}
		} else {
			r, err := pcapgo.NewReader(rc)
			if err != nil {
				t.Fatal(err)
			}
			for {
				d, _, err := r.ReadPacketData()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				base = append(base, d)
			}
		}
		rc.Close()
	}
	base = append(base, edgeFrames()...)
	rng := rand.New(rand.NewPCG(17, 2026))
	out := slices.Clone(base)
	for _, f := range base {
		if len(f) < 14 {
			continue
		}
		for range 3 {
			m := slices.Clone(f)
			switch rng.IntN(4) {
			case 0: // flip bytes past the Ethernet header
				for range 1 + rng.IntN(3) {
					if len(m) > 14 {
						m[14+rng.IntN(len(m)-14)] ^= byte(1 << rng.IntN(8))
					}
				}
			case 1: // truncate
				m = m[:14+rng.IntN(len(m)-13)]
			case 2: // trailing bytes after the packet
				for range 1 + rng.IntN(40) {
					m = append(m, byte(rng.IntN(256)))
				}
			case 3: // a length field or count set to something else
				if len(m) > 20 {
					i := 14 + rng.IntN(len(m)-15)
					binary.BigEndian.PutUint16(m[i:], uint16(rng.IntN(1024)))
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func eth(typ uint16, payload ...[]byte) []byte {
	f := []byte{0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa, byte(typ >> 8), byte(typ)}
	for _, p := range payload {
		f = append(f, p...)
	}
	return f
}

func ipv4(proto byte, src [4]byte, opts []byte, payload []byte) []byte {
	ihl := 5 + len(opts)/4
	h := []byte{0x40 | byte(ihl), 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0}
	h = append(h, src[:]...)
	h = append(h, 192, 168, 77, 1)
	h = append(h, opts...)
	binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(payload)))
	return append(h, payload...)
}

func ipv6(next byte, src [16]byte, payload []byte) []byte {
	h := []byte{0x60, 0, 0, 0, 0, 0, next, 64}
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h = append(h, src[:]...)
	h = append(h, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
	return append(h, payload...)
}

func udp(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h, sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

func dnsName(labels ...string) []byte {
	var b []byte
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// dnsMsg is a DNS header with the given flags and counts, then body.
func dnsMsg(flags uint16, qd, an, ns, ar uint16, body ...[]byte) []byte {
	h := make([]byte, 12)
	binary.BigEndian.PutUint16(h, 0x4242)
	binary.BigEndian.PutUint16(h[2:], flags)
	binary.BigEndian.PutUint16(h[4:], qd)
	binary.BigEndian.PutUint16(h[6:], an)
	binary.BigEndian.PutUint16(h[8:], ns)
	binary.BigEndian.PutUint16(h[10:], ar)
	for _, b := range body {
		h = append(h, b...)
	}
	return h
}

func question(name []byte, typ uint16) []byte {
	return append(slices.Clone(name), byte(typ>>8), byte(typ), 0, 1)
}

func dhcpMsg(op, hlen byte, chaddr []byte, opts ...[]byte) []byte {
	m := make([]byte, 240)
	m[0], m[1], m[2] = op, 1, hlen
	copy(m[28:], chaddr)
	binary.BigEndian.PutUint32(m[236:], 0x63825363)
	for _, o := range opts {
		m = append(m, o...)
	}
	return m
}

func arpBody(htype uint16, hw, prot byte, mac []byte, ip []byte) []byte {
	b := []byte{byte(htype >> 8), byte(htype), 0x08, 0x00, hw, prot, 0, 1}
	b = append(b, mac...)
	b = append(b, ip...)
	b = append(b, make([]byte, int(hw)+int(prot))...)
	return b
}

// edgeFrames are hand-made frames at the corners of the decoders.
func edgeFrames() [][]byte {
	src4 := [4]byte{192, 168, 77, 10}
	var src6 [16]byte
	src6[0], src6[1], src6[15] = 0x20, 0x01, 0x42
	var mapped [16]byte
	mapped[10], mapped[11], mapped[12], mapped[15] = 0xff, 0xff, 10, 7
	q := func(name []byte, typ uint16) []byte { return dnsMsg(0x0100, 1, 0, 0, 0, question(name, typ)) }
	dnsOver4 := func(p []byte) []byte { return eth(0x0800, ipv4(17, src4, nil, udp(40000, 53, p))) }
	mac := []byte{0xb8, 0x27, 0xeb, 1, 2, 3}
	var fs [][]byte
	add := func(f ...[]byte) { fs = append(fs, f...) }

	// ARP: usual, probe, hardware type 0x0101 (gopacket keeps a uint8),
	// other sizes, too short.
	add(eth(0x0806, arpBody(1, 6, 4, mac, []byte{192, 168, 77, 20})),
		eth(0x0806, arpBody(1, 6, 4, mac, []byte{0, 0, 0, 0})),
		eth(0x0806, arpBody(0x0101, 6, 4, []byte{1, 2, 3, 4, 5, 6}, []byte{10, 0, 0, 1})),
		eth(0x0806, arpBody(1, 8, 4, []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{10, 0, 0, 2})),
		eth(0x0806, arpBody(1, 6, 4, mac, []byte{192, 168, 77, 20})[:27]),
		eth(0x8100, []byte{0, 5, 0x08, 0x06}, arpBody(1, 6, 4, []byte{2, 0, 0, 0, 0, 0x0c}, []byte{10, 9, 8, 7})),
		eth(0x88a8, []byte{0, 5, 0x81, 0x00, 0, 6, 0x08, 0x06}, arpBody(1, 6, 4, []byte{2, 0, 0, 0, 0, 0x0d}, []byte{10, 9, 8, 6})),
		eth(0x6558, eth(0x0806, arpBody(1, 6, 4, []byte{2, 0, 0, 0, 0, 0x0e}, []byte{10, 9, 8, 5}))),
		eth(0x0040, arpBody(1, 6, 4, mac, []byte{192, 168, 77, 99})), // 802.3 length: LLC
	)
	// DNS: names with bytes JSON must escape, pointers, pointer loops,
	// unknown types, answers and EDNS, responses, other opcodes.
	add(dnsOver4(q(dnsName("a\"b\\c<d>&e", "x\x01y\x7f"), 1)),
		dnsOver4(q(dnsName("caf\xc3\xa9", "bad\xff\xfe", "ls\xe2\x80\xa8"), 28)),
		dnsOver4(q(dnsName("dot.inside", "label"), 12)),
		dnsOver4(q([]byte{0}, 2)),
		dnsOver4(q(dnsName("x"), 255)),
		dnsOver4(q(dnsName("uri"), 256)),
		dnsOver4(dnsMsg(0x0100, 2, 0, 0, 0, question(dnsName("one", "example"), 1), question([]byte{3, 't', 'w', 'o', 0xc0, 16}, 28))),
		dnsOver4(dnsMsg(0x0100, 1, 0, 0, 0, question([]byte{0xc0, 12}, 1))),
		dnsOver4(dnsMsg(0x0100, 1, 0, 0, 0, question([]byte{0x40, 0}, 1))),
		dnsOver4(dnsMsg(0x0100, 1, 0, 0, 1, question(dnsName("edns"), 1), []byte{0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 4, 0, 10, 0, 0})),
		dnsOver4(dnsMsg(0x0100, 1, 0, 0, 1, question(dnsName("edns-bad"), 1), []byte{0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 3, 0, 10, 0})),
		dnsOver4(dnsMsg(0x0100, 1, 1, 0, 0, question(dnsName("with-answer"), 1), []byte{0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 1, 0, 2, 0xc0, 12})),
		dnsOver4(dnsMsg(0x0100, 1, 1, 0, 0, question(dnsName("cname-empty"), 1), []byte{0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 1, 0, 0})),
		dnsOver4(dnsMsg(0x0100, 1, 1, 0, 0, question(dnsName("txt-bad"), 1), []byte{0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 1, 0, 3, 5, 'a', 'b'})),
		dnsOver4(dnsMsg(0x0100, 1, 1, 0, 0, question(dnsName("txt-good"), 1), []byte{0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 1, 0, 3, 2, 'a', 'b'})),
		dnsOver4(dnsMsg(0x0100, 1, 1, 0, 0, question(dnsName("soa"), 6), []byte{0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 1, 0, 24, 0xc0, 12, 0xc0, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5})),
		dnsOver4(dnsMsg(0x0100, 1, 1, 0, 0, question(dnsName("mx"), 15), []byte{0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 1, 0, 4, 0, 10, 0xc0, 12})),
		dnsOver4(dnsMsg(0x0100, 1, 1, 0, 0, question(dnsName("srv-short"), 33), []byte{0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 1, 0, 4, 0, 1, 0, 2})),
		dnsOver4(dnsMsg(0x8180, 1, 0, 0, 0, question(dnsName("response"), 1))),
		dnsOver4(dnsMsg(0x2800, 1, 0, 0, 0, question(dnsName("update"), 6))),
		dnsOver4(dnsMsg(0x0100, 3, 0, 0, 0, question(dnsName("short"), 1))),
		eth(0x0800, ipv4(17, src4, nil, udp(53, 40000, q(dnsName("to-client"), 1)))),
		eth(0x0800, ipv4(17, src4, nil, udp(123, 53, q(dnsName("ntp-wins"), 1)))),
		eth(0x0800, ipv4(17, src4, nil, udp(53, 5060, q(dnsName("sip-wins"), 1)))),
		eth(0x0800, ipv4(17, src4, []byte{0x94, 4, 0, 0}, udp(40000, 53, q(dnsName("ip-options"), 1)))),
		eth(0x0800, ipv4(17, src4, []byte{0x94, 2, 0, 0}, udp(40000, 53, q(dnsName("bad-option"), 1)))),
		eth(0x86dd, ipv6(17, src6, udp(40000, 53, q(dnsName("over", "ipv6"), 28)))),
		eth(0x86dd, ipv6(17, mapped, udp(40000, 53, q(dnsName("mapped"), 1)))),
		eth(0x86dd, ipv6(0, src6, append([]byte{17, 0, 1, 0, 0, 0, 0, 0}, udp(40000, 53, q(dnsName("hop", "by", "hop"), 1))...))),
		eth(0x86dd, ipv6(41, src6, ipv6(17, mapped, udp(40000, 53, q(dnsName("6in6"), 1))))),
		eth(0x0800, ipv4(41, src4, nil, ipv6(17, src6, udp(40000, 53, q(dnsName("6in4"), 1))))),
		eth(0x0800, ipv4(4, src4, nil, ipv4(17, [4]byte{10, 1, 2, 3}, nil, udp(40000, 53, q(dnsName("4in4"), 1))))),
	)
	// A fragment: not decoded past IPv4.
	frag := eth(0x0800, ipv4(17, src4, nil, udp(40000, 53, q(dnsName("fragment"), 1))))
	frag[14+6] = 0x20
	add(frag)
	// The question's type and class past the UDP length but inside the
	// frame: gopacket reads them from the bytes that follow.
	short := eth(0x0800, ipv4(17, src4, nil, udp(40000, 53, q(dnsName("past-end"), 1))))
	binary.BigEndian.PutUint16(short[14+20+4:], uint16(8+12+len(dnsName("past-end"))))
	add(short, append(slices.Clone(short[:len(short)-4]), 0, 16))
	// IPv4 total length shorter than the frame (trailer), and 0 (TSO).
	trailer := eth(0x0800, ipv4(17, src4, nil, udp(40000, 53, q(dnsName("trailer"), 1))))
	add(append(slices.Clone(trailer), 1, 2, 3, 4, 5, 6, 7, 8))
	tso := slices.Clone(trailer)
	binary.BigEndian.PutUint16(tso[14+2:], 0)
	add(tso)

	// DHCP: request, discover, no message type, a long chaddr, one that
	// wraps gopacket's uint8 arithmetic, hostname bytes, bad options.
	dhcp := func(m []byte) []byte { return eth(0x0800, ipv4(17, [4]byte{}, nil, udp(68, 67, m))) }
	opt := func(t byte, v ...byte) []byte { return append([]byte{t, byte(len(v))}, v...) }
	add(dhcp(dhcpMsg(1, 6, mac, opt(53, 3), opt(12, []byte("kitchen-pi")...), []byte{255})),
		dhcp(dhcpMsg(1, 6, mac, opt(53, 1), opt(12, []byte("discover")...), []byte{255})),
		dhcp(dhcpMsg(1, 6, mac, opt(12, []byte("no-type")...), []byte{255})),
		dhcp(dhcpMsg(1, 16, mac, []byte{0, 0}, opt(53, 3), opt(12, []byte("h\"o<s>t\xff\xc3")...), opt(12, []byte("last-wins")...), []byte{255})),
		dhcp(dhcpMsg(1, 0, mac, opt(53, 3), []byte{255})),
		dhcp(dhcpMsg(1, 230, mac, opt(53, 3), []byte{255})),
		dhcp(dhcpMsg(1, 200, mac, opt(53, 3), []byte{255})),
		dhcp(append(dhcpMsg(1, 220, mac, opt(53, 3), []byte{255}), make([]byte, 64)...)),
		dhcp(dhcpMsg(2, 6, mac, opt(53, 3), []byte{255})),
		dhcp(dhcpMsg(1, 6, mac, opt(53, 3, 3), opt(53, 3))),
		dhcp(dhcpMsg(1, 6, mac, opt(53, 3), []byte{12, 40, 'x'})),
		dhcp(dhcpMsg(1, 6, mac, opt(53, 3), []byte{12})),
		dhcp(dhcpMsg(1, 6, mac, opt(53, 3), []byte{255}, []byte{12, 200})),
		dhcp(dhcpMsg(1, 6, mac)[:239]),
	)
	return fs
}

// Go pcapwatch and pcapwatch-rs, capturing side by side on the same
// interface, print the same lines byte for byte for the fixtures, frames
// at the edges of the decoders and thousands of mutations of both
// (HIL_DIFF_DUMP=1 logs the lines).
func TestAmd64RustPrintsWhatGoPrints(t *testing.T) {
	_, imgs := built(t)
	ns, host := netnsVeth(t)
	goApp := startProg(t, ns, rootfs(t, imgs["pcapwatch"].Layout, "linux/amd64"), "/opt/pcapwatch", "--iface", "eth0")
	rsApp := startProg(t, ns, rootfs(t, imgs["pcapwatch-rs"].Layout, "linux/amd64"), rustProg, "--iface", "eth0")
	goApp.waitFor(t, "Go ready line", 10*time.Second, hasReady("eth0"))
	rsApp.waitFor(t, "Rust ready line", 10*time.Second, hasReady("eth0"))
	in := newInjector(t, host)
	sent := 0
	for i, f := range diffFrames(t) {
		if len(f) > 1514 {
			continue
		}
		// The kernel refuses a few mutants (too short for the device);
		// neither app sees those.
		if err := unix.Sendto(in.fd, f, 0, &unix.SockaddrLinklayer{Ifindex: in.ifindex}); err != nil {
			continue
		}
		sent++
		if i%200 == 0 {
			time.Sleep(2 * time.Millisecond) // stay well inside both rings
		}
	}
	time.Sleep(200 * time.Millisecond)
	goApp.stop(t)
	rsApp.stop(t)
	gl, rl := goApp.snapshot(), rsApp.snapshot()
	t.Logf("sent %d frames; Go printed %d lines, Rust %d", sent, len(gl), len(rl))
	if os.Getenv("HIL_DIFF_DUMP") != "" {
		t.Log(strings.Join(rl, "\n"))
	}
	if len(gl) < 100 {
		t.Fatalf("expected many event lines, found %d", len(gl))
	}
	if !slices.Equal(gl, rl) {
		for i := range max(len(gl), len(rl)) {
			var g, r string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(rl) {
				r = rl[i]
			}
			if g != r {
				t.Fatalf("line %d differs:\n Go   %q\n Rust %q", i+1, g, r)
			}
		}
	}
	if e := rsApp.stderr.String(); e != "" {
		t.Errorf("pcapwatch-rs wrote to stderr: %q", e)
	}
}

// Bad flags are refused the way Go's flag package refuses them: the same
// message and usage (but the program name), the same exit status.
func TestAmd64RustFlagsLikeGo(t *testing.T) {
	_, imgs := built(t)
	goRoot := rootfs(t, imgs["pcapwatch"].Layout, "linux/amd64")
	rsRoot := rootfs(t, imgs["pcapwatch-rs"].Layout, "linux/amd64")
	// In a namespace of the test's own, whose eth0 the cases never name:
	// flags that parse end in a capture error, never in a capture.
	ns, _ := netnsVeth(t)
	run := func(root, prog string, args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, "chroot", root, prog}, args...)...).CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("%s %q still running after 20 s: %s", prog, args, out)
		}
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(out), prog, "PROG"), code
	}
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"--nope"}, {"--snaplen"}, {"--snaplen", "abc"}, {"-snaplen=99999999999999999999"},
		{"--buffer-mib=1__0"}, {"---iface"}, {"-=x"}, {"--iface", "nosuch0"}, {"--iface=nosuch1", "--", "--nope"},
		{"-iface", "nosuch2", "extra", "--nope"}, {"--snaplen", "0x_1", "--iface", "nosuch4"}, {"--buffer-mib", "-1", "--iface", "nosuch3"},
		{"--snaplen", "0x", "--iface", "nosuch5"}, {"--snaplen=010", "-iface=nosuch6"},
	} {
		gOut, gCode := run(goRoot, "/opt/pcapwatch", args...)
		rOut, rCode := run(rsRoot, rustProg, args...)
		// The capture errors name the program; the rest is Go's wording.
		rOut = strings.ReplaceAll(rOut, "PROG-rs:", "pcapwatch:")
		rOut = strings.ReplaceAll(rOut, "pcapwatch-rs:", "pcapwatch:")
		if gOut != rOut || gCode != rCode {
			t.Errorf("%q:\n Go   exit %d %q\n Rust exit %d %q", args, gCode, gOut, rCode, rOut)
		}
	}
}

// late-crash passes what the gate's scenarios do (ready, capture, a clean
// stop on SIGTERM) and, left running, panics 10 s after ready (never
// sooner: the gate's longest scenario stops the app about 4 s after ready).
func TestAmd64LateCrash(t *testing.T) {
	_, imgs := built(t)
	root := rootfs(t, imgs["late-crash"].Layout, "linux/amd64")
	ns, host := netnsVeth(t)

	stopped := startProg(t, ns, root, rustProg, "--iface", "eth0")
	stopped.waitFor(t, "ready line", 10*time.Second, hasReady("eth0"))
	newInjector(t, host).send(t, eth(0x0806, arpBody(1, 6, 4, []byte{2, 0, 0, 0, 0, 1}, []byte{10, 0, 0, 1})))
	stopped.waitFor(t, "the device_seen line", 10*time.Second, func(ls []string) bool { return len(events(ls)) == 1 })
	if sum := stopped.stop(t); sum["frames"] != 1.0 {
		t.Errorf("summary: expected frames 1, found %v", sum)
	}

	crashed := startProg(t, ns, root, rustProg, "--iface", "eth0")
	crashed.waitFor(t, "ready line", 10*time.Second, hasReady("eth0"))
	ready := time.Now()
	select {
	case <-crashed.done:
	case <-time.After(60 * time.Second):
		t.Fatal("late-crash still running 60 s after ready")
	}
	after := time.Since(ready)
	var ee *exec.ExitError
	if !errors.As(crashed.err, &ee) || ee.ExitCode() != 101 {
		t.Errorf("expected a Rust panic's exit status 101, found %v", crashed.err)
	}
	if !strings.Contains(crashed.stderr.String(), "panicked at") {
		t.Errorf("expected a panic message on stderr, found %q", crashed.stderr.String())
	}
	if after < 10*time.Second {
		t.Errorf("crashed %s after ready; the gate's scenarios need it alive for 10 s", after.Round(time.Millisecond))
	}
	t.Logf("crashed %s after ready: %s", after.Round(time.Millisecond), strings.TrimSpace(crashed.stderr.String()))
}
