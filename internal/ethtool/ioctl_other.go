//go:build !linux

package ethtool

import (
	"fmt"
	"runtime"
	"unsafe"
)

// ioctl says that SIOCETHTOOL is Linux's: the interfaces hil reads and sets
// are a Linux guest's, a veth end or a board's.
func ioctl(iface string, _ unsafe.Pointer) error {
	return fmt.Errorf("reading the offload features of %s: SIOCETHTOOL is a Linux ioctl, not available on %s", iface, runtime.GOOS)
}
