package replay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// MaxFrame is the largest record the reader accepts: libpcap's largest
// snapshot length. Anything bigger is a corrupt length, not a frame.
const MaxFrame = 262144

// maxSnaplen bounds a pcap header's snapshot length; beyond it the header
// is corrupt (libpcap itself never writes more than MaxFrame).
const maxSnaplen = 1 << 27

// maxBlock bounds a pcapng block so a corrupt length cannot make us
// allocate gigabytes.
const maxBlock = 16 << 20

// FormatError is a malformed capture file. Record is the 1-based index of
// the packet record that is broken (0: the file or section header), Offset
// the byte offset where the problem was found.
type FormatError struct {
	Record int
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	if e.Record == 0 {
		return fmt.Sprintf("capture header (byte offset %d): %s", e.Offset, e.Msg)
	}
	return fmt.Sprintf("record %d (byte offset %d): %s", e.Record, e.Offset, e.Msg)
}

// Packet is one record of a capture file.
type Packet struct {
	Data      []byte
	Time      time.Time
	Length    int // original length on the wire (>= len(Data))
	Index     int // 1-based record index
	Interface int // pcapng interface id; 0 for pcap

	size int // captured bytes (also when Data was skipped)
}

// Reader reads pcap (micro- or nanosecond, either byte order) and pcapng
// files with gopacket/pcapgo, after checking every length itself so that a
// corrupt file gives a FormatError with the record index rather than a
// huge allocation, a panic or a misparse.
type Reader struct {
	format   string // "pcap" or "pcapng"
	linkType layers.LinkType
	records  int

	// pcap
	br      *bufio.Reader
	bo      binary.ByteOrder
	nanos   int64 // nanoseconds per timestamp fraction unit
	snaplen uint32
	offset  int64 // of the next record

	// pcapng
	ng    *pcapgo.NgReader
	guard *ngGuard
}

// NewReader detects the format from the magic number and reads the file
// header.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, &FormatError{Msg: fmt.Sprintf("file shorter than a 4-byte magic number (%v): expected a pcap or pcapng file", err)}
	}
	m := binary.LittleEndian.Uint32(magic)
	switch m {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		return newPcapReader(br)
	case 0x0a0d0d0a:
		return newNgReader(br)
	case 0x8b1f, 0x08088b1f, 0x00088b1f:
		return nil, &FormatError{Msg: "gzip-compressed file: decompress it first"}
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		return nil, &FormatError{Msg: "gzip-compressed file: decompress it first"}
	}
	return nil, &FormatError{Msg: fmt.Sprintf("unknown magic number %#08x: expected pcap (a1b2c3d4, a1b23c4d, either byte order) or pcapng (0a0d0d0a)", m)}
}

// newPcapReader reads classic pcap itself: pcapgo's reader allocates a
// record's capture length before bounding it by anything but the header's
// snapshot length, and reads ahead, so it cannot say where a bad record is.
func newPcapReader(br *bufio.Reader) (*Reader, error) {
	hdr := make([]byte, 24)
	if n, err := io.ReadFull(br, hdr); err != nil {
		return nil, &FormatError{Msg: fmt.Sprintf("pcap file header: need 24 bytes, file has %d", n)}
	}
	r := &Reader{format: "pcap", br: br, offset: 24, nanos: 1000}
	r.bo = binary.LittleEndian
	if hdr[0] == 0xa1 {
		r.bo = binary.BigEndian
	}
	if m := r.bo.Uint32(hdr[0:4]); m == 0xa1b23c4d {
		r.nanos = 1
	}
	if major, minor := r.bo.Uint16(hdr[4:6]), r.bo.Uint16(hdr[6:8]); major != 2 {
		return nil, &FormatError{Offset: 4, Msg: fmt.Sprintf("pcap version %d.%d: expected 2.4", major, minor)}
	}
	r.snaplen = r.bo.Uint32(hdr[16:20])
	if r.snaplen == 0 || r.snaplen > maxSnaplen {
		return nil, &FormatError{Offset: 16, Msg: fmt.Sprintf("absurd snapshot length %d: expected 1..%d", r.snaplen, maxSnaplen)}
	}
	// The upper 6 bits may carry an FCS length (pcap "LINKTYPE_" extension).
	r.linkType = layers.LinkType(r.bo.Uint32(hdr[20:24]) & 0x03ffffff)
	if r.linkType != layers.LinkTypeEthernet {
		return nil, &FormatError{Offset: 20, Msg: fmt.Sprintf("link type %d (%s): expected 1 (EN10MB, Ethernet)", r.linkType, r.linkType)}
	}
	return r, nil
}

func newNgReader(br *bufio.Reader) (*Reader, error) {
	g := &ngGuard{r: br}
	ng, err := safeNg(func() (*pcapgo.NgReader, error) {
		return pcapgo.NewNgReader(g, pcapgo.NgReaderOptions{WantMixedLinkType: true})
	})
	if err != nil {
		return nil, g.explain(err, 0)
	}
	return &Reader{format: "pcapng", linkType: layers.LinkTypeEthernet, ng: ng, guard: g}, nil
}

// Format is "pcap" or "pcapng".
func (r *Reader) Format() string { return r.format }

// Next returns the next record, io.EOF after the last one, or a
// *FormatError. Its Data is the record's own copy.
func (r *Reader) Next() (Packet, error) {
	var p Packet
	_, err := r.appendNext(&p, nil, true)
	return p, err
}

