package board

import "fmt"

// The ISAs of the cores in the table (Arm's technical reference manuals of
// each core; the Tag_* values the compilers use for them).
var (
	// ARM1176JZF-S (Pi Zero, Pi 1): ARMv6KZ, VFPv2, 16-bit Thumb only, no
	// NEON, no integer divide.
	isaARM1176 = ISA{Arch: ArchV6KZ, FP: FPVFPv2, SIMD: SIMDNone, Thumb: Thumb1}
	// Cortex-A7 (Pi 2): ARMv7-A with the virtualization extensions
	// (integer divide), VFPv4 with 32 registers, NEON with FMA.
	isaCortexA7 = ISA{Arch: ArchV7, FP: FPVFPv4, SIMD: SIMDNEONv2, Thumb: Thumb2, IDiv: true}
	// Cortex-A15 (QEMU virt, hil's generic ARMv7 machine): the same as the
	// A7 for user code.
	isaCortexA15 = ISA{Arch: ArchV7, FP: FPVFPv4, SIMD: SIMDNEONv2, Thumb: Thumb2, IDiv: true}
	// Cortex-A53 (Pi 3, Zero 2 W) and Cortex-A72 (Pi 4): ARMv8.0-A; in
	// AArch32 state FP-ARMv8 and ARMv8 Advanced SIMD. The BCM2837/2711
	// builds have no cryptography extension.
	isaCortexA53 = ISA{Arch: ArchV8A, FP: FPARMv8, SIMD: SIMDARMv8, Thumb: Thumb2, IDiv: true, AArch64: "v8.0"}
	isaCortexA72 = isaCortexA53
	// Cortex-A76 (Pi 5): ARMv8.2-A (AArch32 at EL0 only, which is all a
	// 32-bit userland needs).
	isaCortexA76 = ISA{Arch: ArchV82A, FP: FPARMv8, SIMD: SIMDARMv81, Thumb: Thumb2, IDiv: true, AArch64: "v8.2"}
)

const arm1176Unsupported = "QEMU's virt machine refuses the ARM1176 (\"mach-virt: CPU type arm1176-arm-cpu not supported\"), " +
	"the only machine the system target boots Debian's kernels on; the user and container targets run this board under qemu-arm -cpu arm1176"

const qemuArmNoA53 = "qemu-arm 7.2 has no Cortex-A53/A72/A76 model: max is an ARMv8 AArch32 CPU with more extensions than the board's"

// armv6OS is the OS of the ARM1176 boards: 32-bit only, and no
// full-system model.
func armv6OS() map[int]OS {
	return map[int]OS{32: {
		Platform: "linux/arm/v6",
		System:   System{Unsupported: arm1176Unsupported},
		User:     User{Emulator: "qemu-arm", CPU: "arm1176"},
	}}
}

// armv8OS is the OS entries of a 64-bit Pi: a 32-bit userland (armhf
// images) or a 64-bit one. QEMU's TCG cannot run these cores in AArch32
// at EL1 (FINDINGS), so both run Debian's arm64 kernel; the 32-bit
// userland gets a PER_LINUX32 personality, as on Raspberry Pi OS with its
// 64-bit kernel.
func armv8OS(cpu string) map[int]OS {
	return map[int]OS{
		32: {
			Platform: "linux/arm/v7",
			System:   System{Emulator: "qemu-system-aarch64", Machine: "virt", CPU: cpu, Kernel: "arm64", Linux32: true},
			User:     User{Emulator: "qemu-arm", CPU: "max", Note: qemuArmNoA53},
		},
		64: {
			Platform: "linux/arm64/v8",
			System:   System{Emulator: "qemu-system-aarch64", Machine: "virt", CPU: cpu, Kernel: "arm64"},
			User:     User{Emulator: "qemu-aarch64", CPU: cpu},
		},
	}
}

