package board

import (
	"fmt"
	"strings"
)

// The values below are the ones the ARM build attributes use, so that what
// an ELF file asks for (its .ARM.attributes section) and what a board has
// compare directly. Reference: "Addenda to, and Errata in, the ABI for the
// Arm Architecture" (Arm IHI 0045), section 2.4 "Public ("aeabi")
// attribute tags": Tag_CPU_arch (6), Tag_THUMB_ISA_use (9), Tag_FP_arch
// (10), Tag_Advanced_SIMD_arch (12), Tag_DIV_use (44).

// Arch is a Tag_CPU_arch value: the 32-bit Arm architecture version.
type Arch uint8

// Tag_CPU_arch values.
const (
	ArchPreV4    Arch = 0
	ArchV4       Arch = 1
	ArchV4T      Arch = 2
	ArchV5T      Arch = 3
	ArchV5TE     Arch = 4
	ArchV5TEJ    Arch = 5
	ArchV6       Arch = 6
	ArchV6KZ     Arch = 7
	ArchV6T2     Arch = 8
	ArchV6K      Arch = 9
	ArchV7       Arch = 10
	ArchV6M      Arch = 11
	ArchV6SM     Arch = 12
	ArchV7EM     Arch = 13
	ArchV8A      Arch = 14
	ArchV8R      Arch = 15
	ArchV8MBase  Arch = 16
	ArchV8MMain  Arch = 17
	ArchV81A     Arch = 18
	ArchV82A     Arch = 19
	ArchV83A     Arch = 20
	ArchV81MMain Arch = 21
	ArchV9A      Arch = 22
)

var archTags = [...]string{
	"Pre-v4", "v4", "v4T", "v5T", "v5TE", "v5TEJ", "v6", "v6KZ", "v6T2", "v6K", "v7",
	"v6-M", "v6S-M", "v7E-M", "v8-A", "v8-R", "v8-M.baseline", "v8-M.mainline",
	"v8.1-A", "v8.2-A", "v8.3-A", "v8.1-M.mainline", "v9-A",
}

// rank orders the A-profile architectures by what they include: code built
// for a lower rank runs on a CPU of a higher rank. The tag values are not
// in that order (v6K = 9 comes after v6KZ = 7, and an ARM1176JZF-S, which
// is v6KZ, has no Thumb-2 of v6T2 = 8). M- and R-profile values have no
// rank: Linux userland is never built for them.
var archRank = map[Arch]int{
	ArchPreV4: 1, ArchV4: 2, ArchV4T: 3, ArchV5T: 4, ArchV5TE: 5, ArchV5TEJ: 6,
	ArchV6: 7, ArchV6K: 8, ArchV6KZ: 9, ArchV6T2: 10, ArchV7: 11,
	ArchV8A: 12, ArchV81A: 13, ArchV82A: 14, ArchV83A: 15, ArchV9A: 16,
}

// String is the tag's own spelling, as readelf -A prints it ("v7").
func (a Arch) String() string {
	if int(a) < len(archTags) {
		return archTags[a]
	}
	return fmt.Sprintf("unknown (%d)", uint8(a))
}

// Human is how a person names the architecture: ARMv6 for every v6 flavour
// an ARM11 runs, ARMv7, ARMv8-A.
func (a Arch) Human() string {
	switch a {
	case ArchV6, ArchV6K, ArchV6KZ:
		return "ARMv6"
	case ArchV6T2:
		return "ARMv6T2"
	case ArchV8A:
		return "ARMv8-A"
	}
	if int(a) < len(archTags) {
		return "ARM" + archTags[a]
	}
	return a.String()
}

// Includes reports whether a CPU of architecture a runs code built for
// need. ok is false when either side has no A-profile rank (M/R profile or
// an unknown value): then nothing can be said.
func (a Arch) Includes(need Arch) (includes, ok bool) {
	ra, okA := archRank[a]
	rn, okN := archRank[need]
	if !okA || !okN {
		return false, false
	}
	return rn <= ra, true
}

// ThumbImplied is the Thumb ISA an architecture has: Thumb-2 from v6T2 on.
func (a Arch) ThumbImplied() Thumb {
	if r, ok := archRank[a]; ok && r >= archRank[ArchV6T2] {
		return Thumb2
	}
	return Thumb1
}

// ParseArch reads an architecture name: the tag spelling (v6KZ, v7, v8-A),
// optionally with an ARM/arm prefix (ARMv7, armv8-a), case-insensitive.
func ParseArch(s string) (Arch, error) {
	t := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "arm")
	for i, name := range archTags {
		if strings.ToLower(name) == t {
			return Arch(i), nil
		}
	}
	switch t {
	case "v8", "v8a":
		return ArchV8A, nil
	case "v9":
		return ArchV9A, nil
	}
	return 0, fmt.Errorf("unknown architecture %q; expected one of %s", s, strings.Join(archTags[:], ", "))
}

