package ethtool

import (
	"fmt"
	"syscall"
	"unsafe"
)

// ifreq is struct ifreq with the ifr_data member of the union.
type ifreq struct {
	name [16]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

func ioctl(iface string, data unsafe.Pointer) error {
	if len(iface) >= 16 {
		return fmt.Errorf("interface name %q is longer than 15 bytes", iface)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening a socket for SIOCETHTOOL: %w", err)
	}
	defer syscall.Close(fd)
	var r ifreq
	copy(r.name[:], iface)
	r.data = data
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), siocEthtool, uintptr(unsafe.Pointer(&r))); e != 0 {
		return e
	}
	return nil
}
