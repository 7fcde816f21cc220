//go:build linux

// Package veth is the harness's end of an app's capture interface for the
// user and container targets: a veth pair whose app end lives in a network
// namespace (a new one, or the container's) and whose host end the harness
// drives with AF_PACKET, so that written frames arrive at the app as ingress.
package veth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/internal/ethtool"
	"github.com/hilproject/hil/internal/nsthread"
	"github.com/hilproject/hil/internal/owner"
)

// DefaultMTU is the MTU of both ends unless WithMTU says otherwise.
const DefaultMTU = 1500

// socketBuffer is what we ask for on the host end's sockets. FINDINGS: the
// 208 KiB default overflowed at 10,000 frames top speed. As root the FORCE
// variants go past net.core.{r,w}mem_max; otherwise we get the host max.
const socketBuffer = 64 << 20

type config struct {
	name   string
	nsPath string
	mtu    int
}

// Option configures New.
type Option func(*config)

// WithName names the app end inside the namespace (default "eth0").
func WithName(iface string) Option { return func(c *config) { c.name = iface } }

// WithNetNSPath puts the app end into an existing network namespace (for
// example /proc/PID/ns/net of a container) instead of a new one. Close then
// leaves that namespace alone.
func WithNetNSPath(path string) Option { return func(c *config) { c.nsPath = path } }

// WithMTU sets the MTU of both ends (default 1500).
func WithMTU(n int) Option { return func(c *config) { c.mtu = n } }

// Link is a veth pair: the app end in a namespace, the host end here.
type Link struct {
	nsName    string // the namespace we created, "" when it was given
	nsPath    string
	appIface  string
	hostIface string
	mtu       int

	tx     int      // AF_PACKET, protocol 0: sends only, receives nothing
	rx     *os.File // AF_PACKET, ETH_P_ALL: what the app sends
	frames chan link.Frame

	closeOnce sync.Once
	closeErr  error
	stopCtx   func() bool
	readDone  chan struct{}
	reading   bool
	attached  bool // Attach: the interface is not ours to delete

	// The owner records (internal/owner claims) made before the namespace
	// and the pair were created, released once they are gone, so that the
	// next hil removes what a killed one left. linkMade: the pair exists
	// (a non-empty nsName says the same of the namespace).
	nsClaim, linkClaim string
	linkMade           bool
}

var (
	_ link.Link     = (*Link)(nil)
	_ link.FDWriter = (*Link)(nil)
)

// New creates the namespace (unless WithNetNSPath) and the veth pair, brings
// both ends up with IPv6 off (so neither end emits router solicitations the
// app would capture), and opens the host end's sockets. Cancelling ctx
// closes the link.
func New(ctx context.Context, opts ...Option) (_ *Link, err error) {
	cfg := config{name: "eth0", mtu: DefaultMTU}
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.name) == 0 || len(cfg.name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("veth: interface name %q: expected 1 to %d characters", cfg.name, unix.IFNAMSIZ-1)
	}
	if cfg.mtu < 68 || cfg.mtu > 65535 {
		return nil, fmt.Errorf("veth: MTU %d: expected 68..65535", cfg.mtu)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	l := &Link{
		appIface:  cfg.name,
		hostIface: "hil" + id,
		mtu:       cfg.mtu,
		tx:        -1,
		frames:    make(chan link.Frame, 1024),
		readDone:  make(chan struct{}),
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()

	var ns netns.NsHandle
	if cfg.nsPath != "" {
		ns, err = netns.GetFromPath(cfg.nsPath)
		if err != nil {
			return nil, fmt.Errorf("veth: open network namespace %s: %w", cfg.nsPath, err)
		}
		l.nsPath = cfg.nsPath
	} else {
		name := "hil-" + id
		if err := owner.Claim(claimNetNS, name); err != nil {
			return nil, fmt.Errorf("veth: %w", err)
		}
		l.nsClaim = name
		ns, err = newNamedNS(name)
		if err != nil {
			return nil, fmt.Errorf("veth: create network namespace %s: %w", name, err)
		}
		l.nsName = name
		l.nsPath = filepath.Join(netnsRunDir, name)
	}
	defer ns.Close()

	if err := l.makePair(ns); err != nil {
		close(l.readDone)
		return nil, err
	}
	if err := l.openSockets(); err != nil {
		close(l.readDone)
		return nil, err
	}
	l.reading = true
	go l.readLoop()
	l.stopCtx = context.AfterFunc(ctx, func() { l.Close() })
	return l, nil
}

func randomID() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("veth: random name: %w", err)
	}
	return hex.EncodeToString(b), nil
}

