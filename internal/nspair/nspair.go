//go:build linux

// Package nspair makes two network namespaces joined by a veth pair, so
// that real programs (a Go server, dnsmasq, ping, the kernel's own ARP and
// IPv6 neighbour discovery) can talk to each other on this machine without
// touching the host's network: what hil's recorded fixtures are made from
// and what the capture tests record. Setup goes through iproute2 (`ip`)
// and ethtool, the tools an operator would use; everything is removed by
// Close, on every path.
package nspair

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hilproject/hil/internal/nsthread"
	"github.com/vishvananda/netns"
)

// NS is one end: a named namespace (under /run/netns) with the interface
// Iface, its MAC and addresses.
type NS struct {
	Name  string
	Iface string
	MAC   net.HardwareAddr
	IPv4  net.IP // nil when the pair has none
	IPv6  net.IP // nil until EnableIPv6
}

// Path is the namespace's file, for WithNetNS-style options.
func (n NS) Path() string { return filepath.Join("/run/netns", n.Name) }

// Pair is two namespaces A and B joined by a veth pair.
type Pair struct {
	A, B NS
}

type config struct {
	macA, macB net.HardwareAddr
	ipA, ipB   string // CIDR
	ip6A, ip6B string // CIDR; "" keeps IPv6 off
	noOffloads bool
	mtu        int
}

// Option configures New.
type Option func(*config)

// WithMACs sets both ends' MAC addresses (default 02:00:00:00:00:0a and
// :0b), so that recordings made on different days carry the same ones.
func WithMACs(a, b string) Option {
	return func(c *config) {
		c.macA, _ = net.ParseMAC(a)
		c.macB, _ = net.ParseMAC(b)
	}
}

// WithIPv4 sets both ends' IPv4 addresses in CIDR form (default
// 10.77.0.1/24 and 10.77.0.2/24); "" for none.
func WithIPv4(a, b string) Option { return func(c *config) { c.ipA, c.ipB = a, b } }

// WithoutOffloads turns off segmentation, checksum and receive offloads on
// both ends: frames on the link are then what a real NIC puts on a wire
// (at most MTU+14 bytes, correct checksums) instead of 64 KiB TSO
// super-frames with partial checksums, which is what a capture of veth
// traffic shows otherwise. Needs ethtool.
func WithoutOffloads() Option { return func(c *config) { c.noOffloads = true } }

// WithMTU sets both ends' MTU (default 1500).
func WithMTU(n int) Option { return func(c *config) { c.mtu = n } }

