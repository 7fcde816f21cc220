package startup

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// elfInfo is what the kernel and ld.so look at in an ELF file: the file
// header, the program headers and the dynamic segment. Section headers are
// ignored on purpose (ld.so never reads them, and stripped files may lack
// them), which is also why this does not use debug/elf's
// DynamicVersionNeeds/DynamicVersions: those walk the section table.
type elfInfo struct {
	Class   elf.Class
	Data    elf.Data
	Type    elf.Type
	Machine elf.Machine
	Flags   uint32

	Interp  string // PT_INTERP, "" when absent
	Dynamic bool   // has PT_DYNAMIC

	Needed  []string
	SOName  string
	RPath   []string // DT_RPATH, split on ':'
	RunPath []string // DT_RUNPATH, split on ':'
	// HasRunPath is separate from len(RunPath) because an empty DT_RUNPATH
	// still disables DT_RPATH.
	HasRunPath bool
	// NoDefLib is DF_1_NODEFLIB: ld.so skips ld.so.cache and the default
	// dirs for this object's dependencies.
	NoDefLib bool

	VerNeed []verNeed
	VerDef  []verDef

	// What is needed to find a symbol for a version index, read lazily:
	// r while parsing, else the file at hostPath is opened again.
	r          io.ReaderAt
	hostPath   string
	size       int64
	loads      []elf.ProgHeader
	symtab     uint64
	syment     uint64
	versym     uint64
	hash       uint64
	gnuHash    uint64
	hasSymtab  bool
	hasVersym  bool
	hasHash    bool
	hasGNUHash bool
	strtab     []byte
	strtabAddr uint64
}

// verNeed is one DT_VERNEED entry: the versions needed from one file.
type verNeed struct {
	File     string
	Versions []verNeedAux
}

type verNeedAux struct {
	Name  string
	Index uint16 // vna_other: the index used in DT_VERSYM
	Weak  bool
}

// verDef is one DT_VERDEF entry (the base entry, the file's own name, is
// kept with Base set).
type verDef struct {
	Name  string
	Index uint16
	Base  bool
}

const (
	efARMEABIMask     = 0xFF000000
	efARMABIFloatSoft = 0x00000200
	efARMABIFloatHard = 0x00000400

	verFlgBase = 0x1
	verFlgWeak = 0x2

	// Sanity bounds that keep a corrupt header from making us allocate or
	// loop without end. Real files are far below these.
	maxPhnum     = 4096
	maxDynBytes  = 1 << 20
	maxStrtab    = 64 << 20
	maxVerChains = 1 << 16
)

// elfError is returned for files that are not ELF or are damaged.
type elfError struct {
	msg string
}

func (e *elfError) Error() string { return e.msg }

func badELF(format string, args ...any) error {
	return &elfError{msg: fmt.Sprintf(format, args...)}
}

// isELF reports whether b starts with the ELF magic.
func isELF(b []byte) bool { return len(b) >= 4 && string(b[:4]) == elf.ELFMAG }