const netnsRunDir = "/run/netns"

// newNamedNS creates /run/netns/NAME the way `ip netns add` does, without
// leaving the calling thread (or any other) in it. Like iproute2 it first
// makes /run/netns a shared mount point of its own: a namespace mounted
// before `ip netns` did that would end up hidden under its bind mount,
// impossible to delete by name.
func newNamedNS(name string) (netns.NsHandle, error) {
	if err := os.MkdirAll(netnsRunDir, 0o755); err != nil {
		return netns.None(), err
	}
	for made := false; ; made = true {
		err := unix.Mount("", netnsRunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			break
		}
		if err != unix.EINVAL || made {
			return netns.None(), fmt.Errorf("make %s a shared mount: %w", netnsRunDir, err)
		}
		if err := unix.Mount(netnsRunDir, netnsRunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return netns.None(), fmt.Errorf("bind-mount %s onto itself: %w", netnsRunDir, err)
		}
	}
	path := filepath.Join(netnsRunDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return netns.None(), err
	}
	f.Close()

	unshare := func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		return nil
	}
	err = nsthread.Run(unshare, func() error {
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount the new namespace on %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
		return netns.None(), err
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		deleteNamedNS(name)
		return netns.None(), err
	}
	return ns, nil
}

func deleteNamedNS(name string) error {
	path := filepath.Join(netnsRunDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// inNS runs f on a thread that is inside ns (for /proc/sys/net, which shows
// the namespace of the reading thread).
func inNS(ns netns.NsHandle, f func() error) error {
	return nsthread.Run(func() error { return netns.Set(ns) }, f)
}

func disableIPv6(iface string) error {
	p := filepath.Join("/proc/sys/net/ipv6/conf", iface, "disable_ipv6")
	cur, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil // kernel without IPv6: nothing to silence
	}
	if err == nil && len(cur) > 0 && cur[0] == '1' {
		// Already off, e.g. inherited from a default set with `docker run
		// --sysctl` in a container whose /proc/sys is read-only.
		return nil
	}
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		return fmt.Errorf("disable IPv6 on %s: %w", iface, err)
	}
	return nil
}

func (l *Link) makePair(ns netns.NsHandle) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("veth: netlink in namespace %s: %w", l.nsPath, err)
	}
	defer h.Close()
	if _, err := h.LinkByName(l.appIface); err == nil {
		return fmt.Errorf("veth: namespace %s already has an interface %s; expected none (choose another with WithName)", l.nsPath, l.appIface)
	}
	if l.nsName != "" {
		// New interfaces in our own namespace start with IPv6 off, so the
		// app end never sends a solicitation, not even once.
		if err := inNS(ns, func() error { return disableIPv6("default") }); err != nil {
			return fmt.Errorf("veth: %w", err)
		}
	}
	if err := owner.Claim(claimVeth, l.hostIface); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	l.linkClaim = l.hostIface
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: l.hostIface, MTU: l.mtu, TxQLen: 1000},
		PeerName:      l.appIface,
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("veth: create pair %s <-> %s in %s: %w", l.hostIface, l.appIface, l.nsPath, err)
	}
	l.linkMade = true
	app, err := h.LinkByName(l.appIface)
	if err != nil {
		return fmt.Errorf("veth: find %s in %s after creating it: %w", l.appIface, l.nsPath, err)
	}
	if err := h.LinkSetMTU(app, l.mtu); err != nil {
		return fmt.Errorf("veth: set MTU %d on %s: %w", l.mtu, l.appIface, err)
	}
	if err := inNS(ns, func() error { return disableIPv6(l.appIface) }); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	if err := disableIPv6(l.hostIface); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	if err := h.LinkSetUp(app); err != nil {
		return fmt.Errorf("veth: bring up %s in %s: %w", l.appIface, l.nsPath, err)
	}
	if l.nsName != "" {
		if lo, err := h.LinkByName("lo"); err == nil {
			_ = h.LinkSetUp(lo) // apps may expect a working loopback
		}
	}
	host, err := netlink.LinkByName(l.hostIface)
	if err != nil {
		return fmt.Errorf("veth: find host end %s: %w", l.hostIface, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("veth: bring up host end %s: %w", l.hostIface, err)
	}
	return nil
}

