package startup

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseELF feeds damaged ELF files through everything the check reads:
// headers, dynamic segment, version tables and the symbol lookup. The seed
// corpus is the committed testdata ELFs plus testdata/fuzz/FuzzParseELF.
// Run: go test ./harness/startup -run '^$' -fuzz FuzzParseELF -fuzztime 60s
func FuzzParseELF(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "elf", "*"))
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := parseELF(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if _, ok := err.(*elfError); !ok {
				t.Fatalf("error of type %T, want *elfError: %v", err, err)
			}
			return
		}
		a, _ := parsePlatform("linux/arm/v7")
		a.compatible(in, true)
		describe(in)
		in.runtimeDispatch(true)
		for _, vn := range in.VerNeed {
			for _, v := range vn.Versions {
				in.symbolForVersion(v.Index)
			}
		}
	})
}

// FuzzParseLDCache checks the ld.so.cache reader on damaged caches.
func FuzzParseLDCache(f *testing.F) {
	entries := []cacheEntry{{Flags: flagELFLibc6 | flagARMLibHF, Name: "libc.so.6", Path: "/lib/libc.so.6"}}
	f.Add(encodeLDCache(entries))
	f.Add(encodeOldLDCache(entries, false))
	f.Add(encodeOldLDCache(entries, true))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseLDCache(data)
		if err == nil {
			c.lookup("libc.so.6")
		}
	})
}
