package startup

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/hilproject/hil/harness/board"
)

// ARM build attributes: what the compiler and assembler were allowed to
// use for an object, recorded in the .ARM.attributes section (section type
// SHT_ARM_ATTRIBUTES). No maintained Go library reads them (debug/elf does
// not), so this is a small parser of the format in "ELF for the Arm
// Architecture" (Arm IHI 0044, section 5.3.6 "Build Attributes") with the
// tag list of "Addenda to, and Errata in, the ABI for the Arm
// Architecture" (Arm IHI 0045, section 2):
//
//	'A'                                       format version
//	[ uint32 length, NTBS vendor, data ]*     one per vendor; length counts itself
//	data for vendor "aeabi":
//	[ ULEB128 tag (1 file, 2 section, 3 symbol), uint32 size,
//	  (for 2 and 3: ULEB128 numbers ending in 0), attribute* ]*
//	attribute: ULEB128 tag, then a ULEB128 or an NTBS value: tags 4, 5
//	and 67 are strings, 32 is a ULEB128 then a string, other tags below 32
//	are numbers, and from 32 on even tags are numbers and odd ones strings.
//
// The uint32s are in the ELF file's byte order. A section or symbol
// subsection (deprecated, rare) is folded into the file's needs: any of
// the file's code may run.

const (
	shtARMAttributes = 0x70000003

	tagFile      = 1
	tagSection   = 2
	tagSymbol    = 3
	tagCPURaw    = 4
	tagCPUName   = 5
	tagCPUArch   = 6
	tagThumbISA  = 9
	tagFPArch    = 10
	tagSIMDArch  = 12
	tagCompat    = 32
	tagDIVUse    = 44
	tagConform   = 67
	divUseNeeded = 2

	// maxAttrSection bounds what is read: real sections are tens of bytes.
	maxAttrSection = 64 << 10
)

// armAttributes is what one file's build attributes say it needs.
type armAttributes struct {
	// Present is false when the file has no (aeabi) build attributes.
	Present bool
	// Need is the merged Tag_CPU_arch, Tag_THUMB_ISA_use, Tag_FP_arch,
	// Tag_Advanced_SIMD_arch and Tag_DIV_use.
	Need board.ISA
	// CPUName is Tag_CPU_name ("7-A", "ARM1176JZF-S"), for reports.
	CPUName string
}

// attrError is a damaged attributes section.
type attrError struct{ msg string }

func (e *attrError) Error() string { return "damaged .ARM.attributes: " + e.msg }

func attrErr(format string, args ...any) error {
	return &attrError{msg: fmt.Sprintf(format, args...)}
}

// parseARMAttributes reads the contents of an .ARM.attributes section.
// It never panics; damaged input gives an *attrError.
func parseARMAttributes(b []byte, bo binary.ByteOrder) (armAttributes, error) {
	var out armAttributes
	if len(b) == 0 {
		return out, nil
	}
	if b[0] != 'A' {
		return out, attrErr("format version %#x, expected 'A'", b[0])
	}
	rest := b[1:]
	for len(rest) > 0 {
		if len(rest) < 4 {
			return out, attrErr("%d bytes left, too few for a subsection length", len(rest))
		}
		n := bo.Uint32(rest)
		if n < 4 || uint64(n) > uint64(len(rest)) {
			return out, attrErr("subsection length %d does not fit in the %d bytes left", n, len(rest))
		}
		sub := rest[4:n]
		rest = rest[n:]
		vendor, data, ok := cutNTBS(sub)
		if !ok {
			return out, attrErr("vendor name is not terminated")
		}
		if vendor != "aeabi" {
			continue // toolchain-private ("gnu"): not about the ISA
		}
		if err := out.parseVendor(data, bo); err != nil {
			return out, err
		}
		out.Present = true
	}
	return out, nil
}

func (a *armAttributes) parseVendor(data []byte, bo binary.ByteOrder) error {
	for len(data) > 0 {
		tag, n := uleb128(data)
		if n == 0 {
			return attrErr("truncated scope tag")
		}
		if len(data) < n+4 {
			return attrErr("truncated scope size")
		}
		size := bo.Uint32(data[n:])
		if uint64(size) < uint64(n+4) || uint64(size) > uint64(len(data)) {
			return attrErr("scope size %d does not fit in the %d bytes left", size, len(data))
		}
		body := data[n+4 : size]
		data = data[size:]
		switch tag {
		case tagFile:
		case tagSection, tagSymbol:
			// A list of section or symbol numbers, ending in 0.
			for {
				v, m := uleb128(body)
				if m == 0 {
					return attrErr("unterminated section/symbol list")
				}
				body = body[m:]
				if v == 0 {
					break
				}
			}
		default:
			return attrErr("unknown scope tag %d", tag)
		}
		if err := a.parseAttrs(body); err != nil {
			return err
		}
	}
	return nil
}