// FP is a Tag_FP_arch value: the floating-point unit.
type FP uint8

// Tag_FP_arch values.
const (
	FPNone     FP = 0
	FPVFPv1    FP = 1
	FPVFPv2    FP = 2
	FPVFPv3    FP = 3 // 32 double registers
	FPVFPv3D16 FP = 4
	FPVFPv4    FP = 5 // 32 double registers
	FPVFPv4D16 FP = 6
	FPARMv8    FP = 7 // 32 double registers
	FPARMv8D16 FP = 8
)

var fpNames = [...]string{"none", "VFPv1", "VFPv2", "VFPv3", "VFPv3-D16", "VFPv4", "VFPv4-D16", "FP-ARMv8", "FP-ARMv8-D16"}

func (f FP) String() string {
	if int(f) < len(fpNames) {
		return fpNames[f]
	}
	return fmt.Sprintf("unknown FP (%d)", uint8(f))
}

// version orders the FP architectures; d32 says whether the 32 double
// registers D16-D31 are there (VFPv1/v2 and the -D16 variants have 16).
func (f FP) version() (v int, d32 bool) {
	switch f {
	case FPNone:
		return 0, false
	case FPVFPv1:
		return 1, false
	case FPVFPv2:
		return 2, false
	case FPVFPv3:
		return 3, true
	case FPVFPv3D16:
		return 3, false
	case FPVFPv4:
		return 4, true
	case FPVFPv4D16:
		return 4, false
	case FPARMv8:
		return 5, true
	case FPARMv8D16:
		return 5, false
	}
	return -1, false
}

// Includes reports whether an FPU f runs code built for need (same or
// older version, and the 32 registers when need uses them). ok is false for
// unknown values.
func (f FP) Includes(need FP) (includes, ok bool) {
	vf, df := f.version()
	vn, dn := need.version()
	if vf < 0 || vn < 0 {
		return false, false
	}
	return vn <= vf && (!dn || df), true
}

// ParseFP reads an FP architecture name (VFPv2, VFPv3-D16, VFPv4, FP-ARMv8,
// none), case-insensitive.
func ParseFP(s string) (FP, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for i, name := range fpNames {
		if strings.ToLower(name) == t {
			return FP(i), nil
		}
	}
	return 0, fmt.Errorf("unknown FP architecture %q; expected one of %s", s, strings.Join(fpNames[:], ", "))
}

// SIMD is a Tag_Advanced_SIMD_arch value.
type SIMD uint8

// Tag_Advanced_SIMD_arch values.
const (
	SIMDNone   SIMD = 0
	SIMDNEONv1 SIMD = 1
	SIMDNEONv2 SIMD = 2 // NEONv1 with fused multiply-add
	SIMDARMv8  SIMD = 3
	SIMDARMv81 SIMD = 4
	simdCount  SIMD = 5
)

var simdNames = [...]string{"none", "NEONv1", "NEONv2", "ARMv8 NEON", "ARMv8.1 NEON"}

func (s SIMD) String() string {
	if int(s) < len(simdNames) {
		return simdNames[s]
	}
	return fmt.Sprintf("unknown SIMD (%d)", uint8(s))
}

// Human is the short name used in messages ("NEON" for NEONv1).
func (s SIMD) Human() string {
	if s == SIMDNEONv1 {
		return "NEON"
	}
	return s.String()
}

// Includes reports whether a SIMD unit s runs code built for need.
func (s SIMD) Includes(need SIMD) (includes, ok bool) {
	if s >= simdCount || need >= simdCount {
		return false, false
	}
	return need <= s, true
}

// ParseSIMD reads a SIMD name (none, NEONv1 or NEON, NEONv2, "ARMv8 NEON",
// "ARMv8.1 NEON"), case-insensitive.
func ParseSIMD(s string) (SIMD, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "neon" {
		return SIMDNEONv1, nil
	}
	for i, name := range simdNames {
		if strings.ToLower(name) == t || strings.ReplaceAll(strings.ToLower(name), " ", "-") == t {
			return SIMD(i), nil
		}
	}
	return 0, fmt.Errorf("unknown SIMD architecture %q; expected one of %s", s, strings.Join(simdNames[:], ", "))
}

// Thumb is a Tag_THUMB_ISA_use value.
type Thumb uint8

// Tag_THUMB_ISA_use values.
const (
	ThumbNone Thumb = 0
	Thumb1    Thumb = 1 // 16-bit Thumb only
	Thumb2    Thumb = 2 // 32-bit Thumb instructions allowed
	// ThumbArch (3) means "Thumb as the architecture has it" (newer
	// toolchains); compare it through Arch.ThumbImplied.
	ThumbArch Thumb = 3
)

