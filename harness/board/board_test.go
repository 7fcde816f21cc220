package board

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestLookupNamesAliasesAndWordSizes(t *testing.T) {
	c := Builtin()
	for _, tc := range []struct {
		spec, name, platform string
		bits                 int
	}{
		{"pi0w", "pi0w", "linux/arm/v6", 32},
		{"pi0", "pi0w", "linux/arm/v6", 32},
		{"pi1", "pi1", "linux/arm/v6", 32},
		{"pi2", "pi2", "linux/arm/v7", 32},
		{"PI3", "pi3b+", "linux/arm64/v8", 64},
		{"pi3b+/32", "pi3b+", "linux/arm/v7", 32},
		{"pi02w/32", "pi02w", "linux/arm/v7", 32},
		{"pi4/64", "pi4", "linux/arm64/v8", 64},
		{"pi4-1g", "pi4", "linux/arm64/v8", 64},
		{"pi4-8g/32", "pi4-8g", "linux/arm/v7", 32},
		{"pi5", "pi5", "linux/arm64/v8", 64},
		{"virt", "virt", "linux/arm/v7", 32},
	} {
		b, err := c.Lookup(tc.spec)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", tc.spec, err)
		}
		if b.Name != tc.name || b.Bits != tc.bits || b.Platform() != tc.platform {
			t.Errorf("Lookup(%q) = %s %d-bit %s, want %s %d-bit %s", tc.spec, b.Name, b.Bits, b.Platform(), tc.name, tc.bits, tc.platform)
		}
	}
	if b, _ := c.Lookup("pi4-8g"); b.MemoryMiB != 8192 {
		t.Errorf("pi4-8g has %d MiB", b.MemoryMiB)
	}
	if b, _ := c.Lookup("pi4"); b.MemoryMiB != 1024 {
		t.Errorf("pi4 (the smallest variant) has %d MiB", b.MemoryMiB)
	}
}

func TestLookupRefusals(t *testing.T) {
	c := Builtin()
	_, err := c.Lookup("pi9")
	var unk *UnknownBoardError
	if !errors.As(err, &unk) {
		t.Fatalf("unknown board: %v", err)
	}
	for _, s := range []string{`"pi9"`, "pi0w (pi0)", "pi3b+ (pi3, pi3b)", "pi4", "pi5", "virt"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not list %s", err, s)
		}
	}
	if _, err := c.Lookup("pi0w/64"); err == nil || !strings.Contains(err.Error(), "no 64-bit OS") {
		t.Errorf("pi0w/64: %v", err)
	}
	if _, err := c.Lookup("pi3/16"); err == nil || !strings.Contains(err.Error(), "32 or 64") {
		t.Errorf("pi3/16: %v", err)
	}
	bs, err := c.LookupList("pi0w,pi3b+", "pi0", " pi3b+/32")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range bs {
		names = append(names, b.String())
	}
	if want := []string{"pi0w", "pi3b+", "pi3b+/32"}; !reflect.DeepEqual(names, want) {
		t.Errorf("LookupList = %v, want %v (each board once, in order)", names, want)
	}
}

