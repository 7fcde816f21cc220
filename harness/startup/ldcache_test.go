package startup

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
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

// encodeOldLDCache writes the pre-2.32 format ("ld.so-1.7.0"), optionally
// followed by the new format, as older ldconfig did by default.
func encodeOldLDCache(entries []cacheEntry, appendNew bool) []byte {
	var strs bytes.Buffer
	type offs struct{ name, path uint32 }
	o := make([]offs, len(entries))
	for i, e := range entries {
		o[i].name = uint32(strs.Len())
		strs.WriteString(e.Name + "\x00")
		o[i].path = uint32(strs.Len())
		strs.WriteString(e.Path + "\x00")
	}
	out := make([]byte, cacheHeaderOldLen+len(entries)*cacheEntryOldLen)
	copy(out, cacheMagicOld)
	binary.LittleEndian.PutUint32(out[12:], uint32(len(entries)))
	for i, e := range entries {
		b := out[cacheHeaderOldLen+i*cacheEntryOldLen:]
		binary.LittleEndian.PutUint32(b[0:], uint32(e.Flags))
		binary.LittleEndian.PutUint32(b[4:], o[i].name)
		binary.LittleEndian.PutUint32(b[8:], o[i].path)
	}
	if !appendNew {
		return append(out, strs.Bytes()...)
	}
	// In the combined file the old part's strings are not used by modern
	// ld.so; pad to 8 and append the new format.
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	return append(out, encodeLDCache(entries)...)
}

func TestLDCacheFormats(t *testing.T) {
	entries := []cacheEntry{
		{Flags: flagELFLibc6 | flagARMLibHF, Name: "libpcap.so.0.8", Path: "/usr/lib/arm-linux-gnueabihf/libpcap.so.0.8"},
		{Flags: flagELFLibc6 | flagARMLibHF, Name: "libc.so.6", Path: "/lib/arm-linux-gnueabihf/libc.so.6"},
	}
	for name, tc := range map[string]struct {
		data   []byte
		format string
	}{
		"new":     {encodeLDCache(entries), "new"},
		"old":     {encodeOldLDCache(entries, false), "old"},
		"old+new": {encodeOldLDCache(entries, true), "old+new"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := parseLDCache(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if c.Format != tc.format {
				t.Errorf("format %q, want %q", c.Format, tc.format)
			}
			got := c.lookup("libpcap.so.0.8")
			if len(got) != 1 || got[0].Path != entries[0].Path || got[0].Flags != entries[0].Flags {
				t.Fatalf("lookup libpcap.so.0.8 = %+v", got)
			}
			if c.lookup("libnope.so") != nil {
				t.Error("lookup of an absent name found something")
			}
			// Every truncation is an error or a shorter cache, never a panic.
			for n := 0; n < len(tc.data); n++ {
				parseLDCache(tc.data[:n])
			}
		})
	}
	if _, err := parseLDCache([]byte("garbage that is not a cache")); err == nil {
		t.Error("garbage: want an error")
	}
}

// TestSystemLDCache parses the host's real cache when there is one (the
// format ldconfig writes on this Debian).
func TestSystemLDCache(t *testing.T) {
	b, err := os.ReadFile("/etc/ld.so.cache")
	if err != nil {
		t.Skip("no /etc/ld.so.cache:", err)
	}
	c, err := parseLDCache(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.lookup("libc.so.6")) == 0 {
		t.Errorf("host ld.so.cache (%s, %d entries) has no libc.so.6", c.Format, len(c.Entries))
	}
}
