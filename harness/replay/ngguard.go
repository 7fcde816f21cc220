package replay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ngGuard sits between the file and pcapgo's pcapng reader. It reads one
// whole block at a time, checks every length and option in it against the
// block (pcapgo trusts them, so a corrupt file could make it allocate
// gigabytes, read across blocks or divide by zero), and only then lets
// pcapgo see the block. Its own count of packet blocks gives the record
// index of an error even though pcapgo reads ahead.
//
// Its memory does not grow with the file: one block buffer, reused, and
// the offsets of only the records pcapgo has read ahead (a streamed
// capture may hold tens of millions).
type ngGuard struct {
	r      *bufio.Reader
	bo     binary.ByteOrder
	off    int64 // bytes consumed from r
	block  []byte
	pos    int
	err    error
	ifaces []ngIface
	// records[i] is the byte offset of packet record base+i (1-based);
	// the reader forgets the ones it is done with.
	records []int64
	base    int
	hdr     [12]byte
	started bool
}

type ngIface struct{ snaplen uint32 }

const (
	ngSHB = 0x0a0d0d0a
	ngIDB = 1
	ngPB  = 2
	ngSPB = 3
	ngISB = 5
	ngEPB = 6
)

func (g *ngGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.pos == len(g.block) {
		if err := g.next(); err != nil {
			if err != io.EOF {
				g.err = err
			}
			return 0, err
		}
	}
	n := copy(p, g.block[g.pos:])
	g.pos += n
	return n, nil
}