func (a *armAttributes) parseAttrs(b []byte) error {
	for len(b) > 0 {
		tag, n := uleb128(b)
		if n == 0 {
			return attrErr("truncated attribute tag")
		}
		b = b[n:]
		switch {
		case tag == tagCPURaw || tag == tagCPUName || tag == tagConform || (tag > tagCompat && tag%2 == 1):
			s, rest, ok := cutNTBS(b)
			if !ok {
				return attrErr("string of tag %d is not terminated", tag)
			}
			if tag == tagCPUName {
				a.CPUName = s
			}
			b = rest
		case tag == tagCompat:
			_, m := uleb128(b)
			if m == 0 {
				return attrErr("truncated Tag_compatibility")
			}
			_, rest, ok := cutNTBS(b[m:])
			if !ok {
				return attrErr("Tag_compatibility vendor is not terminated")
			}
			b = rest
		default:
			v, m := uleb128(b)
			if m == 0 {
				return attrErr("truncated value of tag %d", tag)
			}
			b = b[m:]
			a.merge(tag, v)
		}
	}
	return nil
}

// merge keeps the most demanding value of each tag (the file's own scope
// and any section or symbol scope).
func (a *armAttributes) merge(tag, v uint64) {
	if v > 255 {
		v = 255 // unknown, and never mistaken for a small known value
	}
	n := &a.Need
	switch tag {
	case tagCPUArch:
		if higherArch(board.Arch(v), n.Arch) {
			n.Arch = board.Arch(v)
		}
	case tagThumbISA:
		if board.Thumb(v) > n.Thumb {
			n.Thumb = board.Thumb(v)
		}
	case tagFPArch:
		if _, curKnown := n.FP.Includes(n.FP); !curKnown {
			return // an unknown value stays visible
		}
		if ok, known := board.FP(v).Includes(n.FP); !known || ok {
			n.FP = board.FP(v)
		}
	case tagSIMDArch:
		if board.SIMD(v) > n.SIMD {
			n.SIMD = board.SIMD(v)
		}
	case tagDIVUse:
		if v == divUseNeeded {
			n.IDiv = true
		}
	}
}

func higherArch(a, than board.Arch) bool {
	if _, known := than.Includes(than); !known && than != 0 {
		return false // an unknown value stays visible
	}
	inc, known := a.Includes(than)
	return !known || inc
}

// uleb128 decodes an unsigned LEB128 number; n is 0 when b ends first or
// the number does not fit in 64 bits.
func uleb128(b []byte) (v uint64, n int) {
	var shift uint
	for i, c := range b {
		if shift >= 64 || (shift == 63 && c > 1) {
			return 0, 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, i + 1
		}
		shift += 7
	}
	return 0, 0
}

func cutNTBS(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

// readARMAttributes finds the SHT_ARM_ATTRIBUTES section of a 32-bit ELF
// through its section headers (the only thing ld.so never reads that this
// check needs) and parses it. A file without section headers or without
// the section has no attributes; that is not an error.
func readARMAttributes(r io.ReaderAt, size int64, bo binary.ByteOrder) (armAttributes, error) {
	var hdr [52]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return armAttributes{}, attrErr("ELF header: %v", err)
	}
	shoff := uint64(bo.Uint32(hdr[32:]))
	shentsize := uint64(bo.Uint16(hdr[46:]))
	shnum := uint64(bo.Uint16(hdr[48:]))
	if shoff == 0 {
		return armAttributes{}, nil
	}
	if shentsize < 40 {
		return armAttributes{}, attrErr("section header size %d is too small", shentsize)
	}
	if shnum == 0 {
		// Extended numbering: the count is in section 0's sh_size.
		var s0 [40]byte
		if _, err := r.ReadAt(s0[:], int64(shoff)); err != nil {
			return armAttributes{}, attrErr("section header 0: %v", err)
		}
		shnum = uint64(bo.Uint32(s0[20:]))
	}
	if shoff > uint64(size) || shnum*shentsize > uint64(size)-shoff {
		return armAttributes{}, attrErr("%d section headers at offset %d run past the end of the %d-byte file", shnum, shoff, size)
	}
	tab := make([]byte, shnum*shentsize)
	if _, err := r.ReadAt(tab, int64(shoff)); err != nil {
		return armAttributes{}, attrErr("section headers: %v", err)
	}
	for i := uint64(0); i < shnum; i++ {
		sh := tab[i*shentsize:]
		if bo.Uint32(sh[4:]) != shtARMAttributes {
			continue
		}
		off, n := uint64(bo.Uint32(sh[16:])), uint64(bo.Uint32(sh[20:]))
		b, err := readRange(r, size, off, n, maxAttrSection)
		if err != nil {
			return armAttributes{}, attrErr("section contents: %v", err)
		}
		return parseARMAttributes(b, bo)
	}
	return armAttributes{}, nil
}
