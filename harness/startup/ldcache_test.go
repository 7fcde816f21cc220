package startup

import (
	"bytes"
	"encoding/binary"
)

// encodeLDCache writes entries in the new format (what ldconfig of glibc
// ≥ 2.32 writes). Tests use it to make caches for
// hand-made rootfs dirs.
func encodeLDCache(entries []cacheEntry) []byte {
	var strs bytes.Buffer
	base := cacheHeaderNewLen + len(entries)*cacheEntryNewLen
	type offs struct{ name, path uint32 }
	o := make([]offs, len(entries))
	for i, e := range entries {
		o[i].name = uint32(base + strs.Len())
		strs.WriteString(e.Name)
		strs.WriteByte(0)
		o[i].path = uint32(base + strs.Len())
		strs.WriteString(e.Path)
		strs.WriteByte(0)
	}
	out := make([]byte, base, base+strs.Len())
	copy(out, cacheMagicNew+cacheVersionNew)
	binary.LittleEndian.PutUint32(out[20:], uint32(len(entries)))
	binary.LittleEndian.PutUint32(out[24:], uint32(strs.Len()))
	out[28] = 2 // little-endian
	for i, e := range entries {
		b := out[cacheHeaderNewLen+i*cacheEntryNewLen:]
		binary.LittleEndian.PutUint32(b[0:], uint32(e.Flags))
		binary.LittleEndian.PutUint32(b[4:], o[i].name)
		binary.LittleEndian.PutUint32(b[8:], o[i].path)
		binary.LittleEndian.PutUint64(b[16:], e.HWCap)
	}
	return append(out, strs.Bytes()...)
}