// appendNext reads the next record and, when keep is set, appends its bytes
// to buf (Packet.Data is then the appended part, valid while buf is).
// Without keep the bytes are skipped: a scan of the record bounds reads no
// frame into memory. Streaming replay reads frames straight into its send
// window this way, with no allocation per frame.
//
// p is filled in place (not returned): on the hot path of a streamed
// replay, copying the record struct twice a frame showed in profiles.
func (r *Reader) appendNext(p *Packet, buf []byte, keep bool) ([]byte, error) {
	if r.br != nil {
		return r.nextPcap(p, buf, keep)
	}
	return r.nextNg(p, buf, keep)
}

func (r *Reader) nextPcap(p *Packet, buf []byte, keep bool) ([]byte, error) {
	idx := r.records + 1
	start := r.offset
	// Peek and Discard rather than ReadFull: a streamed replay reads
	// millions of records, and these read from the buffer without a copy
	// loop in the common case.
	hdr, err := r.br.Peek(16)
	if err == io.EOF && len(hdr) == 0 {
		return buf, io.EOF
	}
	if err != nil {
		return buf, &FormatError{Record: idx, Offset: start, Msg: fmt.Sprintf("truncated record header: %d of 16 bytes before the end of the file", len(hdr))}
	}
	caplen, length := r.bo.Uint32(hdr[8:12]), r.bo.Uint32(hdr[12:16])
	sec, frac := int64(r.bo.Uint32(hdr[0:4])), int64(r.bo.Uint32(hdr[4:8]))
	if caplen > r.snaplen {
		return buf, &FormatError{Record: idx, Offset: start, Msg: fmt.Sprintf("capture length %d exceeds the file's snapshot length %d", caplen, r.snaplen)}
	}
	if err := checkRecord(idx, start, int64(caplen), int64(length)); err != nil {
		return buf, err
	}
	r.br.Discard(16)
	var data []byte
	var n int
	switch {
	case !keep:
		n, err = r.br.Discard(int(caplen))
	case r.br.Buffered() >= int(caplen):
		b, _ := r.br.Peek(int(caplen))
		n0 := len(buf)
		buf = append(buf, b...)
		data = buf[n0:]
		n, err = r.br.Discard(int(caplen))
	default:
		n0 := len(buf)
		buf = slices.Grow(buf, int(caplen))[:n0+int(caplen)]
		data = buf[n0:]
		n, err = io.ReadFull(r.br, data)
	}
	if err != nil {
		return buf, &FormatError{Record: idx, Offset: start, Msg: fmt.Sprintf("truncated record: header says %d bytes, file ends after %d", caplen, n)}
	}
	r.records++
	r.offset += 16 + int64(caplen)
	*p = Packet{Data: data, Time: time.Unix(sec, frac*r.nanos).UTC(), Length: int(length), Index: idx, size: int(caplen)}
	return buf, nil
}

func checkRecord(idx int, off int64, caplen, length int64) error {
	if caplen == 0 {
		return &FormatError{Record: idx, Offset: off, Msg: "zero-length record: expected at least a 14-byte Ethernet header"}
	}
	if caplen < 14 {
		return &FormatError{Record: idx, Offset: off, Msg: fmt.Sprintf("%d-byte record: expected at least a 14-byte Ethernet header", caplen)}
	}
	if caplen > MaxFrame {
		return &FormatError{Record: idx, Offset: off, Msg: fmt.Sprintf("capture length %d: expected at most %d", caplen, MaxFrame)}
	}
	if length < caplen {
		return &FormatError{Record: idx, Offset: off, Msg: fmt.Sprintf("original length %d is less than the capture length %d", length, caplen)}
	}
	return nil
}

func (r *Reader) nextNg(p *Packet, buf []byte, keep bool) ([]byte, error) {
	idx := r.records + 1
	var data []byte
	var ci = struct {
		ts     time.Time
		length int
		iface  int
		lt     layers.LinkType
	}{}
	_, err := safeNg(func() (*pcapgo.NgReader, error) {
		// Not ZeroCopyReadPacketData: it sizes its buffer by the
		// interface's snapshot length, which a hostile file sets to 4 GiB.
		d, c, err := r.ng.ReadPacketData()
		data, ci.ts, ci.length, ci.iface = d, c.Timestamp, c.Length, c.InterfaceIndex
		if len(c.AncillaryData) > 0 {
			ci.lt, _ = c.AncillaryData[0].(layers.LinkType)
		}
		return nil, err
	})
	if err == io.EOF && r.guard.err == nil {
		return buf, io.EOF
	}
	if err != nil {
		return buf, r.guard.explain(err, idx)
	}
	r.records++
	off := r.guard.recordOffset(idx)
	r.guard.forget(idx)
	if err := checkRecord(idx, off, int64(len(data)), int64(ci.length)); err != nil {
		return buf, err
	}
	if ci.lt != layers.LinkTypeEthernet {
		return buf, &FormatError{Record: idx, Offset: off, Msg: fmt.Sprintf("interface %d has link type %d (%s): expected 1 (EN10MB, Ethernet)", ci.iface, ci.lt, ci.lt)}
	}
	size := len(data)
	if keep {
		n0 := len(buf)
		buf = append(buf, data...)
		data = buf[n0:]
	} else {
		data = nil
	}
	*p = Packet{Data: data, Time: ci.ts, Length: ci.length, Index: idx, Interface: ci.iface, size: size}
	return buf, nil
}

// errInternal marks a panic inside the parser that the guard should have
// prevented; the fuzz test fails on it.
var errInternal = errors.New("internal error in the pcapng parser")

func safeNg(f func() (*pcapgo.NgReader, error)) (ng *pcapgo.NgReader, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errInternal, p)
		}
	}()
	return f()
}
