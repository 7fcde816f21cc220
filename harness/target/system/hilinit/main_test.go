//go:build linux

package main

import (
	"errors"
	"testing"
	"time"
)

// Lines of a Debian 6.1 armmp guest's /proc/vmallocinfo right after hil-init
// loaded its 5 modules: 5 core areas, the init area of the last module not
// freed yet, other areas (the kernel's own and a lazily freed one).
const vmallocinfoAfterLoad = `0x3a1b8e0c-0x6ad0aa5e    8192 __pci_enable_msi_range+0x1a4/0x2a0 ioremap
0x0214e5d2-0x7ae39922   20480 load_module+0xa90/0x21c8 pages=4 vmalloc
0x1b2d110c-0x73084c9a   36864 load_module+0xa90/0x21c8 pages=8 vmalloc
0x196b8b71-0xc40c1ebe   20480 load_module+0xa90/0x21c8 pages=4 vmalloc
0x9924af71-0x7e6b7731   24576 load_module+0xa90/0x21c8 pages=5 vmalloc
0xb9f9aac5-0x9c8ac424   61440 load_module+0xa90/0x21c8 pages=14 vmalloc
0x9c8ac424-0x141540e6   32768 load_module+0x1b20/0x21c8 pages=7 vmalloc
0x5d3c9f2a-0x0c1e6b77   16384 kernel_read_file+0x1c4/0x2b0 pages=3 vmalloc
0x62aa09f1-0x1f7c3c14   12288 unpurged vm_area
`

func TestModuleAreasCountsTheLoadersAreas(t *testing.T) {
	if got := moduleAreas(vmallocinfoAfterLoad); got != 6 {
		t.Errorf("moduleAreas = %d, want 6 (5 cores and 1 init area)", got)
	}
	if got := moduleAreas("0x1-0x2 8192 module_alloc+0x58/0x90 pages=1 vmalloc\n"); got != 1 {
		t.Errorf("moduleAreas(module_alloc caller) = %d, want 1", got)
	}
	if got := moduleAreas(""); got != 0 {
		t.Errorf("moduleAreas(empty) = %d, want 0", got)
	}
}

// The wait ends at the second read in a row that lists no init area left:
// a read that sees one again starts over, and it gives up at the timeout
// or when the file cannot be read.
func TestAwaitModuleInitFreeNeedsTwoSettledReads(t *testing.T) {
	const n = 5
	lines := func(areas int) []byte {
		var b []byte
		for i := 0; i < areas; i++ {
			b = append(b, "0x1-0x2 20480 load_module+0xa90/0x21c8 pages=4 vmalloc\n"...)
		}
		return b
	}
	for _, c := range []struct {
		name    string
		counts  []int // module areas seen by each read; the last repeats
		fail    bool
		timeout time.Duration
		reads   int
		outcome string
	}{
		{"freed before the first read", []int{5}, false, time.Second, 2, "freed"},
		{"one init area, then freed", []int{6, 6, 5}, false, time.Second, 4, "freed"},
		{"a settled read, then one more area seen", []int{5, 6, 5}, false, time.Second, 4, "freed"},
		{"never freed", []int{6}, false, 30 * time.Millisecond, -1, "timed out after 30ms (6 module areas for 5 modules)"},
		{"unreadable", []int{6}, true, time.Second, 1, "not waited for: reading /proc/vmallocinfo: permission denied"},
		{"areas named otherwise", []int{0}, false, time.Second, 1, "not waited for: /proc/vmallocinfo names 0 module areas for 5 modules"},
	} {
		t.Run(c.name, func(t *testing.T) {
			reads := 0
			start := time.Now()
			outcome := awaitModuleInitFree(n, c.timeout, func() ([]byte, error) {
				i := min(reads, len(c.counts)-1)
				reads++
				if c.fail {
					return nil, errors.New("permission denied")
				}
				return lines(c.counts[i]), nil
			})
			if outcome != c.outcome {
				t.Errorf("outcome %q, want %q", outcome, c.outcome)
			}
			if c.reads >= 0 && reads != c.reads {
				t.Errorf("%d reads, want %d", reads, c.reads)
			}
			if c.reads < 0 && (reads < 3 || time.Since(start) < c.timeout) {
				t.Errorf("gave up after %d reads and %v, want to keep reading until the %v timeout", reads, time.Since(start), c.timeout)
			}
		})
	}
}

func TestModuleInitFreeKnownOnlyBefore64(t *testing.T) {
	for release, want := range map[string]bool{
		"6.1.0-50-armmp":    true,
		"6.1.0-57-arm64":    true,
		"5.10.0-30-armmp":   true,
		"6.4.0-1-armmp":     false,
		"6.12.48+deb13-arm": false,
		"":                  false,
		"unknown":           false,
	} {
		if got := moduleInitFreeKnown(release); got != want {
			t.Errorf("moduleInitFreeKnown(%q) = %v, want %v", release, got, want)
		}
	}
}
