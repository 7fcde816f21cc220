//go:build armv8crc && arm

// The armv8-only variant (images/build): a checksum helper compiled for
// ARMv8 AArch32 with the CRC32 extension, as a team does when it tunes a
// hot path for the Pi 3 it develops on. Its constructor runs when the
// program is loaded, before the Go runtime, so on a CPU without those
// instructions (a Pi 2's Cortex-A7, a Pi Zero's ARM1176) the process dies
// of SIGILL at start, exactly as a C or Rust app with such a helper would.
// The linker merges the object's build attributes into the program's
// (Tag_CPU_arch v8), so the static check sees it too.

package main

/*
#cgo CFLAGS: -march=armv8-a+crc -mfpu=vfpv3-d16
#include <arm_acle.h>
#include <stdint.h>

static volatile uint32_t pcapwatch_crc_seed = 0xffffffffu;

__attribute__((constructor)) static void pcapwatch_crc_init(void) {
	pcapwatch_crc_seed = __crc32w(pcapwatch_crc_seed, 0x68696c21u);
}

static uint32_t pcapwatch_crc_value(void) { return pcapwatch_crc_seed; }
*/
import "C"

// crcSeed is what the helper computed at load; main never needs it, but
// referencing it keeps the helper linked in.
var crcSeed = uint32(C.pcapwatch_crc_value())
