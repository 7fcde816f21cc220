package startup

import (
	"debug/elf"
	"fmt"
	"strings"
)

// FloatABI is the ARM procedure-call standard for floating point.
type FloatABI string

const (
	FloatAny  FloatABI = ""
	FloatHard FloatABI = "hard-float"
	FloatSoft FloatABI = "soft-float"
)

// arch is what an OCI platform means to the kernel and to ld.so.
type arch struct {
	Platform string
	Machine  elf.Machine
	Class    elf.Class
	Float    FloatABI // ARM only
	Triplet  string   // Debian multiarch triplet
	// cacheFlags is the ld.so.cache entry flag value ld.so accepts for this
	// ABI (FLAG_ELF_LIBC6 plus the arch bits), 0 when unknown.
	cacheFlags int32
	// at_platform is what $PLATFORM expands to (AT_PLATFORM).
	atPlatform string
	lib64      bool
	bigEndian  bool
	// armelOK is linux/arm/v6: both Debian's armel (soft-float EABI5,
	// loader /lib/ld-linux.so.3, built for ARMv5TE) and armhf built for
	// ARMv6 (Raspbian) are that platform; the program's own float ABI
	// decides which one ld.so is.
	armelOK bool
}

// ld.so.cache flag values from glibc's sysdeps/generic/ldconfig.h.
const (
	flagELFLibc6     = 0x0003
	flagX8664Lib64   = 0x0300
	flagARMLibHF     = 0x0900
	flagAArch64Lib64 = 0x0a00
	flagS390Lib64    = 0x0400
	flagPowerPCLib64 = 0x0500
	flagRISCVDouble  = 0x1000
	flagTypeMask     = 0x00ff
	flagReqMask      = 0xff00
)

// parsePlatform maps an OCI platform string to the ELF it needs.
func parsePlatform(p string) (arch, error) {
	parts := strings.Split(p, "/")
	if len(parts) < 2 || parts[0] != "linux" {
		return arch{}, fmt.Errorf("platform %q: expected linux/ARCH[/VARIANT], e.g. linux/arm/v7", p)
	}
	variant := ""
	if len(parts) > 2 {
		variant = parts[2]
	}
	switch parts[1] {
	case "amd64":
		return arch{Platform: p, Machine: elf.EM_X86_64, Class: elf.ELFCLASS64, Triplet: "x86_64-linux-gnu",
			cacheFlags: flagELFLibc6 | flagX8664Lib64, atPlatform: "x86_64", lib64: true}, nil
	case "arm64":
		return arch{Platform: p, Machine: elf.EM_AARCH64, Class: elf.ELFCLASS64, Triplet: "aarch64-linux-gnu",
			cacheFlags: flagELFLibc6 | flagAArch64Lib64, atPlatform: "aarch64", lib64: true}, nil
	case "arm":
		a := arch{Platform: p, Machine: elf.EM_ARM, Class: elf.ELFCLASS32, Float: FloatHard, Triplet: "arm-linux-gnueabihf",
			cacheFlags: flagELFLibc6 | flagARMLibHF, atPlatform: "v7l"}
		switch variant {
		case "", "v7":
		case "v6":
			a.atPlatform, a.armelOK = "v6l", true
		case "v5":
			a = a.asArmel()
			a.atPlatform = "v5l"
		default:
			return arch{}, fmt.Errorf("platform %q: unknown arm variant %q (want v5, v6 or v7)", p, variant)
		}
		return a, nil
	case "386":
		return arch{Platform: p, Machine: elf.EM_386, Class: elf.ELFCLASS32, Triplet: "i386-linux-gnu",
			cacheFlags: flagELFLibc6, atPlatform: "i686"}, nil
	case "riscv64":
		return arch{Platform: p, Machine: elf.EM_RISCV, Class: elf.ELFCLASS64, Triplet: "riscv64-linux-gnu",
			cacheFlags: flagELFLibc6 | flagRISCVDouble, atPlatform: "riscv64", lib64: true}, nil
	case "ppc64le":
		return arch{Platform: p, Machine: elf.EM_PPC64, Class: elf.ELFCLASS64, Triplet: "powerpc64le-linux-gnu",
			cacheFlags: flagELFLibc6 | flagPowerPCLib64, atPlatform: "power8", lib64: true}, nil
	case "s390x":
		return arch{Platform: p, Machine: elf.EM_S390, Class: elf.ELFCLASS64, Triplet: "s390x-linux-gnu",
			cacheFlags: flagELFLibc6 | flagS390Lib64, atPlatform: "z13", lib64: true, bigEndian: true}, nil
	}
	return arch{}, fmt.Errorf("platform %q: architecture %q is not supported (amd64, arm64, arm, 386, riscv64, ppc64le, s390x are)", p, parts[1])
}