// parseELF reads the headers and dynamic segment of an ELF file. It never
// panics on bad input: damaged files give an *elfError.
func parseELF(r io.ReaderAt, size int64) (info *elfInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			info, err = nil, badELF("damaged ELF (%v)", p)
		}
	}()
	var ident [elf.EI_NIDENT]byte
	if _, err := r.ReadAt(ident[:], 0); err != nil {
		return nil, badELF("too short for an ELF header (%d bytes)", size)
	}
	if !isELF(ident[:]) {
		return nil, badELF("not an ELF file (magic % x)", ident[:4])
	}
	in := &elfInfo{r: r, size: size, Class: elf.Class(ident[elf.EI_CLASS]), Data: elf.Data(ident[elf.EI_DATA])}
	var bo binary.ByteOrder
	switch in.Data {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return nil, badELF("unknown ELF data encoding %d", ident[elf.EI_DATA])
	}
	var phoff uint64
	var phentsize, phnum int
	switch in.Class {
	case elf.ELFCLASS32:
		var h elf.Header32
		if err := binary.Read(io.NewSectionReader(r, 0, size), bo, &h); err != nil {
			return nil, badELF("truncated ELF32 header")
		}
		in.Type, in.Machine, in.Flags = elf.Type(h.Type), elf.Machine(h.Machine), h.Flags
		phoff, phentsize, phnum = uint64(h.Phoff), int(h.Phentsize), int(h.Phnum)
		if phnum > 0 && phentsize < binary.Size(elf.Prog32{}) {
			return nil, badELF("program header entry size %d too small", phentsize)
		}
	case elf.ELFCLASS64:
		var h elf.Header64
		if err := binary.Read(io.NewSectionReader(r, 0, size), bo, &h); err != nil {
			return nil, badELF("truncated ELF64 header")
		}
		in.Type, in.Machine, in.Flags = elf.Type(h.Type), elf.Machine(h.Machine), h.Flags
		phoff, phentsize, phnum = h.Phoff, int(h.Phentsize), int(h.Phnum)
		if phnum > 0 && phentsize < binary.Size(elf.Prog64{}) {
			return nil, badELF("program header entry size %d too small", phentsize)
		}
	default:
		return nil, badELF("unknown ELF class %d", ident[elf.EI_CLASS])
	}
	if phnum > maxPhnum {
		return nil, badELF("%d program headers is more than the %d allowed", phnum, maxPhnum)
	}
	if phnum > 0 && (phoff >= uint64(size) || uint64(phnum)*uint64(phentsize) > uint64(size)-phoff) {
		return nil, badELF("program headers (offset %d, %d×%d bytes) run past the end of the %d-byte file", phoff, phnum, phentsize, size)
	}
	progs := make([]elf.ProgHeader, 0, phnum)
	if phnum > 0 {
		buf := make([]byte, phnum*phentsize)
		if _, err := r.ReadAt(buf, int64(phoff)); err != nil {
			return nil, badELF("reading program headers: %v", err)
		}
		for i := 0; i < phnum; i++ {
			b := buf[i*phentsize:]
			var p elf.ProgHeader
			if in.Class == elf.ELFCLASS32 {
				p = elf.ProgHeader{
					Type: elf.ProgType(bo.Uint32(b[0:])), Off: uint64(bo.Uint32(b[4:])),
					Vaddr: uint64(bo.Uint32(b[8:])), Filesz: uint64(bo.Uint32(b[16:])),
					Memsz: uint64(bo.Uint32(b[20:])), Flags: elf.ProgFlag(bo.Uint32(b[24:])),
				}
			} else {
				p = elf.ProgHeader{
					Type: elf.ProgType(bo.Uint32(b[0:])), Flags: elf.ProgFlag(bo.Uint32(b[4:])),
					Off: bo.Uint64(b[8:]), Vaddr: bo.Uint64(b[16:]),
					Filesz: bo.Uint64(b[32:]), Memsz: bo.Uint64(b[40:]),
				}
			}
			progs = append(progs, p)
		}
	}
	var dyn *elf.ProgHeader
	for i := range progs {
		p := &progs[i]
		switch p.Type {
		case elf.PT_LOAD:
			in.loads = append(in.loads, *p)
		case elf.PT_INTERP:
			b, err := readRange(r, size, p.Off, p.Filesz, 4096)
			if err != nil {
				return nil, badELF("PT_INTERP: %v", err)
			}
			if i := bytes.IndexByte(b, 0); i >= 0 {
				b = b[:i]
			}
			in.Interp = string(b)
		case elf.PT_DYNAMIC:
			dyn = p
		}
	}
	if dyn == nil {
		return in, nil
	}
	in.Dynamic = true
	if err := in.parseDynamic(bo, dyn); err != nil {
		return nil, err
	}
	return in, nil
}

// readRange reads n bytes at off, refusing ranges outside the file or
// larger than limit.
func readRange(r io.ReaderAt, size int64, off, n, limit uint64) ([]byte, error) {
	if n > limit {
		return nil, fmt.Errorf("%d bytes is more than the %d allowed", n, limit)
	}
	if off > uint64(size) || n > uint64(size)-off {
		return nil, fmt.Errorf("bytes %d..%d are past the end of the %d-byte file", off, off+n, size)
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, int64(off)); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, err
	}
	return b, nil
}

