//go:build linux

package ethtool

import (
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The hand-written constants and struct are those of the kernel headers
// (as golang.org/x/sys/unix spells them).
func TestConstantsMatchTheKernelHeaders(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"SIOCETHTOOL", siocEthtool, unix.SIOCETHTOOL},
		{"ETHTOOL_GSSET_INFO", cmdGSSetInfo, unix.ETHTOOL_GSSET_INFO},
		{"ETHTOOL_GSTRINGS", cmdGStrings, unix.ETHTOOL_GSTRINGS},
		{"ETHTOOL_GFEATURES", cmdGFeatures, unix.ETHTOOL_GFEATURES},
		{"ETHTOOL_SFEATURES", cmdSFeatures, unix.ETHTOOL_SFEATURES},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, the kernel's is %#x", c.name, c.got, c.want)
		}
	}
	if got, want := unsafe.Sizeof(ifreq{}), unsafe.Sizeof(unix.Ifreq{}); got != want {
		t.Errorf("ifreq is %d bytes, the kernel's is %d", got, want)
	}
	if got := unsafe.Offsetof(ifreq{}.data); got != unix.IFNAMSIZ {
		t.Errorf("ifr_data at offset %d, want %d", got, unix.IFNAMSIZ)
	}
}

func TestMissingInterfaceIsNamed(t *testing.T) {
	_, err := Get("hil-nosuch0")
	if err == nil || !strings.Contains(err.Error(), "hil-nosuch0") {
		t.Fatalf("Get of a missing interface: %v; want an error naming it", err)
	}
	if _, err := Get("a-name-far-too-long"); err == nil || !strings.Contains(err.Error(), "longer than 15") {
		t.Errorf("Get of a 19-byte name: %v; want the length named", err)
	}
}

func TestCoalescingWords(t *testing.T) {
	fs := Features{"rx-gro": {Name: "rx-gro", Active: true}, "rx-lro": {Name: "rx-lro"}, "tx-checksumming": {Active: true}}
	if got := fs.Coalescing(); got != "rx-gro" {
		t.Errorf("Coalescing = %q, want rx-gro", got)
	}
	if got := fs.CoalescingState(); got != "rx-gro=on rx-lro=off" {
		t.Errorf("CoalescingState = %q", got)
	}
	delete(fs, "rx-gro")
	if got := fs.Coalescing(); got != "off" {
		t.Errorf("Coalescing without rx-gro = %q, want off", got)
	}
}