func (l *Link) openSockets() error {
	host, err := netlink.LinkByName(l.hostIface)
	if err != nil {
		return fmt.Errorf("veth: find host end %s: %w", l.hostIface, err)
	}
	ifindex := host.Attrs().Index

	// Sender: protocol 0 so the kernel queues nothing to it for reading.
	tx, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("veth: AF_PACKET socket (needs CAP_NET_RAW): %w", err)
	}
	l.tx = tx
	if err := unix.Bind(tx, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		return fmt.Errorf("veth: bind sender to %s: %w", l.hostIface, err)
	}
	setBuffer(tx, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF)
	// Bypassing the qdisc avoids a queue where frames could be dropped and
	// keeps the host end's taps quiet about our own frames.
	_ = unix.SetsockoptInt(tx, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)

	rx, err := OpenSocket(ifindex)
	if err != nil {
		return fmt.Errorf("veth: receiver on %s: %w", l.hostIface, err)
	}
	l.rx = rx
	return nil
}

func setBuffer(fd, force, plain int) { setBufferSize(fd, force, plain, socketBuffer) }

func setBufferSize(fd, force, plain, size int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) == nil {
		return
	}
	// Unprivileged: the kernel caps the plain option at the host max.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
}

func (l *Link) readLoop() {
	defer close(l.readDone)
	defer close(l.frames)
	r := &Reader{f: l.rx}
	for {
		fr, err := r.ReadFrame()
		if err != nil {
			return // closed
		}
		l.frames <- link.Frame{Data: fr.Data, Time: fr.Time}
	}
}

// WriteFrame sends b out of the host end; the app end receives it as
// ingress. Frames over MTU()+14 bytes are refused by the kernel. A frame
// the kernel took but dropped on the way to the app end (ENOBUFS: the app
// end is down, its MTU is smaller, its backlog is full) is no write error:
// the frame was sent, and Counters counts the drop, so that a replay
// accounts for it frame by frame instead of stopping.
func (l *Link) WriteFrame(b []byte) error {
	for {
		_, err := unix.Write(l.tx, b)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ENOBUFS {
			return nil
		}
		if err != nil {
			return fmt.Errorf("veth: write %d-byte frame to %s: %w", len(b), l.hostIface, err)
		}
		return nil
	}
}

// Frames streams what the app sent (read on the host end, our own writes
// excluded). It is closed by Close. A consumer that stops reading makes the
// link drop frames in the kernel rather than block.
func (l *Link) Frames() <-chan link.Frame { return l.frames }

// MTU is the MTU of both ends.
func (l *Link) MTU() int { return l.mtu }

// NetNSPath is where the app end lives: run the app in this namespace.
func (l *Link) NetNSPath() string { return l.nsPath }

// NetNSName is the name under /run/netns of the namespace New created
// (for `ip netns exec`), or "" when it was given with WithNetNSPath.
func (l *Link) NetNSName() string { return l.nsName }

// AppIface is the app end's name inside the namespace.
func (l *Link) AppIface() string { return l.appIface }

// HostIface is the host end's name in the caller's namespace.
func (l *Link) HostIface() string { return l.hostIface }

