//go:build linux

package veth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// receiveBuffer holds a whole 100,000-frame burst even when the reader is
// slow (each small frame costs about 1 KiB of skb truesize); memory is only
// charged while frames wait in it.
const receiveBuffer = 256 << 20

// maxFrame is the largest frame a Reader returns whole; veth MTUs go up to
// 64 KiB.
const maxFrame = 65536 + 14

// OpenSocket opens a non-blocking AF_PACKET socket for every protocol,
// bound to ifindex in the caller's namespace, with kernel receive
// timestamps and a large receive buffer.
func OpenSocket(ifindex int) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket (needs CAP_NET_RAW): %w", err)
	}
	setBufferSize(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, receiveBuffer)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	// The kernel moves an 802.1Q tag out of the frame into metadata on
	// receive (and veth sends it as metadata); the auxiliary data lets
	// ReadFrame put it back, as libpcap does, so a reader sees the frame
	// a capturing app sees.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("PACKET_AUXDATA: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind to ifindex %d: %w", ifindex, err)
	}
	// Frames that reached the interface before the bind are not ours to
	// count; the socket starts receiving at bind, so nothing to flush.
	return os.NewFile(uintptr(fd), fmt.Sprintf("afpacket:%d", ifindex)), nil
}

// OpenSocketIn opens the same kind of socket on iface inside the network
// namespace at nsPath. A socket stays in the namespace it was made in, so
// the caller can read it from any thread. Tests use it to see exactly what
// the app end receives.
func OpenSocketIn(nsPath, iface string) (*Reader, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	defer h.Close()
	lk, err := h.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("find %s in %s: %w", iface, nsPath, err)
	}
	var f *os.File
	err = inNS(ns, func() error {
		var err error
		f, err = OpenSocket(lk.Attrs().Index)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("socket on %s in %s: %w", iface, nsPath, err)
	}
	return &Reader{f: f}, nil
}

// Frame is one received frame with the kernel's receive timestamp.
type Frame struct {
	Data []byte
	Time time.Time
	// PktType is the sll_pkttype: unix.PACKET_HOST, _BROADCAST,
	// _MULTICAST, _OTHERHOST (ingress) or _OUTGOING.
	PktType uint8
}

// Reader reads frames from an AF_PACKET socket.
type Reader struct {
	f   *os.File
	buf []byte
	oob []byte
	// Outgoing, when set, also returns frames the interface sent.
	Outgoing bool
}

// NewReader wraps a socket made by OpenSocket.
func NewReader(f *os.File) *Reader { return &Reader{f: f} }

// ReadFrame blocks until a frame arrives (ingress only unless Outgoing) or
// the socket is closed (then it returns os.ErrClosed) or its deadline
// passes (os.ErrDeadlineExceeded).
func (r *Reader) ReadFrame() (Frame, error) {
	if r.buf == nil {
		r.buf = make([]byte, maxFrame)
		r.oob = make([]byte, 128)
	}
	rc, err := r.f.SyscallConn()
	if err != nil {
		return Frame{}, err
	}
	for {
		var n, oobn int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, from, rerr = unix.Recvmsg(int(fd), r.buf, r.oob, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return Frame{}, err
		}
		if rerr == unix.EINTR {
			continue
		}
		if rerr != nil {
			return Frame{}, fmt.Errorf("recvmsg: %w", rerr)
		}
		sll, _ := from.(*unix.SockaddrLinklayer)
		var pt uint8
		if sll != nil {
			pt = sll.Pkttype
		}
		if pt == unix.PACKET_OUTGOING && !r.Outgoing {
			continue
		}
		ts, tag := control(r.oob[:oobn])
		data := r.buf[:n]
		if tag != nil && n >= 12 {
			data = append(append(append(make([]byte, 0, n+4), r.buf[:12]...), tag...), r.buf[12:n]...)
		} else {
			data = append([]byte(nil), data...)
		}
		return Frame{Data: data, Time: ts, PktType: pt}, nil
	}
}

// SetDeadline bounds the next ReadFrame calls.
func (r *Reader) SetDeadline(t time.Time) error { return r.f.SetReadDeadline(t) }

// Close closes the socket and wakes a blocked ReadFrame.
func (r *Reader) Close() error { return r.f.Close() }

// Drops is the number of frames the kernel dropped on this socket since
// the last call (its buffer was full).
func (r *Reader) Drops() (uint32, error) {
	rc, err := r.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var st unix.TpacketStats
	var serr error
	err = rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(st))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_PACKET, unix.PACKET_STATISTICS, uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			serr = e
		}
	})
	runtime.KeepAlive(&st)
	return st.Drops, errors.Join(err, serr)
}

// control reads the receive timestamp and, when the kernel took an 802.1Q
// tag out of the frame, the 4 tag bytes to put back after the MACs.
func control(oob []byte) (ts time.Time, tag []byte) {
	ts = time.Now()
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return ts, nil
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16:
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			ts = time.Unix(sec, nsec)
		case m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})):
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
			// libpcap's rule: a tag is there when the kernel says so, or
			// (older kernels) when the TCI is not zero.
			if aux.Status&unix.TP_STATUS_VLAN_VALID == 0 && aux.Vlan_tci == 0 {
				continue
			}
			tpid := uint16(unix.ETH_P_8021Q)
			if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
				tpid = aux.Vlan_tpid
			}
			tag = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tpid), aux.Vlan_tci)
		}
	}
	return ts, tag
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// WriteFrame sends b out of the socket's interface.
func (r *Reader) WriteFrame(b []byte) error {
	rc, err := r.f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), b)
		return werr != unix.EAGAIN
	})
	return errors.Join(err, werr)
}
