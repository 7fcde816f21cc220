// Package ethtool reads and sets a network interface's offload features
// through the SIOCETHTOOL ioctl (ETHTOOL_GSSET_INFO, ETHTOOL_GSTRINGS,
// ETHTOOL_GFEATURES, ETHTOOL_SFEATURES), the way `ethtool -k/-K` does.
//
// It uses only the standard library: the system target's guest init
// (hilinit) is built from its own source and this package's with nothing but
// the Go toolchain, and turns receive coalescing off with it; the host side
// reads the user, container and device targets' veth ends with it. The
// structs are written by hand after <linux/ethtool.h>; the tests check the
// constants against golang.org/x/sys/unix and the calls against a real veth.
package ethtool

import (
	"fmt"
	"sort"
	"strings"
	"unsafe"
)

// From <linux/sockios.h> and <linux/ethtool.h>.
const (
	siocEthtool    = 0x8946
	cmdGSSetInfo   = 0x37
	cmdGStrings    = 0x1b
	cmdGFeatures   = 0x3a
	cmdSFeatures   = 0x3b
	ssFeatures     = 4
	gstringLen     = 32
	maxFeatureBits = 1024 // far above NETDEV_FEATURE_COUNT (about 64)
)

// ReceiveCoalescing names every feature by which the kernel or the NIC
// merges received frames before a capture sees them: GRO, LRO, hardware
// GRO, GRO of frame lists, and UDP GRO for forwarded traffic. With all of
// them off, every frame on the wire is one frame in the capture.
var ReceiveCoalescing = []string{"rx-gro", "rx-lro", "rx-gro-hw", "rx-gro-list", "rx-udp-gro-forwarding"}

// Feature is one offload feature of an interface.
type Feature struct {
	Name string
	// Active: the feature is in effect now.
	Active bool
	// Changeable: the driver lets it be turned on or off.
	Changeable bool
}

// Features is an interface's features by name.
type Features map[string]Feature

// names returns the feature names of iface, in bit order.
func names(iface string) ([]string, error) {
	// struct ethtool_sset_info { u32 cmd; u32 reserved; u64 sset_mask; u32 data[]; }
	var info struct {
		cmd, reserved uint32
		mask          uint64
		data          [1]uint32
	}
	info.cmd, info.mask = cmdGSSetInfo, 1<<ssFeatures
	if err := ioctl(iface, unsafe.Pointer(&info)); err != nil {
		return nil, fmt.Errorf("ETHTOOL_GSSET_INFO on %s: %w", iface, err)
	}
	if info.mask&(1<<ssFeatures) == 0 {
		return nil, fmt.Errorf("ETHTOOL_GSSET_INFO on %s: the kernel has no feature names", iface)
	}
	n := int(info.data[0])
	if n <= 0 || n > maxFeatureBits {
		return nil, fmt.Errorf("ETHTOOL_GSSET_INFO on %s: %d feature names, expected 1 to %d", iface, n, maxFeatureBits)
	}
	// struct ethtool_gstrings { u32 cmd; u32 string_set; u32 len; u8 data[]; }
	buf := make([]byte, 12+n*gstringLen)
	hdr := (*[3]uint32)(unsafe.Pointer(&buf[0]))
	hdr[0], hdr[1], hdr[2] = cmdGStrings, ssFeatures, uint32(n)
	if err := ioctl(iface, unsafe.Pointer(&buf[0])); err != nil {
		return nil, fmt.Errorf("ETHTOOL_GSTRINGS on %s: %w", iface, err)
	}
	if got := int(hdr[2]); got < n {
		n = got
	}
	out := make([]string, n)
	for i := range out {
		s := buf[12+i*gstringLen : 12+(i+1)*gstringLen]
		if j := strings.IndexByte(string(s), 0); j >= 0 {
			s = s[:j]
		}
		out[i] = string(s)
	}
	return out, nil
}

// block is struct ethtool_get_features_block.
type block struct{ available, requested, active, neverChanged uint32 }

func blocks(n int) int { return (n + 31) / 32 }