// fileOffset maps a virtual address to a file offset through the PT_LOAD
// segments, the way the dynamic table's addresses must be read.
func (in *elfInfo) fileOffset(vaddr uint64) (uint64, bool) {
	for _, p := range in.loads {
		if vaddr >= p.Vaddr && vaddr-p.Vaddr < p.Filesz {
			return p.Off + (vaddr - p.Vaddr), true
		}
	}
	return 0, false
}

func (in *elfInfo) readVaddr(vaddr, n, limit uint64) ([]byte, error) {
	off, ok := in.fileOffset(vaddr)
	if !ok {
		return nil, fmt.Errorf("address %#x is in no loadable segment", vaddr)
	}
	return readRange(in.r, in.size, off, n, limit)
}

func (in *elfInfo) str(off uint64) (string, error) {
	if off >= uint64(len(in.strtab)) {
		return "", fmt.Errorf("string offset %d is outside the %d-byte dynamic string table", off, len(in.strtab))
	}
	b := in.strtab[off:]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b), nil
}

func (in *elfInfo) parseDynamic(bo binary.ByteOrder, dyn *elf.ProgHeader) error {
	raw, err := readRange(in.r, in.size, dyn.Off, dyn.Filesz, maxDynBytes)
	if err != nil {
		return badELF("dynamic segment: %v", err)
	}
	type entry struct {
		tag elf.DynTag
		val uint64
	}
	var entries []entry
	step := 8
	if in.Class == elf.ELFCLASS64 {
		step = 16
	}
	for i := 0; i+step <= len(raw); i += step {
		var e entry
		if step == 8 {
			e = entry{elf.DynTag(int32(bo.Uint32(raw[i:]))), uint64(bo.Uint32(raw[i+4:]))}
		} else {
			e = entry{elf.DynTag(int64(bo.Uint64(raw[i:]))), bo.Uint64(raw[i+8:])}
		}
		if e.tag == elf.DT_NULL {
			break
		}
		entries = append(entries, e)
	}
	var strtab, strsz, verneed, verneednum, verdef, verdefnum uint64
	var hasStrtab, hasVerneed, hasVerdef bool
	for _, e := range entries {
		switch e.tag {
		case elf.DT_STRTAB:
			strtab, hasStrtab = e.val, true
		case elf.DT_STRSZ:
			strsz = e.val
		case elf.DT_VERNEED:
			verneed, hasVerneed = e.val, true
		case elf.DT_VERNEEDNUM:
			verneednum = e.val
		case elf.DT_VERDEF:
			verdef, hasVerdef = e.val, true
		case elf.DT_VERDEFNUM:
			verdefnum = e.val
		case elf.DT_SYMTAB:
			in.symtab, in.hasSymtab = e.val, true
		case elf.DT_SYMENT:
			in.syment = e.val
		case elf.DT_VERSYM:
			in.versym, in.hasVersym = e.val, true
		case elf.DT_HASH:
			in.hash, in.hasHash = e.val, true
		case elf.DT_GNU_HASH:
			in.gnuHash, in.hasGNUHash = e.val, true
		case elf.DT_FLAGS_1:
			in.NoDefLib = e.val&uint64(elf.DF_1_NODEFLIB) != 0
		}
	}
	if !hasStrtab {
		for _, e := range entries {
			if e.tag == elf.DT_NEEDED || e.tag == elf.DT_SONAME || e.tag == elf.DT_RPATH || e.tag == elf.DT_RUNPATH {
				return badELF("dynamic segment has %v but no DT_STRTAB", e.tag)
			}
		}
		return nil
	}
	in.strtabAddr = strtab
	in.strtab, err = in.readVaddr(strtab, strsz, maxStrtab)
	if err != nil {
		return badELF("dynamic string table: %v", err)
	}
	for _, e := range entries {
		switch e.tag {
		case elf.DT_NEEDED, elf.DT_SONAME, elf.DT_RPATH, elf.DT_RUNPATH:
			s, err := in.str(e.val)
			if err != nil {
				return badELF("%v: %v", e.tag, err)
			}
			switch e.tag {
			case elf.DT_NEEDED:
				in.Needed = append(in.Needed, s)
			case elf.DT_SONAME:
				in.SOName = s
			case elf.DT_RPATH:
				in.RPath = append(in.RPath, splitPath(s)...)
			case elf.DT_RUNPATH:
				in.HasRunPath = true
				in.RunPath = append(in.RunPath, splitPath(s)...)
			}
		}
	}
	if hasVerneed {
		if err := in.parseVerneed(bo, verneed, verneednum); err != nil {
			return badELF("DT_VERNEED: %v", err)
		}
	}
	if hasVerdef {
		if err := in.parseVerdef(bo, verdef, verdefnum); err != nil {
			return badELF("DT_VERDEF: %v", err)
		}
	}
	return nil
}

