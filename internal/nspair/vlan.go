//go:build linux

package nspair

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrNo8021Q is what AddVLAN returns on a kernel without 802.1Q links
// (CONFIG_VLAN_8021Q off, no 8021q module): use TagVLAN there.
var ErrNo8021Q = errors.New("this kernel has no 802.1Q VLAN links (8021q module)")

// vlanUnsupported recognises iproute2's answer when the vlan link type
// is missing.
func vlanUnsupported(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "Unknown device type") || strings.Contains(err.Error(), "not supported"))
}

// TagVLAN makes every frame on the link carry the 802.1Q tag id without
// a VLAN link: on both ends' eth0 a tc program (clsact, cls_bpf in
// direct-action mode) calls the kernel's bpf_skb_vlan_push on egress and
// bpf_skb_vlan_pop on ingress, the same skb tagging an 802.1Q link does
// on a NIC with VLAN offload. It is for kernels without the 8021q module;
// the given IPv4 addresses (CIDR) are added to eth0.
func (p *Pair) TagVLAN(ctx context.Context, id int, ipA, ipB string) (ifA, ifB NS, err error) {
	if id < 1 || id > 4094 {
		return NS{}, NS{}, fmt.Errorf("nspair: VLAN id %d: expected 1..4094", id)
	}
	push, err := loadSchedCls([]uint64{
		insn(0xb7, 2, 0x0081),    // r2 = htons(ETH_P_8021Q)
		insn(0xb7, 3, int32(id)), // r3 = VLAN TCI (PCP 0, DEI 0, VID id)
		insn(0x85, 0, 18),        // call bpf_skb_vlan_push(r1 = skb, r2, r3)
		insn(0xb7, 0, 0),         // r0 = TC_ACT_OK
		insn(0x95, 0, 0),         // exit
	})
	if err != nil {
		return NS{}, NS{}, err
	}
	defer unix.Close(push)
	pop, err := loadSchedCls([]uint64{
		insn(0x85, 0, 19), // call bpf_skb_vlan_pop(r1 = skb)
		insn(0xb7, 0, 0),  // r0 = TC_ACT_OK
		insn(0x95, 0, 0),  // exit
	})
	if err != nil {
		return NS{}, NS{}, err
	}
	defer unix.Close(pop)
	ifA, ifB = p.A, p.B
	for _, e := range []struct {
		ns   *NS
		addr string
	}{{&ifA, ipA}, {&ifB, ipB}} {
		if err := attachTagger(e.ns.Path(), e.ns.Iface, push, pop); err != nil {
			return NS{}, NS{}, fmt.Errorf("nspair: VLAN %d tagging on %s in %s: %w", id, e.ns.Iface, e.ns.Name, err)
		}
		a, _, err := net.ParseCIDR(e.addr)
		if err != nil {
			return NS{}, NS{}, fmt.Errorf("nspair: VLAN address %q: %w", e.addr, err)
		}
		if err := ip(ctx, "-n", e.ns.Name, "addr", "add", e.addr, "dev", e.ns.Iface); err != nil {
			return NS{}, NS{}, err
		}
		e.ns.IPv4 = a
	}
	return ifA, ifB, nil
}

func attachTagger(nsPath, iface string, push, pop int) error {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(iface)
	if err != nil {
		return err
	}
	idx := l.Attrs().Index
	if err := h.QdiscAdd(&netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT,
	}}); err != nil {
		return fmt.Errorf("add clsact qdisc: %w", err)
	}
	for _, f := range []struct {
		parent uint32
		fd     int
		name   string
	}{{netlink.HANDLE_MIN_EGRESS, push, "hil-vlan-push"}, {netlink.HANDLE_MIN_INGRESS, pop, "hil-vlan-pop"}} {
		err := h.FilterAdd(&netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: idx, Parent: f.parent, Handle: netlink.MakeHandle(0, 1),
				Protocol: unix.ETH_P_ALL, Priority: 1,
			},
			Fd: f.fd, Name: f.name, DirectAction: true,
		})
		if err != nil {
			return fmt.Errorf("add %s filter: %w", f.name, err)
		}
	}
	return nil
}

// insn encodes one eBPF instruction (code, destination register, 32-bit
// immediate; no source register or offset needed here).
func insn(code uint8, dst uint8, imm int32) uint64 {
	return uint64(code) | uint64(dst&0xf)<<8 | uint64(uint32(imm))<<32
}

// bpfProgLoad is the start of union bpf_attr for BPF_PROG_LOAD.
type bpfProgLoad struct {
	progType    uint32
	insnCnt     uint32
	insns       uint64
	license     uint64
	logLevel    uint32
	logSize     uint32
	logBuf      uint64
	kernVersion uint32
	progFlags   uint32
}

const (
	bpfProgLoadCmd     = 5 // BPF_PROG_LOAD
	bpfProgTypeSchedCl = 3 // BPF_PROG_TYPE_SCHED_CLS
)

func loadSchedCls(prog []uint64) (int, error) {
	license := []byte("GPL\x00")
	logBuf := make([]byte, 4096)
	attr := bpfProgLoad{
		progType: bpfProgTypeSchedCl,
		insnCnt:  uint32(len(prog)),
		insns:    uint64(uintptr(unsafe.Pointer(&prog[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
		logLevel: 1,
		logSize:  uint32(len(logBuf)),
		logBuf:   uint64(uintptr(unsafe.Pointer(&logBuf[0]))),
	}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfProgLoadCmd, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(prog)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	if errno != 0 {
		return -1, fmt.Errorf("nspair: load the VLAN tagging program (bpf, needs root): %w: %s", errno, unix.ByteSliceToString(logBuf))
	}
	return int(fd), nil
}