// Close removes the sockets, the pair (deleting one end deletes both) and
// the namespace New created. It is safe to call more than once and from
// several goroutines.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		if l.stopCtx != nil {
			l.stopCtx()
		}
		var errs []error
		if l.rx != nil {
			errs = append(errs, l.rx.Close())
			// Drain so the reader can see the close even if nobody reads.
			if l.reading {
				go func() {
					for range l.frames {
					}
				}()
				<-l.readDone
			}
		}
		if l.tx >= 0 {
			errs = append(errs, unix.Close(l.tx))
		}
		var err error
		if l.linkMade {
			if err = deleteLink(l.hostIface); err != nil {
				errs = append(errs, fmt.Errorf("veth: delete %s: %w", l.hostIface, err))
			}
		}
		if l.linkClaim != "" && err == nil {
			errs = append(errs, owner.Release(claimVeth, l.linkClaim))
		}
		err = nil
		if l.nsName != "" {
			if err = deleteNamedNS(l.nsName); err != nil {
				errs = append(errs, fmt.Errorf("veth: delete namespace %s: %w", l.nsName, err))
			}
		}
		if l.nsClaim != "" && err == nil {
			errs = append(errs, owner.Release(claimNetNS, l.nsClaim))
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// Attach returns a Link on an existing interface of the caller's namespace
// (typically the host end of a veth pair someone else made): frames written
// leave through it, Frames() streams what arrives on it. Close closes only
// the sockets; the interface stays.
func Attach(ctx context.Context, hostIface string) (*Link, error) {
	lk, err := netlink.LinkByName(hostIface)
	if err != nil {
		return nil, fmt.Errorf("veth: interface %s: %w", hostIface, err)
	}
	l := &Link{
		hostIface: hostIface,
		mtu:       lk.Attrs().MTU,
		tx:        -1,
		frames:    make(chan link.Frame, 1024),
		readDone:  make(chan struct{}),
		attached:  true,
	}
	if lk.Attrs().OperState == netlink.OperDown || lk.Attrs().Flags&net.FlagUp == 0 {
		l.Close()
		return nil, fmt.Errorf("veth: interface %s is down: expected it up (ip link set %s up)", hostIface, hostIface)
	}
	if err := l.openSockets(); err != nil {
		l.Close()
		return nil, err
	}
	l.reading = true
	go l.readLoop()
	l.stopCtx = context.AfterFunc(ctx, func() { l.Close() })
	return l, nil
}

// PeerOf finds, for the veth interface iface inside the namespace at
// nsPath, its other end in the caller's namespace. Writing there makes
// frames arrive at iface as ingress.
func PeerOf(nsPath, iface string) (string, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return "", fmt.Errorf("veth: open namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return "", fmt.Errorf("veth: netlink in %s: %w", nsPath, err)
	}
	defer h.Close()
	in, err := h.LinkByName(iface)
	if err != nil {
		return "", fmt.Errorf("veth: %s in %s: %w", iface, nsPath, err)
	}
	if in.Type() != "veth" {
		return "", fmt.Errorf("veth: %s in %s is a %s interface: expected a veth whose other end is here", iface, nsPath, in.Type())
	}
	peer, err := netlink.LinkByIndex(in.Attrs().ParentIndex)
	if err != nil || peer.Type() != "veth" || peer.Attrs().ParentIndex != in.Attrs().Index {
		return "", fmt.Errorf("veth: the other end of %s in %s is not in this network namespace", iface, nsPath)
	}
	return peer.Attrs().Name, nil
}

// WriteFD is the AF_PACKET socket WriteFrame writes to (one frame per
// write(2)), for a sender that runs outside the Go scheduler (the replay
// engine's C loop). Valid until Close.
func (l *Link) WriteFD() int { return l.tx }

// The kinds of owner records (internal/owner) of this package.
const (
	claimVeth  = "veth"
	claimNetNS = "netns"
)

// deleteLink deletes a link by name; one already gone is not an error.
func deleteLink(name string) error {
	lk, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	return netlink.LinkDel(lk)
}

// RemoveStale deletes the veth pairs and network namespaces that a hil
// process made and that outlived it (it was killed before its Close): the
// ones whose owner record names a process that is gone. A live run's are
// never touched, nor interfaces and namespaces without a record (made by
// someone else, or by a hil older than the records). It returns what it
// removed, as "veth NAME" and "netns NAME".
func RemoveStale() ([]string, error) {
	var out []string
	links, err1 := owner.SweepClaims(claimVeth, func(name string) error {
		lk, err := netlink.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil // never made, or deleted before the record
			}
			return err
		}
		if lk.Type() != "veth" {
			return nil // the name went to another interface since: not ours
		}
		return netlink.LinkDel(lk)
	})
	for _, n := range links {
		out = append(out, "veth "+n)
	}
	nss, err2 := owner.SweepClaims(claimNetNS, deleteNamedNS)
	for _, n := range nss {
		out = append(out, "netns "+n)
	}
	return out, errors.Join(err1, err2)
}