func splitPath(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ':' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// parseVerneed walks the Elf_Verneed chain (same layout for ELF32 and
// ELF64): vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32;
// then Elf_Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name
// u32, vna_next u32.
func (in *elfInfo) parseVerneed(bo binary.ByteOrder, vaddr, num uint64) error {
	if num > maxVerChains {
		return fmt.Errorf("%d entries is more than the %d allowed", num, maxVerChains)
	}
	// Every entry takes 16 bytes of the file; a chain that visits more
	// entries than fit is corrupt (and would otherwise loop for minutes).
	budget := in.size/16 + 1
	for i := uint64(0); i < num; i++ {
		if budget--; budget < 0 {
			return errors.New("chain longer than the file")
		}
		b, err := in.readVaddr(vaddr, 16, 16)
		if err != nil {
			return err
		}
		cnt, file, aux, next := bo.Uint16(b[2:]), bo.Uint32(b[4:]), bo.Uint32(b[8:]), bo.Uint32(b[12:])
		name, err := in.str(uint64(file))
		if err != nil {
			return err
		}
		vn := verNeed{File: name}
		a := vaddr + uint64(aux)
		for j := uint16(0); j < cnt; j++ {
			if budget--; budget < 0 {
				return errors.New("chain longer than the file")
			}
			ab, err := in.readVaddr(a, 16, 16)
			if err != nil {
				return err
			}
			flags, other, vname, anext := bo.Uint16(ab[4:]), bo.Uint16(ab[6:]), bo.Uint32(ab[8:]), bo.Uint32(ab[12:])
			s, err := in.str(uint64(vname))
			if err != nil {
				return err
			}
			vn.Versions = append(vn.Versions, verNeedAux{Name: s, Index: other, Weak: flags&verFlgWeak != 0})
			if anext == 0 {
				break
			}
			a += uint64(anext)
		}
		in.VerNeed = append(in.VerNeed, vn)
		if next == 0 {
			break
		}
		vaddr += uint64(next)
	}
	return nil
}

// parseVerdef walks the Elf_Verdef chain: vd_version u16, vd_flags u16,
// vd_ndx u16, vd_cnt u16, vd_hash u32, vd_aux u32, vd_next u32; the first
// Elf_Verdaux (vda_name u32, vda_next u32) names the version.
func (in *elfInfo) parseVerdef(bo binary.ByteOrder, vaddr, num uint64) error {
	if num > maxVerChains {
		return fmt.Errorf("%d entries is more than the %d allowed", num, maxVerChains)
	}
	budget := in.size/20 + 1
	for i := uint64(0); i < num; i++ {
		if budget--; budget < 0 {
			return errors.New("chain longer than the file")
		}
		b, err := in.readVaddr(vaddr, 20, 20)
		if err != nil {
			return err
		}
		flags, ndx, cnt, aux, next := bo.Uint16(b[2:]), bo.Uint16(b[4:]), bo.Uint16(b[6:]), bo.Uint32(b[12:]), bo.Uint32(b[16:])
		if cnt > 0 {
			ab, err := in.readVaddr(vaddr+uint64(aux), 8, 8)
			if err != nil {
				return err
			}
			s, err := in.str(uint64(bo.Uint32(ab[0:])))
			if err != nil {
				return err
			}
			in.VerDef = append(in.VerDef, verDef{Name: s, Index: ndx, Base: flags&verFlgBase != 0})
		}
		if next == 0 {
			break
		}
		vaddr += uint64(next)
	}
	return nil
}

// defines reports whether the file defines version v.
func (in *elfInfo) defines(v string) bool {
	for _, d := range in.VerDef {
		if !d.Base && d.Name == v {
			return true
		}
	}
	return false
}

// symbolCount finds how many entries DT_SYMTAB has; the dynamic table does
// not say, so it comes from DT_HASH's nchain or from walking DT_GNU_HASH.
func (in *elfInfo) symbolCount(bo binary.ByteOrder) (uint64, error) {
	if in.hasHash {
		b, err := in.readVaddr(in.hash, 8, 8)
		if err != nil {
			return 0, err
		}
		return uint64(bo.Uint32(b[4:])), nil
	}
	if !in.hasGNUHash {
		return 0, errors.New("no DT_HASH nor DT_GNU_HASH")
	}
	h, err := in.readVaddr(in.gnuHash, 16, 16)
	if err != nil {
		return 0, err
	}
	nbuckets, symoffset, bloomSize := uint64(bo.Uint32(h[0:])), uint64(bo.Uint32(h[4:])), uint64(bo.Uint32(h[8:]))
	word := uint64(4)
	if in.Class == elf.ELFCLASS64 {
		word = 8
	}
	bucketsAt := in.gnuHash + 16 + bloomSize*word
	buckets, err := in.readVaddr(bucketsAt, nbuckets*4, uint64(in.size))
	if err != nil {
		return 0, err
	}
	var last uint64
	for i := uint64(0); i < nbuckets; i++ {
		if b := uint64(bo.Uint32(buckets[i*4:])); b > last {
			last = b
		}
	}
	if last < symoffset {
		return symoffset, nil
	}
	chainAt := bucketsAt + nbuckets*4
	for n := uint64(0); n < uint64(in.size)/4; n++ {
		c, err := in.readVaddr(chainAt+(last-symoffset)*4, 4, 4)
		if err != nil {
			return 0, err
		}
		if bo.Uint32(c)&1 != 0 {
			return last + 1, nil
		}
		last++
	}
	return 0, errors.New("DT_GNU_HASH chain does not end")
}

// symbolForVersion names one dynamic symbol whose DT_VERSYM entry is index
// (the vna_other of a needed version). Only used to explain a failure, so
// it may be slower than the rest.
func (in *elfInfo) symbolForVersion(index uint16) (name string, err error) {
	if !in.hasSymtab || !in.hasVersym {
		return "", errors.New("no dynamic symbol table or version table")
	}
	if in.r == nil {
		f, err := os.Open(in.hostPath)
		if err != nil {
			return "", err
		}
		defer func() { f.Close(); in.r = nil }()
		in.r = f
	}
	defer func() {
		if p := recover(); p != nil {
			name, err = "", fmt.Errorf("damaged symbol table (%v)", p)
		}
	}()
	bo := binary.ByteOrder(binary.LittleEndian)
	if in.Data == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	syms, n, syment, err := in.dynsymTable(bo)
	if err != nil {
		return "", err
	}
	if n*2 > uint64(in.size) {
		return "", fmt.Errorf("%d symbols cannot fit in a %d-byte file", n, in.size)
	}
	versym, err := in.readVaddr(in.versym, n*2, uint64(in.size))
	if err != nil {
		return "", err
	}
	for i := uint64(1); i < n; i++ {
		if bo.Uint16(versym[i*2:])&0x7fff != index {
			continue
		}
		name, err := in.str(uint64(bo.Uint32(syms[i*syment:])))
		if err != nil {
			return "", err
		}
		if name != "" {
			return name, nil
		}
	}
	return "", fmt.Errorf("no symbol uses version index %d", index)
}

// dynsymTable reads the dynamic symbol table: its bytes, the number of
// entries and the entry size. in.r must be set.
func (in *elfInfo) dynsymTable(bo binary.ByteOrder) (syms []byte, n, syment uint64, err error) {
	syment = in.syment
	if syment == 0 {
		syment = 16
		if in.Class == elf.ELFCLASS64 {
			syment = 24
		}
	}
	// The hash tables may undercount (DT_GNU_HASH leaves out undefined
	// symbols, which are exactly the ones that need versions). Linkers put
	// .dynstr right after .dynsym, so that distance is the better count.
	n, err = in.symbolCount(bo)
	if in.strtabAddr > in.symtab {
		if m := (in.strtabAddr - in.symtab) / syment; m > n || err != nil {
			n, err = m, nil
		}
	}
	if err != nil {
		return nil, 0, 0, err
	}
	if n*syment > uint64(in.size) {
		return nil, 0, 0, fmt.Errorf("%d symbols cannot fit in a %d-byte file", n, in.size)
	}
	syms, err = in.readVaddr(in.symtab, n*syment, uint64(in.size))
	return syms, n, syment, err
}

// runtimeDispatch says whether the object picks instructions at run time
// by the CPU it finds: it imports getauxval (how libraries read AT_HWCAP,
// e.g. libgcrypt, OpenSSL), defines GNU indirect functions (glibc's
// memcpy variants), or, for a library, names /proc/self/auxv, the file
// libraries built without getauxval read AT_HWCAP from (Debian bullseye's
// armhf libgcrypt 1.8, whose attributes say ARMv8-A). Not for a program:
// every Go program names that file (its runtime reads the auxiliary vector
// there when it must), which says nothing about its own code. It returns
// the evidence, or "".
func (in *elfInfo) runtimeDispatch(library bool) (evidence string, err error) {
	if !in.hasSymtab {
		return "", nil
	}
	if in.r == nil {
		f, err := os.Open(in.hostPath)
		if err != nil {
			return "", err
		}
		defer func() { f.Close(); in.r = nil }()
		in.r = f
	}
	defer func() {
		if p := recover(); p != nil {
			evidence, err = "", fmt.Errorf("damaged symbol table (%v)", p)
		}
	}()
	bo := binary.ByteOrder(binary.LittleEndian)
	if in.Data == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	syms, n, syment, err := in.dynsymTable(bo)
	if err != nil {
		return "", err
	}
	ifuncs := 0
	for i := uint64(1); i < n; i++ {
		e := syms[i*syment:]
		var info byte
		var shndx uint16
		if in.Class == elf.ELFCLASS64 {
			info, shndx = e[4], bo.Uint16(e[6:])
		} else {
			info, shndx = e[12], bo.Uint16(e[14:])
		}
		if elf.SymType(info&0xf) == elf.STT_GNU_IFUNC && shndx != uint16(elf.SHN_UNDEF) {
			ifuncs++
			continue
		}
		if shndx == uint16(elf.SHN_UNDEF) {
			name, err := in.str(uint64(bo.Uint32(e)))
			if err == nil && (name == "getauxval" || name == "__getauxval") {
				return "it reads the CPU's features at run time (imports " + name + ")", nil
			}
		}
	}
	if ifuncs > 0 {
		return fmt.Sprintf("it picks code by the CPU at run time (%d GNU indirect functions)", ifuncs), nil
	}
	if !library {
		return "", nil
	}
	if found, err := fileContains(in.r, in.size, auxvPath); err != nil {
		return "", err
	} else if found {
		return "it reads the CPU's features at run time (it opens /proc/self/auxv)", nil
	}
	return "", nil
}

// auxvPath is the file name as a C string in a library's read-only data.
var auxvPath = []byte("/proc/self/auxv\x00")

// maxScanBytes bounds fileContains: a shared library larger than this is
// not scanned (no evidence of dispatch found).
const maxScanBytes = 64 << 20

// fileContains reports whether the first size bytes of r (at most
// maxScanBytes) hold needle, reading in chunks that overlap by its length.
func fileContains(r io.ReaderAt, size int64, needle []byte) (bool, error) {
	size = min(size, maxScanBytes)
	buf := make([]byte, 256<<10)
	for off := int64(0); off < size; off += int64(len(buf) - len(needle)) {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if bytes.Contains(buf[:n], needle) {
			return true, nil
		}
		if err != nil && err != io.EOF {
			return false, err
		}
		if off+int64(n) >= size {
			break
		}
	}
	return false, nil
}