// builtinProfiles is the table. DefaultOS follows Raspberry Pi Imager's
// recommendation per model: the 64-bit Raspberry Pi OS for every model with
// a 64-bit core, the 32-bit one for the others.
func builtinProfiles() []*Profile {
	ps := []*Profile{
		{
			Name: "pi0w", Aliases: []string{"pi0"}, Model: "Raspberry Pi Zero W", SoC: "BCM2835",
			CPU: "ARM1176JZF-S", Cores: 1, MemoryMiB: 512, ISA: isaARM1176, DefaultOS: 32, OS: armv6OS(),
			DeviceModels: []string{"Raspberry Pi Zero W", "Raspberry Pi Zero Rev"},
		},
		{
			Name: "pi1", Aliases: []string{"pi1b+"}, Model: "Raspberry Pi 1 Model B+", SoC: "BCM2835",
			CPU: "ARM1176JZF-S", Cores: 1, MemoryMiB: 512, ISA: isaARM1176, DefaultOS: 32, OS: armv6OS(),
			DeviceModels: []string{"Raspberry Pi Model "},
		},
		{
			Name: "pi2", Aliases: []string{"pi2b"}, Model: "Raspberry Pi 2 Model B", SoC: "BCM2836",
			CPU: "Cortex-A7", Cores: 4, MemoryMiB: 1024, ISA: isaCortexA7, DefaultOS: 32,
			DeviceModels: []string{"Raspberry Pi 2 Model B"},
			OS: map[int]OS{32: {
				Platform: "linux/arm/v7",
				System:   System{Emulator: "qemu-system-arm", Machine: "virt", CPU: "cortex-a7", Kernel: "armhf"},
				User:     User{Emulator: "qemu-arm", CPU: "cortex-a7"},
			}},
		},
		{
			Name: "pi02w", Aliases: []string{"pi0-2w"}, Model: "Raspberry Pi Zero 2 W", SoC: "RP3A0 (BCM2710A1)",
			CPU: "Cortex-A53", Cores: 4, MemoryMiB: 512, ISA: isaCortexA53, DefaultOS: 64, OS: armv8OS("cortex-a53"),
			DeviceModels: []string{"Raspberry Pi Zero 2 W"},
		},
		{
			Name: "pi3b+", Aliases: []string{"pi3", "pi3b"}, Model: "Raspberry Pi 3 Model B+", SoC: "BCM2837B0",
			CPU: "Cortex-A53", Cores: 4, MemoryMiB: 1024, ISA: isaCortexA53, DefaultOS: 64, OS: armv8OS("cortex-a53"),
			DeviceModels: []string{"Raspberry Pi 3 Model B"},
		},
	}
	// Pi 4 and Pi 5 come in several memory sizes; the bare name is the
	// smallest, the one a test must fit in.
	for _, gib := range []int{1, 2, 4, 8} {
		name, aliases := fmt.Sprintf("pi4-%dg", gib), []string(nil)
		if gib == 1 {
			name, aliases = "pi4", []string{"pi4-1g", "pi4b"}
		}
		ps = append(ps, &Profile{
			Name: name, Aliases: aliases, Model: fmt.Sprintf("Raspberry Pi 4 Model B (%d GB)", gib), SoC: "BCM2711",
			CPU: "Cortex-A72", Cores: 4, MemoryMiB: gib * 1024, ISA: isaCortexA72, DefaultOS: 64, OS: armv8OS("cortex-a72"),
			DeviceModels: []string{"Raspberry Pi 4 Model B"},
		})
	}
	for _, gib := range []int{2, 4, 8, 16} {
		name, aliases := fmt.Sprintf("pi5-%dg", gib), []string(nil)
		if gib == 2 {
			name, aliases = "pi5", []string{"pi5-2g"}
		}
		ps = append(ps, &Profile{
			Name: name, Aliases: aliases, Model: fmt.Sprintf("Raspberry Pi 5 (%d GB)", gib), SoC: "BCM2712",
			CPU: "Cortex-A76", Cores: 4, MemoryMiB: gib * 1024, ISA: isaCortexA76, DefaultOS: 64, OS: armv8OS("cortex-a76"),
			DeviceModels: []string{"Raspberry Pi 5 Model B"},
		})
	}
	ps = append(ps, &Profile{
		Name: "virt", Model: "QEMU virt (generic ARMv7, hil's machine before board profiles)",
		CPU: "Cortex-A15", MemoryMiB: 512, ISA: isaCortexA15, DefaultOS: 32,
		OS: map[int]OS{32: {
			Platform: "linux/arm/v7",
			System:   System{Emulator: "qemu-system-arm", Machine: "virt", CPU: "cortex-a15", Kernel: "armhf"},
			User:     User{Emulator: "qemu-arm"},
		}},
	})
	for _, p := range ps {
		p.Source = "built-in"
	}
	return ps
}