// AppFeatures reads the offload features of the app end (ethtool -k inside
// the namespace): veth has receive coalescing (GRO) off unless someone
// turned it on.
func (l *Link) AppFeatures() (ethtool.Features, error) {
	var fs ethtool.Features
	err := l.inAppNS(func() (err error) {
		fs, err = ethtool.Get(l.appIface)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("veth: reading the features of %s in %s: %w", l.appIface, l.nsPath, err)
	}
	return fs, nil
}

// SetAppFeatures sets offload features of the app end (ethtool -K inside
// the namespace) and returns them as read back.
func (l *Link) SetAppFeatures(want map[string]bool) (ethtool.Features, error) {
	var fs ethtool.Features
	err := l.inAppNS(func() (err error) {
		fs, err = ethtool.Set(l.appIface, want)
		return err
	})
	if err != nil {
		return fs, fmt.Errorf("veth: %w (in %s)", err, l.nsPath)
	}
	return fs, nil
}

// Counters reads the app end's receive statistics (CountersOf).
func (l *Link) Counters() (link.Counters, error) {
	return CountersOf(l.nsPath, l.appIface)
}

// CountersOf reads the receive statistics of the veth end iface in the
// namespace at nsPath, whose other end is in the caller's namespace. veth
// counts a frame as received by iface when the other end handed it over;
// what the other end could not hand over (iface down, or its MTU smaller
// than the frame) is that end's tx_dropped, counted here as dropped, as
// is what iface's stack dropped (rx_dropped: a full backlog, or a frame no
// socket or protocol wanted, which does not happen while the app
// captures).
func CountersOf(nsPath, iface string) (link.Counters, error) {
	c := link.Counters{Iface: iface, Seen: -1, SeenOverMTU: -1}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return c, fmt.Errorf("veth: opening namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return c, fmt.Errorf("veth: netlink in namespace %s: %w", nsPath, err)
	}
	defer h.Close()
	app, err := h.LinkByName(iface)
	if err != nil {
		return c, fmt.Errorf("veth: finding %s in %s: %w", iface, nsPath, err)
	}
	host, err := netlink.LinkByIndex(app.Attrs().ParentIndex)
	if err != nil {
		return c, fmt.Errorf("veth: finding the other end of %s: %w", iface, err)
	}
	s, hs := app.Attrs().Statistics, host.Attrs().Statistics
	if s == nil || hs == nil {
		return c, fmt.Errorf("veth: the kernel gave no statistics for %s or %s", iface, host.Attrs().Name)
	}
	c.RxPackets, c.RxBytes = s.RxPackets, s.RxBytes
	// Kernels differ in where a frame the other end could not hand over
	// is counted: 6.1 at that end alone (tx_dropped), 6.18 at both ends.
	// The larger of the two is what was lost on the way.
	c.RxDropped = max(s.RxDropped+s.RxErrors, hs.TxDropped)
	return c, nil
}

func (l *Link) inAppNS(f func() error) error {
	return nsthread.Run(func() error {
		ns, err := netns.GetFromPath(l.nsPath)
		if err != nil {
			return err
		}
		defer ns.Close()
		return netns.Set(ns)
	}, f)
}