func (g *ngGuard) fail(record int, off int64, format string, args ...any) error {
	return &FormatError{Record: record, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (g *ngGuard) next() error {
	start := g.off
	if g.base == 0 {
		g.base = 1
	}
	rec := g.base + len(g.records) // the record this block would be
	hdr := g.hdr[:]
	n, err := io.ReadFull(g.r, hdr[:8])
	g.off += int64(n)
	if err == io.EOF {
		if !g.started {
			return g.fail(0, start, "empty pcapng file: expected a section header block")
		}
		return io.EOF
	}
	if err != nil {
		return g.fail(rec, start, "truncated block header: %d of 8 bytes before the end of the file", n)
	}
	typ := binary.LittleEndian.Uint32(hdr[0:4]) // the SHB type reads the same in both orders
	if typ == ngSHB {
		n, err := io.ReadFull(g.r, hdr[8:12])
		g.off += int64(n)
		if err != nil {
			return g.fail(0, start, "truncated section header block")
		}
		switch binary.LittleEndian.Uint32(hdr[8:12]) {
		case 0x1a2b3c4d:
			g.bo = binary.LittleEndian
		case 0x4d3c2b1a:
			g.bo = binary.BigEndian
		default:
			return g.fail(0, start+8, "section header byte-order magic %#x: expected 1a2b3c4d", hdr[8:12])
		}
		hdr = hdr[:12]
	} else {
		if !g.started {
			return g.fail(0, start, "first block has type %#x: a pcapng file starts with a section header block (0x0a0d0d0a)", typ)
		}
		typ = g.bo.Uint32(hdr[0:4])
		hdr = hdr[:8]
	}
	g.started = true
	isPacket := typ == ngEPB || typ == ngSPB || typ == ngPB
	if !isPacket {
		rec = 0
	}
	length := g.bo.Uint32(hdr[4:8])
	min := minBlockLen(typ)
	if length < min || length%4 != 0 || length > maxBlock {
		return g.fail(rec, start, "block type %#x with total length %d: expected a multiple of 4 in %d..%d", typ, length, min, maxBlock)
	}
	// pcapgo has read the previous block whole (pos == len): reuse it.
	if cap(g.block) < int(length) {
		g.block = make([]byte, length)
	}
	b := g.block[:length]
	copy(b, hdr)
	n, err = io.ReadFull(g.r, b[len(hdr):])
	g.off += int64(n)
	if err != nil {
		return g.fail(rec, start, "truncated block: header says %d bytes, file ends after %d", length, len(hdr)+n)
	}
	if trail := g.bo.Uint32(b[length-4:]); trail != length {
		return g.fail(rec, start, "block total length %d at the start but %d at the end", length, trail)
	}
	body := b[:length-4]
	switch typ {
	case ngSHB:
		if major, minor := g.bo.Uint16(b[12:14]), g.bo.Uint16(b[14:16]); major != 1 || minor != 0 {
			return g.fail(0, start, "pcapng version %d.%d: expected 1.0", major, minor)
		}
		g.ifaces = g.ifaces[:0]
		if err := g.options(body, 24, start, 0, nil); err != nil {
			return err
		}
	case ngIDB:
		if err := g.options(body, 16, start, 0, func(code uint16, v []byte) string {
			switch code {
			case 9: // if_tsresol
				if len(v) != 1 {
					return "if_tsresol option must be 1 byte"
				}
				if v[0]&0x80 != 0 && v[0]&0x7f > 63 || v[0]&0x80 == 0 && v[0] > 19 {
					return fmt.Sprintf("if_tsresol %#x: expected 10^-0..10^-19 or 2^-0..2^-63", v[0])
				}
			case 14: // if_tsoffset
				if len(v) != 8 {
					return "if_tsoffset option must be 8 bytes"
				}
			case 11: // if_filter
				if len(v) < 1 {
					return "if_filter option must be at least 1 byte"
				}
			}
			return ""
		}); err != nil {
			return err
		}
		g.ifaces = append(g.ifaces, ngIface{snaplen: g.bo.Uint32(b[12:16])})
	case ngEPB, ngPB:
		var ifid uint32
		if typ == ngEPB {
			ifid = g.bo.Uint32(b[8:12])
		} else {
			ifid = uint32(g.bo.Uint16(b[8:10]))
		}
		if int(ifid) >= len(g.ifaces) {
			return g.fail(rec, start, "packet on interface %d, but the section declares %d interface(s)", ifid, len(g.ifaces))
		}
		caplen := g.bo.Uint32(b[20:24])
		if uint64(caplen) > uint64(length-32) {
			return g.fail(rec, start, "capture length %d does not fit in a %d-byte block", caplen, length)
		}
	case ngSPB:
		if len(g.ifaces) == 0 {
			return g.fail(rec, start, "simple packet block before any interface description block")
		}
		caplen := g.bo.Uint32(b[8:12])
		if s := g.ifaces[0].snaplen; s != 0 && caplen > s {
			caplen = s
		}
		if uint64(caplen) > uint64(length-16) {
			return g.fail(rec, start, "packet length %d does not fit in a %d-byte simple packet block", caplen, length)
		}
	case ngISB:
		if ifid := g.bo.Uint32(b[8:12]); int(ifid) >= len(g.ifaces) {
			return g.fail(0, start, "statistics for interface %d, but the section declares %d interface(s)", ifid, len(g.ifaces))
		}
		if err := g.options(body, 20, start, 0, func(code uint16, v []byte) string {
			if code >= 2 && code <= 5 && len(v) != 8 {
				return fmt.Sprintf("interface statistics option %d must be 8 bytes", code)
			}
			return ""
		}); err != nil {
			return err
		}
	}
	if isPacket {
		g.records = append(g.records, start)
	}
	g.block, g.pos = b, 0
	return nil
}

// options walks the options of body from off: each must fit in the block,
// and check (when given) vets its value.
func (g *ngGuard) options(body []byte, off int, start int64, rec int, check func(code uint16, v []byte) string) error {
	for off < len(body) {
		if off+4 > len(body) {
			return g.fail(rec, start, "option header at block offset %d runs past the block", off)
		}
		code, olen := g.bo.Uint16(body[off:off+2]), int(g.bo.Uint16(body[off+2:off+4]))
		if code == 0 {
			if olen != 0 {
				return g.fail(rec, start, "end-of-options with length %d: expected 0", olen)
			}
			return nil
		}
		padded := (olen + 3) &^ 3
		if off+4+padded > len(body) {
			return g.fail(rec, start, "option %d of %d bytes at block offset %d runs past the block", code, olen, off)
		}
		if check != nil {
			if msg := check(code, body[off+4:off+4+olen]); msg != "" {
				return g.fail(rec, start, "%s", msg)
			}
		}
		off += 4 + padded
	}
	return nil
}

func minBlockLen(typ uint32) uint32 {
	switch typ {
	case ngSHB:
		return 28
	case ngIDB:
		return 20
	case ngPB, ngEPB:
		return 32
	case ngSPB:
		return 16
	case ngISB:
		return 24
	}
	return 12
}

func (g *ngGuard) recordOffset(idx int) int64 {
	if i := idx - g.base; i >= 0 && i < len(g.records) {
		return g.records[i]
	}
	return g.off
}

// forget drops the offsets of records before idx: the reader has them.
// The slice is compacted only now and then, so this costs O(1) a record.
func (g *ngGuard) forget(idx int) {
	n := idx - g.base
	if n < 1024 || n > len(g.records) {
		return
	}
	g.records = append(g.records[:0], g.records[n:]...)
	g.base = idx
}

// explain turns an error from pcapgo into a FormatError, preferring the
// guard's own finding.
func (g *ngGuard) explain(err error, idx int) error {
	var fe *FormatError
	if errors.As(g.err, &fe) {
		return fe
	}
	if errors.As(err, &fe) {
		return fe
	}
	return &FormatError{Record: idx, Offset: g.recordOffset(idx), Msg: "pcapng: " + err.Error()}
}