func get(iface string, n int) ([]block, error) {
	// struct ethtool_gfeatures { u32 cmd; u32 size; struct ethtool_get_features_block features[]; }
	buf := make([]uint32, 2+4*blocks(n))
	buf[0], buf[1] = cmdGFeatures, uint32(blocks(n))
	if err := ioctl(iface, unsafe.Pointer(&buf[0])); err != nil {
		return nil, fmt.Errorf("ETHTOOL_GFEATURES on %s: %w", iface, err)
	}
	out := make([]block, blocks(n))
	for i := range out {
		b := buf[2+4*i:]
		out[i] = block{b[0], b[1], b[2], b[3]}
	}
	return out, nil
}

// Get reads iface's features (ethtool -k).
func Get(iface string) (Features, error) {
	ns, err := names(iface)
	if err != nil {
		return nil, err
	}
	bs, err := get(iface, len(ns))
	if err != nil {
		return nil, err
	}
	fs := Features{}
	for i, name := range ns {
		if name == "" {
			continue
		}
		b, bit := bs[i/32], uint32(1)<<(i%32)
		fs[name] = Feature{Name: name, Active: b.active&bit != 0, Changeable: b.available&bit != 0 && b.neverChanged&bit == 0}
	}
	return fs, nil
}

// Set asks for each named feature of iface to be on or off (ethtool -K),
// then reads the features back: it returns them, and an error naming every
// feature asked for that is not in the state asked for (a fixed feature, or
// one the driver refused). A name the kernel does not know is skipped: it
// cannot be on.
func Set(iface string, want map[string]bool) (Features, error) {
	ns, err := names(iface)
	if err != nil {
		return nil, err
	}
	// struct ethtool_sfeatures { u32 cmd; u32 size; struct ethtool_set_features_block { u32 valid; u32 requested; } features[]; }
	buf := make([]uint32, 2+2*blocks(len(ns)))
	buf[0], buf[1] = cmdSFeatures, uint32(blocks(len(ns)))
	any := false
	for i, name := range ns {
		on, ok := want[name]
		if !ok {
			continue
		}
		bit := uint32(1) << (i % 32)
		buf[2+2*(i/32)] |= bit
		if on {
			buf[2+2*(i/32)+1] |= bit
		}
		any = true
	}
	if any {
		// A non-negative answer with flag bits (ETHTOOL_F_WISH: some
		// requests not met) is not an error here: the read-back says.
		if err := ioctl(iface, unsafe.Pointer(&buf[0])); err != nil {
			return nil, fmt.Errorf("ETHTOOL_SFEATURES on %s: %w", iface, err)
		}
	}
	fs, err := Get(iface)
	if err != nil {
		return nil, err
	}
	var wrong []string
	for _, name := range sortedKeys(want) {
		f, ok := fs[name]
		if !ok {
			if want[name] {
				wrong = append(wrong, name+" (the kernel has no such feature)")
			}
			continue
		}
		if f.Active != want[name] {
			wrong = append(wrong, fmt.Sprintf("%s is %s, asked %s", name, onOff(f.Active), onOff(want[name])))
		}
	}
	if len(wrong) > 0 {
		return fs, fmt.Errorf("setting the features of %s: %s", iface, strings.Join(wrong, "; "))
	}
	return fs, nil
}

// Coalescing says which receive-coalescing features (ReceiveCoalescing)
// are active on iface: "off" when none is, else their names joined by
// commas ("rx-gro").
func (fs Features) Coalescing() string {
	var on []string
	for _, n := range ReceiveCoalescing {
		if fs[n].Active {
			on = append(on, n)
		}
	}
	if len(on) == 0 {
		return "off"
	}
	return strings.Join(on, ",")
}

// CoalescingState lists each receive-coalescing feature the interface has
// with its state: "rx-gro=off rx-lro=off ...".
func (fs Features) CoalescingState() string {
	var parts []string
	for _, n := range ReceiveCoalescing {
		if f, ok := fs[n]; ok {
			parts = append(parts, n+"="+onOff(f.Active))
		}
	}
	return strings.Join(parts, " ")
}

// CoalescingOff is the request that turns every receive-coalescing feature
// off.
func CoalescingOff() map[string]bool {
	m := map[string]bool{}
	for _, n := range ReceiveCoalescing {
		m[n] = false
	}
	return m
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