func (t Thumb) String() string {
	switch t {
	case ThumbNone:
		return "none"
	case Thumb1:
		return "Thumb-1"
	case Thumb2:
		return "Thumb-2"
	case ThumbArch:
		return "Thumb (as the architecture has it)"
	}
	return fmt.Sprintf("unknown Thumb (%d)", uint8(t))
}

// ParseThumb reads Thumb-1, Thumb-2 or none.
func ParseThumb(s string) (Thumb, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "no":
		return ThumbNone, nil
	case "thumb-1", "thumb1", "thumb":
		return Thumb1, nil
	case "thumb-2", "thumb2":
		return Thumb2, nil
	}
	return 0, fmt.Errorf("unknown Thumb ISA %q; expected Thumb-1, Thumb-2 or none", s)
}

// ISA is what a CPU executes (a board) or what code was built to use (an
// ELF file's build attributes).
type ISA struct {
	// Arch is the 32-bit (AArch32) architecture.
	Arch  Arch  `json:"arch"`
	FP    FP    `json:"fp"`
	SIMD  SIMD  `json:"simd"`
	Thumb Thumb `json:"thumb"`
	// IDiv is the integer divide instructions in ARM state (Tag_DIV_use 2;
	// the virtualization extensions of Cortex-A7/A15, and every ARMv8).
	IDiv bool `json:"idiv,omitempty"`
	// AArch64 is the 64-bit architecture version ("v8.0", "v8.2") of a
	// CPU that has one; empty for 32-bit-only CPUs and for ELF needs.
	AArch64 string `json:"aarch64,omitempty"`
}

// Summary names what code needs the way the messages do: "ARMv7
// (Thumb-2, VFPv3, NEON)".
func (i ISA) Summary() string {
	var parts []string
	if i.Thumb == Thumb2 {
		parts = append(parts, "Thumb-2")
	}
	return i.summary(parts, true)
}

// CPUSummary names what a CPU has: "ARMv6 (ARM1176JZF-S, VFPv2)".
func (i ISA) CPUSummary(cpu string) string {
	return i.summary([]string{cpu}, false)
}

func (i ISA) summary(parts []string, idiv bool) string {
	if i.FP != FPNone {
		parts = append(parts, i.FP.String())
	}
	if i.SIMD != SIMDNone {
		parts = append(parts, i.SIMD.Human())
	}
	if i.IDiv && idiv {
		parts = append(parts, "integer divide")
	}
	if len(parts) == 0 {
		return i.Arch.Human()
	}
	return i.Arch.Human() + " (" + strings.Join(parts, ", ") + ")"
}

// Missing lists what code built for need uses that a CPU with ISA has
// not, in a person's words ("ARMv7", "Thumb-2", "VFPv3", "NEON"); empty
// when it runs. Unknown values (an attribute newer than this table) are
// listed as "unknown ..." so that they are never taken as a pass silently.
func (has ISA) Missing(need ISA) []string {
	var miss []string
	if ok, known := has.Arch.Includes(need.Arch); !known {
		miss = append(miss, "architecture "+need.Arch.String()+" (cannot compare with "+has.Arch.String()+")")
	} else if !ok {
		miss = append(miss, need.Arch.Human())
	}
	needThumb := need.Thumb
	if needThumb == ThumbArch {
		needThumb = need.Arch.ThumbImplied()
	}
	hasThumb := has.Thumb
	if hasThumb == ThumbArch {
		hasThumb = has.Arch.ThumbImplied()
	}
	if needThumb > ThumbArch {
		miss = append(miss, needThumb.String())
	} else if needThumb > hasThumb {
		miss = append(miss, needThumb.String())
	}
	if ok, known := has.FP.Includes(need.FP); !known || !ok {
		miss = append(miss, need.FP.String())
	}
	if ok, known := has.SIMD.Includes(need.SIMD); !known || !ok {
		miss = append(miss, need.SIMD.Human())
	}
	if need.IDiv && !has.IDiv {
		miss = append(miss, "integer divide")
	}
	return miss
}

// Text forms, so that profiles read well as JSON ("v6KZ", "VFPv2").

func (a Arch) MarshalText() ([]byte, error) { return []byte(a.String()), nil }
func (a *Arch) UnmarshalText(b []byte) (err error) {
	*a, err = ParseArch(string(b))
	return err
}
func (f FP) MarshalText() ([]byte, error) { return []byte(f.String()), nil }
func (f *FP) UnmarshalText(b []byte) (err error) {
	*f, err = ParseFP(string(b))
	return err
}
func (s SIMD) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
func (s *SIMD) UnmarshalText(b []byte) (err error) {
	*s, err = ParseSIMD(string(b))
	return err
}
func (t Thumb) MarshalText() ([]byte, error) { return []byte(t.String()), nil }
func (t *Thumb) UnmarshalText(b []byte) (err error) {
	if string(b) == ThumbArch.String() {
		*t = ThumbArch
		return nil
	}
	*t, err = ParseThumb(string(b))
	return err
}