func TestBoardISAFacts(t *testing.T) {
	c := Builtin()
	pi0, _ := c.Lookup("pi0w")
	if got := pi0.ISA.CPUSummary(pi0.CPU); got != "ARMv6 (ARM1176JZF-S, VFPv2)" {
		t.Errorf("pi0w ISA summary %q", got)
	}
	if pi0.OSInfo().System.Unsupported == "" || pi0.OSInfo().User.CPU != "arm1176" {
		t.Errorf("pi0w targets: %+v", pi0.OSInfo())
	}
	pi2, _ := c.Lookup("pi2")
	if s := pi2.OSInfo().System; s.Emulator != "qemu-system-arm" || s.CPU != "cortex-a7" || s.Kernel != "armhf" {
		t.Errorf("pi2 system target: %+v", s)
	}
	pi3, _ := c.Lookup("pi3b+/32")
	if s := pi3.OSInfo().System; s.Emulator != "qemu-system-aarch64" || s.CPU != "cortex-a53" || s.Kernel != "arm64" || !s.Linux32 {
		t.Errorf("pi3b+/32 system target: %+v", s)
	}
	if u := pi3.OSInfo().User; u.Emulator != "qemu-arm" || u.CPU != "max" {
		t.Errorf("pi3b+/32 user target: %+v", u)
	}
	for _, p := range c.Profiles() {
		for bits, o := range p.OS {
			if o.System.Unsupported == "" && (o.System.Emulator == "" || o.System.CPU == "" || o.System.Kernel == "") {
				t.Errorf("%s/%d: incomplete system target %+v", p.Name, bits, o.System)
			}
			if o.User.Emulator == "" {
				t.Errorf("%s/%d: no qemu-user emulator", p.Name, bits)
			}
		}
		if _, ok := p.OS[p.DefaultOS]; !ok {
			t.Errorf("%s: default OS %d not in its OS list", p.Name, p.DefaultOS)
		}
	}
}

func TestISAMissing(t *testing.T) {
	libc := ISA{Arch: ArchV7, FP: FPVFPv3, SIMD: SIMDNEONv1, Thumb: Thumb2}
	if got := libc.Summary(); got != "ARMv7 (Thumb-2, VFPv3, NEON)" {
		t.Errorf("summary %q", got)
	}
	if got := isaARM1176.Missing(libc); !reflect.DeepEqual(got, []string{"ARMv7", "Thumb-2", "VFPv3", "NEON"}) {
		t.Errorf("ARM1176 missing %v", got)
	}
	for _, has := range []ISA{isaCortexA7, isaCortexA53, isaCortexA76} {
		if got := has.Missing(libc); len(got) != 0 {
			t.Errorf("%+v cannot run Debian armhf libc: %v", has, got)
		}
	}
	armel := ISA{Arch: ArchV5TE, Thumb: Thumb1}
	if got := isaARM1176.Missing(armel); len(got) != 0 {
		t.Errorf("ARM1176 cannot run armel (v5TE soft-float): %v", got)
	}
	// VFPv3-D16 code runs on VFPv2? No: VFPv3 instructions (vmov imm).
	if got := isaARM1176.Missing(ISA{Arch: ArchV6, FP: FPVFPv3D16}); !reflect.DeepEqual(got, []string{"VFPv3-D16"}) {
		t.Errorf("VFPv3-D16 on VFPv2: %v", got)
	}
	// 32 registers are missing on a D16 unit even at the same version.
	if got := (ISA{Arch: ArchV7, FP: FPVFPv3D16}).Missing(ISA{Arch: ArchV7, FP: FPVFPv3}); !reflect.DeepEqual(got, []string{"VFPv3"}) {
		t.Errorf("VFPv3 (D32) on VFPv3-D16: %v", got)
	}
	// ARMv8 AArch32 code (-march=armv8-a+crc) on a Pi 2.
	v8 := ISA{Arch: ArchV8A, FP: FPARMv8, SIMD: SIMDARMv8, Thumb: Thumb2}
	if got := isaCortexA7.Missing(v8); !reflect.DeepEqual(got, []string{"ARMv8-A", "FP-ARMv8", "ARMv8 NEON"}) {
		t.Errorf("v8 on Cortex-A7: %v", got)
	}
	if got := isaCortexA53.Missing(v8); len(got) != 0 {
		t.Errorf("v8 on Cortex-A53: %v", got)
	}
	// v6T2 (Thumb-2) is beyond an ARM1176 although its tag value is lower
	// than v6K's.
	if got := isaARM1176.Missing(ISA{Arch: ArchV6T2, Thumb: ThumbArch}); !reflect.DeepEqual(got, []string{"ARMv6T2", "Thumb-2"}) {
		t.Errorf("v6T2 on ARM1176: %v", got)
	}
	if got := isaARM1176.Missing(ISA{Arch: ArchV6K}); len(got) != 0 {
		t.Errorf("v6K on ARM1176 (v6KZ): %v", got)
	}
	if got := isaARM1176.Missing(ISA{Arch: ArchV5TE, IDiv: true}); !reflect.DeepEqual(got, []string{"integer divide"}) {
		t.Errorf("idiv on ARM1176: %v", got)
	}
	// An M-profile or unknown value is never a silent pass.
	if got := isaCortexA76.Missing(ISA{Arch: ArchV7EM}); len(got) != 1 || !strings.Contains(got[0], "cannot compare") {
		t.Errorf("v7E-M: %v", got)
	}
	if got := isaCortexA76.Missing(ISA{Arch: ArchV7, FP: FP(42)}); len(got) != 1 || !strings.Contains(got[0], "unknown") {
		t.Errorf("unknown FP: %v", got)
	}
}