// asArmel is the ABI of Debian armel: soft-float, the arm-linux-gnueabi
// multiarch dirs, no arch bits in ld.so.cache.
func (a arch) asArmel() arch {
	a.Float, a.Triplet, a.cacheFlags, a.armelOK = FloatSoft, "arm-linux-gnueabi", flagELFLibc6, false
	return a
}

// describe names an ELF's architecture the way a person would say it.
func describe(in *elfInfo) string {
	s := fmt.Sprintf("%s %s", machineName(in.Machine), classBits(in.Class))
	if in.Machine == elf.EM_ARM {
		if v := in.Flags & efARMEABIMask >> 24; v != 0 {
			s += fmt.Sprintf(" EABI%d", v)
		} else {
			s += " OABI/GNU"
		}
		if f := armFloat(in.Flags); f != FloatAny {
			s += " " + string(f)
		}
	}
	return s
}

func (a arch) String() string {
	s := fmt.Sprintf("%s %s", machineName(a.Machine), classBits(a.Class))
	if a.Machine == elf.EM_ARM {
		s += " EABI5"
		if a.Float != FloatAny {
			s += " " + string(a.Float)
		}
	}
	return s
}

func machineName(m elf.Machine) string {
	switch m {
	case elf.EM_ARM:
		return "ARM"
	case elf.EM_AARCH64:
		return "AArch64"
	case elf.EM_X86_64:
		return "x86-64"
	case elf.EM_386:
		return "i386"
	case elf.EM_RISCV:
		return "RISC-V"
	case elf.EM_PPC64:
		return "PowerPC64"
	case elf.EM_S390:
		return "s390x"
	}
	return m.String()
}

func classBits(c elf.Class) string {
	switch c {
	case elf.ELFCLASS32:
		return "32-bit"
	case elf.ELFCLASS64:
		return "64-bit"
	}
	return c.String()
}

func armFloat(flags uint32) FloatABI {
	switch {
	case flags&efARMABIFloatHard != 0:
		return FloatHard
	case flags&efARMABIFloatSoft != 0:
		return FloatSoft
	}
	return FloatAny
}

// compatible says whether ld.so (dynamic true) or the kernel (static
// binaries) would accept this ELF on the platform, and if not, why.
func (a arch) compatible(in *elfInfo, dynamic bool) (bool, string) {
	if in.Machine != a.Machine || in.Class != a.Class {
		return false, fmt.Sprintf("it is %s, the platform %s needs %s", describe(in), a.Platform, a)
	}
	if want := map[bool]elf.Data{false: elf.ELFDATA2LSB, true: elf.ELFDATA2MSB}[a.bigEndian]; in.Data != want {
		return false, fmt.Sprintf("it is %s, the platform %s is %s", endianName(in.Data), a.Platform, endianName(want))
	}
	if a.Machine == elf.EM_ARM {
		if v := in.Flags & efARMEABIMask >> 24; v != 5 {
			return false, fmt.Sprintf("it is %s, the platform %s needs %s", describe(in), a.Platform, a)
		}
		// The kernel does not care about the float ABI of a static binary;
		// ld.so refuses to mix them.
		if dynamic && a.Float != FloatAny {
			if f := armFloat(in.Flags); f != FloatAny && f != a.Float {
				return false, fmt.Sprintf("it is %s, the platform %s needs %s", describe(in), a.Platform, a)
			}
		}
	}
	return true, ""
}

func endianName(d elf.Data) string {
	if d == elf.ELFDATA2MSB {
		return "big-endian"
	}
	return "little-endian"
}
