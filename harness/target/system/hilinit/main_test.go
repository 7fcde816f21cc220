//go:build linux

package main

import "testing"

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