func platformsOf(ss ...string) []v1.Platform {
	var out []v1.Platform
	for _, s := range ss {
		p, err := v1.ParsePlatform(s)
		if err != nil {
			panic(err)
		}
		out = append(out, *p)
	}
	return out
}

func TestPickFollowsContainerdFallbacks(t *testing.T) {
	c := Builtin()
	sample := platformsOf("linux/arm/v7", "linux/amd64")
	withArmel := platformsOf("linux/amd64", "linux/arm/v5", "linux/arm/v7", "linux/arm64")
	for _, tc := range []struct {
		board string
		index []v1.Platform
		want  string
	}{
		{"pi2", sample, "linux/arm/v7"},
		{"pi3b+/32", sample, "linux/arm/v7"},
		// A 64-bit Pi falls back to 32-bit manifests, as Docker does.
		{"pi4/64", sample, "linux/arm/v7"},
		{"pi4/64", withArmel, "linux/arm64"},
		{"pi3b+/32", withArmel, "linux/arm/v7"},
		// v6 takes v5 (armel), never v7.
		{"pi0w", withArmel, "linux/arm/v5"},
		{"pi0w", platformsOf("linux/arm/v5", "linux/arm/v6"), "linux/arm/v6"},
		// "linux/arm" without a variant is v7.
		{"pi2", platformsOf("linux/arm"), "linux/arm"},
	} {
		b, err := c.Lookup(tc.board)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Pick(tc.index)
		if err != nil {
			t.Errorf("%s: %v", tc.board, err)
			continue
		}
		if got.String() != tc.want {
			t.Errorf("%s picks %s from %v, want %s", tc.board, got.String(), tc.index, tc.want)
		}
	}
	pi0, _ := c.Lookup("pi0w")
	_, err := pi0.Pick(sample)
	var nm *NoManifestError
	if !errors.As(err, &nm) {
		t.Fatalf("pi0w on an armv7-only index: %v", err)
	}
	for _, s := range []string{"pi0w (Raspberry Pi Zero W)", "linux/arm/v6", "linux/arm/v5", "the index has linux/arm/v7, linux/amd64"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("refusal %q does not say %q", err, s)
		}
	}
	pi4, _ := c.Lookup("pi4/64")
	if got := pi4.Accepts(); !reflect.DeepEqual(got, []string{"linux/arm64/v8", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"}) {
		t.Errorf("pi4/64 accepts %v", got)
	}
}

