//go:build linux

// Command probe tries, inside the emulator it runs under, the system calls
// libpcap needs for capture and prints one JSON line per call: whether it
// worked and, if not, the errno. It uses only the standard library so hil
// can build it from this embedded source anywhere a Go toolchain exists,
// without fetching modules.
package main

import (
	"encoding/json"
	"os"
	"syscall"
	"unsafe"
)

type result struct {
	Call  string `json:"call"`
	OK    bool   `json:"ok"`
	Errno int    `json:"errno,omitempty"`
	Error string `json:"error,omitempty"`
}

func record(enc *json.Encoder, call string, err error) {
	r := result{Call: call, OK: err == nil}
	if err != nil {
		r.Error = err.Error()
		if en, ok := err.(syscall.Errno); ok {
			r.Errno = int(en)
		}
	}
	enc.Encode(r)
}

const (
	solPacket        = 263
	packetVersion    = 10
	tpacketV3        = 2
	siocEthtool      = 0x8946
	ethtoolGetTsInfo = 0x41
	ethPAll          = 0x0003
	netlinkGeneric   = 16
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func main() {
	enc := json.NewEncoder(os.Stdout)
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(ethPAll)))
	record(enc, "socket(AF_PACKET, SOCK_RAW)", err)
	if err == nil {
		record(enc, "setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)",
			syscall.SetsockoptInt(fd, solPacket, packetVersion, tpacketV3))

		// struct ethtool_ts_info is 12 u32s; struct ifreq is the name then
		// a union whose first word is the data pointer.
		var info [12]uint32
		info[0] = ethtoolGetTsInfo
		var ifr [40]byte
		copy(ifr[:], "lo")
		*(*uintptr)(unsafe.Pointer(&ifr[16])) = uintptr(unsafe.Pointer(&info[0]))
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), siocEthtool, uintptr(unsafe.Pointer(&ifr[0])))
		var ioErr error
		if errno != 0 {
			ioErr = errno
		}
		record(enc, "ioctl(SIOCETHTOOL, ETHTOOL_GET_TS_INFO)", ioErr)
		syscall.Close(fd)
	}
	nl, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW, netlinkGeneric)
	record(enc, "socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC)", err)
	if err == nil {
		syscall.Close(nl)
	}
}
