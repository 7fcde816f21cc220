package startup

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// ld.so.cache formats, from glibc's sysdeps/generic/dl-cache.h.
const (
	cacheMagicOld     = "ld.so-1.7.0"
	cacheMagicNew     = "glibc-ld.so.cache"
	cacheVersionNew   = "1.1"
	cacheHeaderNewLen = 48 // magic[17] version[3] nlibs len_strings flags pad[3] ext_off unused[3]
	cacheEntryNewLen  = 24 // flags key value osversion hwcap(u64)
	cacheHeaderOldLen = 16 // magic[11] pad nlibs
	cacheEntryOldLen  = 12 // flags key value
)

// cacheEntry is one library in /etc/ld.so.cache.
type cacheEntry struct {
	Flags int32
	Name  string
	Path  string
	HWCap uint64
}

// ldCache is a parsed ld.so.cache: entries in file order (ldconfig writes
// the preferred candidate first), indexed by soname.
type ldCache struct {
	Format  string // "new", "old" or "old+new"
	Entries []cacheEntry
	byName  map[string][]int
}

func (c *ldCache) lookup(name string) []cacheEntry {
	if c == nil {
		return nil
	}
	var out []cacheEntry
	for _, i := range c.byName[name] {
		out = append(out, c.Entries[i])
	}
	return out
}

// parseLDCache accepts the new format alone, the old format alone, and the
// old format followed by the new one (what glibc < 2.32's ldconfig wrote by
// default). When both are present the new part wins, like ld.so.
func parseLDCache(b []byte) (*ldCache, error) {
	c := &ldCache{byName: map[string][]int{}}
	switch {
	case bytes.HasPrefix(b, []byte(cacheMagicNew)):
		c.Format = "new"
		if err := c.parseNew(b); err != nil {
			return nil, err
		}
	case bytes.HasPrefix(b, []byte(cacheMagicOld)):
		if len(b) < cacheHeaderOldLen {
			return nil, fmt.Errorf("old-format header truncated (%d bytes)", len(b))
		}
		n := uint64(binary.LittleEndian.Uint32(b[12:]))
		end := uint64(cacheHeaderOldLen) + n*cacheEntryOldLen
		if end > uint64(len(b)) {
			return nil, fmt.Errorf("old format claims %d entries, more than the %d-byte file holds", n, len(b))
		}
		// The new format follows, aligned to 8, when ldconfig wrote both.
		newAt := (end + 7) &^ 7
		if newAt < uint64(len(b)) && bytes.HasPrefix(b[newAt:], []byte(cacheMagicNew)) {
			c.Format = "old+new"
			if err := c.parseNew(b[newAt:]); err != nil {
				return nil, err
			}
			break
		}
		c.Format = "old"
		strs := b[end:]
		for i := uint64(0); i < n; i++ {
			e := b[cacheHeaderOldLen+i*cacheEntryOldLen:]
			name, err1 := cstring(strs, binary.LittleEndian.Uint32(e[4:]))
			path, err2 := cstring(strs, binary.LittleEndian.Uint32(e[8:]))
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("old-format entry %d has a string offset outside the file", i)
			}
			c.add(cacheEntry{Flags: int32(binary.LittleEndian.Uint32(e[0:])), Name: name, Path: path})
		}
	default:
		return nil, fmt.Errorf("not an ld.so.cache (starts with %q)", truncate(b, 17))
	}
	return c, nil
}

func (c *ldCache) parseNew(b []byte) error {
	if len(b) < cacheHeaderNewLen {
		return fmt.Errorf("new-format header truncated (%d bytes)", len(b))
	}
	if v := string(b[17:20]); v != cacheVersionNew {
		return fmt.Errorf("new-format version %q, expected %q", v, cacheVersionNew)
	}
	// flags byte: 0 unknown, 2 little-endian, 3 big-endian.
	if b[28] == 3 {
		return fmt.Errorf("big-endian ld.so.cache is not supported")
	}
	n := uint64(binary.LittleEndian.Uint32(b[20:]))
	if uint64(cacheHeaderNewLen)+n*cacheEntryNewLen > uint64(len(b)) {
		return fmt.Errorf("new format claims %d entries, more than the %d-byte file holds", n, len(b))
	}
	for i := uint64(0); i < n; i++ {
		e := b[cacheHeaderNewLen+i*cacheEntryNewLen:]
		// String offsets are relative to the start of the new header.
		name, err1 := cstring(b, binary.LittleEndian.Uint32(e[4:]))
		path, err2 := cstring(b, binary.LittleEndian.Uint32(e[8:]))
		if err1 != nil || err2 != nil {
			return fmt.Errorf("new-format entry %d has a string offset outside the file", i)
		}
		c.add(cacheEntry{
			Flags: int32(binary.LittleEndian.Uint32(e[0:])), Name: name, Path: path,
			HWCap: binary.LittleEndian.Uint64(e[16:]),
		})
	}
	return nil
}

func (c *ldCache) add(e cacheEntry) {
	c.byName[e.Name] = append(c.byName[e.Name], len(c.Entries))
	c.Entries = append(c.Entries, e)
}

func cstring(b []byte, off uint32) (string, error) {
	if uint64(off) >= uint64(len(b)) {
		return "", fmt.Errorf("offset %d outside %d bytes", off, len(b))
	}
	s := b[off:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return string(s), nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// cacheFlagsMatch is ld.so's _dl_cache_check_flags: an entry is for this
// ABI when its flags are exactly the platform's (type libc6 and the arch
// bits). When the platform has no arch bits, any libc6 entry without arch
// bits matches.
func cacheFlagsMatch(entry, want int32) bool {
	if want == 0 {
		return true
	}
	return entry == want
}