const goodProfiles = `boards:
  - name: acme-a7
    aliases: [acme]
    model: Acme A7 gateway
    cpu: Cortex-A7
    cores: 2
    memory: 256MiB
    isa: {arch: v7, fp: VFPv4, simd: NEONv2, idiv: true}
    os:
      32:
        platform: linux/arm/v7
        system: {emulator: qemu-system-arm, machine: virt, cpu: cortex-a7, kernel: armhf}
        user: {emulator: qemu-arm, cpu: cortex-a7}
  - name: acme-a53
    model: Acme A53
    cpu: Cortex-A53
    memory: 2GiB
    isa: {arch: v8-A, fp: FP-ARMv8, simd: ARMv8 NEON, idiv: true, aarch64: v8.0}
    default_os: 64
    os:
      32:
        platform: linux/arm/v7
        system: {unsupported: "no 32-bit kernel here"}
        user: {emulator: qemu-arm, cpu: max}
      64:
        platform: linux/arm64/v8
        system: {emulator: qemu-system-aarch64, machine: virt, cpu: cortex-a53, kernel: arm64}
        user: {emulator: qemu-aarch64, cpu: cortex-a53}
`

func TestProfileFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "boards.yaml")
	if err := os.WriteFile(path, []byte(goodProfiles), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Builtin().WithFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Lookup("acme")
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "acme-a7" || b.MemoryMiB != 256 || b.ISA.Thumb != Thumb2 || b.Bits != 32 || b.Source != path+":2" {
		t.Errorf("acme: %+v %+v", b.Profile, b.ISA)
	}
	b, err = c.Lookup("acme-a53")
	if err != nil || b.Bits != 64 || b.MemoryMiB != 2048 || b.ISA.SIMD != SIMDARMv8 {
		t.Errorf("acme-a53: %+v %v", b, err)
	}
	if _, err := c.Lookup("pi3"); err != nil {
		t.Errorf("the built-in boards are still there: %v", err)
	}
	if _, err := Builtin().Lookup("acme"); err == nil {
		t.Error("WithFile changed the built-in catalog")
	}
}

func TestProfileFileErrorsHaveFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", strings.Replace(goodProfiles, "    cores: 2\n", "    cores: 2\n    colour: red\n", 1),
			[]string{"b.yaml:7: ", `unknown key "colour"`}},
		{"bad arch", strings.Replace(goodProfiles, "arch: v7,", "arch: v77,", 1),
			[]string{"b.yaml:8: ", `unknown architecture "v77"`}},
		{"taken name", strings.Replace(goodProfiles, "name: acme-a53", "name: pi3", 1),
			[]string{"b.yaml:14: ", `"pi3" is already used by the profile pi3b+`}},
		{"64 without aarch64", strings.Replace(goodProfiles, ", aarch64: v8.0", "", 1),
			[]string{"b.yaml:25: ", "64-bit OS needs a CPU with AArch64"}},
		{"wrong platform", strings.Replace(goodProfiles, "platform: linux/arm64/v8", "platform: linux/arm/v7", 1),
			[]string{"b.yaml:26: ", "a 64-bit OS asks for linux/arm64"}},
		{"no default", strings.Replace(goodProfiles, "    default_os: 64\n", "", 1),
			[]string{"say which is the default"}},
		{"not yaml", "boards: [\n", []string{"b.yaml:1: did not find"}},
		{"empty", "", []string{"empty profile file"}},
		{"no model", strings.Replace(goodProfiles, "    model: Acme A7 gateway\n", "", 1),
			[]string{"b.yaml:2: ", "has no model"}},
		{"bad memory", strings.Replace(goodProfiles, "256MiB", "lots", 1),
			[]string{"b.yaml:7: ", "memory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Builtin().WithProfiles("b.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestISAJSONRoundTrip(t *testing.T) {
	for _, p := range Builtin().Profiles() {
		b, err := json.Marshal(p.ISA)
		if err != nil {
			t.Fatal(err)
		}
		var back ISA
		if err := json.Unmarshal(b, &back); err != nil || back != p.ISA {
			t.Errorf("%s: %s gives %+v, %v", p.Name, b, back, err)
		}
	}
	b, _ := json.Marshal(isaARM1176)
	if string(b) != `{"arch":"v6KZ","fp":"VFPv2","simd":"none","thumb":"Thumb-1"}` {
		t.Errorf("JSON %s", b)
	}
}