// New creates the namespaces (hil-<tag>-<id>-a and -b), the veth pair
// (eth0 in each), addresses and routes, and brings everything up. IPv6 is
// off (see EnableIPv6), so nothing crosses the link until a program sends.
func New(ctx context.Context, tag string, opts ...Option) (_ *Pair, err error) {
	cfg := config{ipA: "10.77.0.1/24", ipB: "10.77.0.2/24", mtu: 1500}
	WithMACs("02:00:00:00:00:0a", "02:00:00:00:00:0b")(&cfg)
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.macA == nil || cfg.macB == nil {
		return nil, errors.New("nspair: bad MAC address: expected the form 02:00:00:00:00:0a")
	}
	if len(tag) > 6 {
		return nil, fmt.Errorf("nspair: tag %q: expected at most 6 characters (interface names are short)", tag)
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(b)
	p := &Pair{
		A: NS{Name: "hil-" + tag + "-" + id + "-a", Iface: "eth0", MAC: cfg.macA},
		B: NS{Name: "hil-" + tag + "-" + id + "-b", Iface: "eth0", MAC: cfg.macB},
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	tmpA, tmpB := "hn"+id+"a", "hn"+id+"b"
	steps := [][]string{
		{"netns", "add", p.A.Name},
		{"netns", "add", p.B.Name},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return nil, err
		}
	}
	for _, ns := range []NS{p.A, p.B} {
		// Before the interface exists, so it is born with IPv6 off.
		if err := ns.run(ctx, "sysctl", "-q", "-w",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
			return nil, err
		}
	}
	steps = [][]string{
		{"link", "add", tmpA, "address", cfg.macA.String(), "mtu", fmt.Sprint(cfg.mtu), "netns", p.A.Name,
			"type", "veth", "peer", "name", tmpB, "address", cfg.macB.String(), "mtu", fmt.Sprint(cfg.mtu), "netns", p.B.Name},
		{"-n", p.A.Name, "link", "set", tmpA, "name", p.A.Iface},
		{"-n", p.B.Name, "link", "set", tmpB, "name", p.B.Iface},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return nil, err
		}
	}
	for _, e := range []struct {
		ns  *NS
		ip4 string
	}{{&p.A, cfg.ipA}, {&p.B, cfg.ipB}} {
		if cfg.noOffloads {
			if err := e.ns.run(ctx, "ethtool", "-K", e.ns.Iface, "tso", "off", "gso", "off", "gro", "off",
				"tx", "off", "rx", "off", "sg", "off"); err != nil {
				return nil, err
			}
		}
		if e.ip4 != "" {
			a, _, err := net.ParseCIDR(e.ip4)
			if err != nil {
				return nil, fmt.Errorf("nspair: IPv4 %q: %w", e.ip4, err)
			}
			e.ns.IPv4 = a
			if err := ip(ctx, "-n", e.ns.Name, "addr", "add", e.ip4, "dev", e.ns.Iface); err != nil {
				return nil, err
			}
		}
	}
	for _, ns := range []NS{p.A, p.B} {
		for _, dev := range []string{"lo", ns.Iface} {
			if err := ip(ctx, "-n", ns.Name, "link", "set", dev, "up"); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// EnableIPv6 turns IPv6 on for both ends' interface and adds the given
// addresses (CIDR): the kernels then do what they do on any LAN, duplicate
// address detection, router solicitations, multicast listener reports and
// neighbour discovery once they talk. Start a capture first to see it all.
func (p *Pair) EnableIPv6(ctx context.Context, a, b string) error {
	for _, e := range []struct {
		ns   *NS
		addr string
	}{{&p.A, a}, {&p.B, b}} {
		ip6, _, err := net.ParseCIDR(e.addr)
		if err != nil || ip6.To4() != nil {
			return fmt.Errorf("nspair: IPv6 address %q: expected CIDR form like fd00::1/64", e.addr)
		}
		if err := e.ns.run(ctx, "sysctl", "-q", "-w", "net.ipv6.conf."+e.ns.Iface+".disable_ipv6=0"); err != nil {
			return err
		}
		if err := ip(ctx, "-n", e.ns.Name, "addr", "add", e.addr, "dev", e.ns.Iface); err != nil {
			return err
		}
		e.ns.IPv6 = ip6
	}
	return nil
}

// AddVLAN adds an 802.1Q link IFACE.ID on both ends with the given IPv4
// addresses (CIDR) and brings it up; frames on eth0 then carry the tag.
// On a kernel without 802.1Q links it returns ErrNo8021Q (see TagVLAN).
func (p *Pair) AddVLAN(ctx context.Context, id int, ipA, ipB string) (ifA, ifB NS, err error) {
	ifA, ifB = p.A, p.B
	name := fmt.Sprintf("%s.%d", p.A.Iface, id)
	for _, e := range []struct {
		ns   *NS
		addr string
	}{{&ifA, ipA}, {&ifB, ipB}} {
		if err := ip(ctx, "-n", e.ns.Name, "link", "add", "link", e.ns.Iface, "name", name, "type", "vlan", "id", fmt.Sprint(id)); err != nil {
			if vlanUnsupported(err) {
				return NS{}, NS{}, fmt.Errorf("%w: %v", ErrNo8021Q, err)
			}
			return NS{}, NS{}, err
		}
		a, _, err := net.ParseCIDR(e.addr)
		if err != nil {
			return NS{}, NS{}, fmt.Errorf("nspair: VLAN address %q: %w", e.addr, err)
		}
		if err := ip(ctx, "-n", e.ns.Name, "addr", "add", e.addr, "dev", name); err != nil {
			return NS{}, NS{}, err
		}
		if err := ip(ctx, "-n", e.ns.Name, "link", "set", name, "up"); err != nil {
			return NS{}, NS{}, err
		}
		e.ns.Iface, e.ns.IPv4 = name, a
	}
	return ifA, ifB, nil
}

// Close deletes both namespaces; the veth pair and any VLAN links go with
// them. Processes started with Command must have ended.
func (p *Pair) Close() error {
	var errs []error
	for _, ns := range []NS{p.A, p.B} {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "No such file") {
			errs = append(errs, fmt.Errorf("nspair: ip netns del %s: %v: %s", ns.Name, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}

// Command is a program run inside the namespace (ip netns exec).
func (n NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

func (n NS) run(ctx context.Context, name string, args ...string) error {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nspair: in %s: %s %s: %v: %s", n.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nspair: ip %s: %v: %s (needs root and iproute2)", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Do runs f on a locked thread inside the namespace: sockets f makes
// belong to it and can be used from any goroutine afterwards.
func (n NS) Do(f func() error) error {
	target, err := netns.GetFromPath(n.Path())
	if err != nil {
		return fmt.Errorf("nspair: open namespace %s: %w", n.Name, err)
	}
	defer target.Close()
	return nsthread.Run(func() error {
		if err := netns.Set(target); err != nil {
			return fmt.Errorf("nspair: enter %s: %w", n.Name, err)
		}
		return nil
	}, f)
}

// Listen listens inside the namespace.
func (n NS) Listen(network, addr string) (l net.Listener, err error) {
	err = n.Do(func() error {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a packet socket inside the namespace.
func (n NS) ListenPacket(network, addr string) (c net.PacketConn, err error) {
	err = n.Do(func() error {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	return c, err
}

// Dial connects from inside the namespace.
func (n NS) Dial(ctx context.Context, network, addr string) (c net.Conn, err error) {
	err = n.Do(func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}
