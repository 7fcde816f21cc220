package startup

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/board"
)

func lookupBoard(t testing.TB, name string) *board.Board {
	t.Helper()
	b, err := board.Builtin().Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return &b
}

// attrsOf reads the build attributes of a testdata ELF.
func attrsOf(t *testing.T, name string) armAttributes {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "elf", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	a, err := readARMAttributes(f, fi.Size(), binary.LittleEndian)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return a
}

// The parser agrees with what readelf -A printed for the committed files
// (testdata/gen.sh builds them with Debian's armhf cross compiler).
func TestReadARMAttributes(t *testing.T) {
	for _, tc := range []struct {
		file string
		want board.ISA
		cpu  string
	}{
		{"app-bar", board.ISA{Arch: board.ArchV7, FP: board.FPVFPv3D16, Thumb: board.Thumb2}, "7-A"},
		{"app-armv6", board.ISA{Arch: board.ArchV6KZ, FP: board.FPVFPv2, Thumb: board.Thumb1}, "6KZ"},
		{"app-armv8", board.ISA{Arch: board.ArchV8A, FP: board.FPARMv8, SIMD: board.SIMDARMv8, Thumb: board.Thumb2}, "8-A"},
		{"app-armel", board.ISA{Arch: board.ArchV5TE, Thumb: board.Thumb1}, "5TE"},
	} {
		a := attrsOf(t, tc.file)
		if !a.Present || a.Need != tc.want || a.CPUName != tc.cpu {
			t.Errorf("%s: %+v (cpu %q), want %+v (cpu %q)", tc.file, a.Need, a.CPUName, tc.want, tc.cpu)
		}
	}
}

func TestParseARMAttributesDamaged(t *testing.T) {
	good := []byte("A\x11\x00\x00\x00aeabi\x00\x01\x07\x00\x00\x00\x06\x0a")
	a, err := parseARMAttributes(good, binary.LittleEndian)
	if err != nil || a.Need.Arch != board.ArchV7 {
		t.Fatalf("minimal section: %+v %v", a, err)
	}
	for name, b := range map[string][]byte{
		"version":        []byte("B"),
		"short length":   []byte("A\x05\x00"),
		"length too big": []byte("A\xff\x00\x00\x00aeabi\x00"),
		"no vendor end":  []byte("A\x09\x00\x00\x00aeabi"),
		"scope too big":  []byte("A\x11\x00\x00\x00aeabi\x00\x01\xff\x00\x00\x00\x06\x0a"),
		"bad scope":      []byte("A\x11\x00\x00\x00aeabi\x00\x09\x07\x00\x00\x00\x06\x0a"),
		"string open":    []byte("A\x13\x00\x00\x00aeabi\x00\x01\x09\x00\x00\x00\x05\x37\x41"),
		"leb overflow":   []byte("A\x1b\x00\x00\x00aeabi\x00\x01\x11\x00\x00\x00\x06\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"),
	} {
		if _, err := parseARMAttributes(b, binary.LittleEndian); err == nil {
			t.Errorf("%s: accepted % x", name, b)
		} else if _, ok := err.(*attrError); !ok {
			t.Errorf("%s: error of type %T", name, err)
		}
	}
	// Another vendor's subsection is skipped, not misread.
	gnu := []byte("A\x0b\x00\x00\x00gnu\x00\x01\x02\x03")
	if a, err := parseARMAttributes(append(gnu, good[1:]...), binary.LittleEndian); err != nil || !a.Present || a.Need.Arch != board.ArchV7 {
		t.Errorf("gnu then aeabi: %+v %v", a, err)
	}
}

// FuzzParseARMAttributes feeds damaged attribute sections to the parser:
// it must never panic and must return *attrError for what it refuses.
// Seeds: the sections of the committed ARM ELFs.
// Run: go test ./harness/startup -run '^$' -fuzz FuzzParseARMAttributes -fuzztime 60s
func FuzzParseARMAttributes(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "elf", "*"))
	for _, s := range seeds {
		ef, err := elf.Open(s)
		if err != nil {
			continue
		}
		for _, sec := range ef.Sections {
			if sec.Type == shtARMAttributes {
				if b, err := sec.Data(); err == nil {
					f.Add(b)
				}
			}
		}
		ef.Close()
	}
	f.Add([]byte("A\x11\x00\x00\x00aeabi\x00\x02\x09\x00\x00\x00\x01\x00\x06\x0a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := parseARMAttributes(data, binary.LittleEndian)
		if err != nil {
			if _, ok := err.(*attrError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		// Whatever it read must compare and print without trouble.
		for _, b := range board.Builtin().Profiles() {
			b.ISA.Missing(a.Need)
		}
		_ = a.Need.Summary()
	})
}

// FuzzReadARMAttributes feeds damaged ELF files through the section
// header walk that finds the attributes.
func FuzzReadARMAttributes(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "elf", "app-*"))
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 52 {
			return
		}
		_, err := readARMAttributes(bytes.NewReader(data), int64(len(data)), binary.LittleEndian)
		if err != nil {
			if _, ok := err.(*attrError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
		}
	})
}

func TestBoardISA(t *testing.T) {
	root := mkroot(t, with(armhfBase(), map[string]file{
		"/opt/app":                         elfFile("app-bar"),
		"/usr/lib/libbar.so.2":             elfFile("libbar-armhf.so"),
		"/opt/armv6":                       elfFile("app-armv6"),
		"/opt/armv8":                       elfFile("app-armv8"),
		"/opt/armel":                       elfFile("app-armel"),
		"/usr/lib/ld-linux.so.3":           elfFile("ld-armel-stub.so"),
		"/usr/bin/dash":                    elfFile("app-static"),
		"/bin/sh":                          symlink("/usr/bin/dash"),
		"/opt/x86":                         elfFile("libbar-amd64.so"),
		"/opt/aarch64":                     elfFile("libbar-arm64.so"),
		"/usr/lib/arm-linux-gnueabi/.keep": {data: ""},
	}))
	run := func(board, platform string, argv ...string) *Report {
		t.Helper()
		return check(t, root, Config{Platform: platform, Entrypoint: argv, Board: lookupBoard(t, board)})
	}

	t.Run("armv7 closure on a Pi Zero", func(t *testing.T) {
		r := run("pi0w", "linux/arm/v7", "/opt/app")
		p := wantProblem(t, r, KindISA, "app, ld-linux-armhf.so.3, libbar.so.2, libc.so.6 need ARMv7 (Thumb-2, VFPv3-D16)",
			"a pi0w (Raspberry Pi Zero W) has ARMv6 (ARM1176JZF-S, VFPv2): the board kills them with SIGILL")
		if len(p.Objects) != 4 || p.Object != "/opt/app" {
			t.Errorf("objects %v (object %q)", p.Objects, p.Object)
		}
		if r.Board != "pi0w" || r.Program.ISA != "ARMv7 (Thumb-2, VFPv3-D16)" {
			t.Errorf("board %q, program ISA %q", r.Board, r.Program.ISA)
		}
	})
	for _, b := range []string{"pi2", "pi3b+/32", "pi4", "pi5", "virt"} {
		t.Run("armv7 on "+b, func(t *testing.T) {
			wantOK(t, run(b, "linux/arm/v7", "/opt/app"))
		})
	}
	t.Run("armv6 on a Pi Zero", func(t *testing.T) { wantOK(t, run("pi0w", "linux/arm/v6", "/opt/armv6")) })
	t.Run("armv8 AArch32 on a Pi 2", func(t *testing.T) {
		wantProblem(t, run("pi2", "linux/arm/v7", "/opt/armv8"), KindISA,
			"armv8 needs ARMv8-A (Thumb-2, FP-ARMv8, ARMv8 NEON); a pi2 (Raspberry Pi 2 Model B) has ARMv7 (Cortex-A7, VFPv4, NEONv2)")
	})
	t.Run("armv8 AArch32 on a Pi 3", func(t *testing.T) { wantOK(t, run("pi3b+/32", "linux/arm/v7", "/opt/armv8")) })
	t.Run("armel on a Pi Zero", func(t *testing.T) {
		// linux/arm/v6 takes Debian's armel: soft-float, /lib/ld-linux.so.3.
		r := run("pi0w", "linux/arm/v6", "/opt/armel")
		wantOK(t, r)
		if r.Interpreter == nil || r.Interpreter.Path != "/lib/ld-linux.so.3" {
			t.Errorf("loader %+v", r.Interpreter)
		}
	})
	t.Run("armel is arm/v5 too", func(t *testing.T) { wantOK(t, run("pi0w", "linux/arm/v5", "/opt/armel")) })
	t.Run("hard-float is not arm/v5", func(t *testing.T) {
		wantProblem(t, run("pi2", "linux/arm/v5", "/opt/app"), KindWrongArch, "soft-float")
	})
	t.Run("shell-form programs are held to the board too", func(t *testing.T) {
		r := run("pi2", "linux/arm/v7", "/bin/sh", "-c", "/opt/armv8")
		// The shell (v7) fits a Pi 2; the program the string runs does not.
		wantProblem(t, r, KindISA, "armv8 needs ARMv8-A")
		r = run("pi0w", "linux/arm/v7", "/bin/sh", "-c", "/opt/armv8")
		if len(r.Problems) != 2 || !strings.HasPrefix(r.Problems[0].Message, "sh needs ARMv7") || !strings.HasPrefix(r.Problems[1].Message, "armv8 needs ARMv8-A") {
			t.Errorf("want one problem per need, the shell's first:\n%s", text(t, r))
		}
	})
	t.Run("x86 program on a Pi", func(t *testing.T) {
		wantProblem(t, run("pi3b+", "linux/amd64", "/opt/x86"), KindWrongArch, "x86-64 64-bit; a pi3b+ (Raspberry Pi 3 Model B+, 64-bit OS) runs ARM code only")
	})
	t.Run("AArch64 on a 32-bit-only Pi", func(t *testing.T) {
		wantProblem(t, run("pi2", "linux/arm64", "/opt/aarch64"), KindWrongArch, "has a 32-bit CPU (Cortex-A7)")
	})
}

// Build attributes are the most a file may use: a distribution library
// that checks the CPU at run time is not refused when its loader fits the
// board; one that does not check is.
func TestBoardISARuntimeDispatch(t *testing.T) {
	rootWith := func(lib string) string {
		return mkroot(t, with(armhfBase(), map[string]file{
			"/opt/app": elfFile("app-bar"),
			"/usr/lib/arm-linux-gnueabihf/libbar.so.2": elfFile(lib),
		}))
	}
	cfg := func(b string) Config {
		return Config{Platform: "linux/arm/v7", Entrypoint: []string{"/opt/app"}, Board: lookupBoard(t, b)}
	}
	plain, dispatch := rootWith("libbar-armv8.so"), rootWith("libbar-armv8-dispatch.so")

	wantProblem(t, check(t, plain, cfg("pi2")), KindISA, "libbar.so.2 needs ARMv8-A", "a pi2 (Raspberry Pi 2 Model B) has ARMv7")
	r := check(t, dispatch, cfg("pi2"))
	wantOK(t, r)
	if !strings.Contains(strings.Join(r.Notes, "\n"), "libbar.so.2 says it may use ARMv8-A") || !strings.Contains(strings.Join(r.Notes, "\n"), "imports getauxval") {
		t.Errorf("no note about the run-time dispatch: %v", r.Notes)
	}
	wantOK(t, check(t, plain, cfg("pi3b+/32")))
	// On a Pi Zero the loader itself does not fit: no benefit of the doubt.
	r = check(t, dispatch, cfg("pi0w"))
	if len(r.Problems) != 2 || !strings.Contains(r.Problems[1].Message, "libbar.so.2 needs ARMv8-A") {
		t.Errorf("pi0w:\n%s", text(t, r))
	}
}

func TestGOARMNeeds(t *testing.T) {
	for _, tc := range []struct {
		goarm string
		want  board.ISA
	}{
		{"5", board.ISA{Arch: board.ArchV5T}},
		{"6", board.ISA{Arch: board.ArchV6, FP: board.FPVFPv1}},
		{"7", board.ISA{Arch: board.ArchV7, FP: board.FPVFPv3D16}},
		{"7,softfloat", board.ISA{Arch: board.ArchV7}},
		{"6,hardfloat", board.ISA{Arch: board.ArchV6, FP: board.FPVFPv1}},
	} {
		got, ok := goarmNeed(tc.goarm)
		if !ok || got != tc.want {
			t.Errorf("GOARM=%s: %+v %v, want %+v", tc.goarm, got, ok, tc.want)
		}
	}
	if _, ok := goarmNeed("8"); ok {
		t.Error("GOARM=8 accepted")
	}
	pi0 := lookupBoard(t, "pi0w")
	if m := pi0.ISA.Missing(board.ISA{Arch: board.ArchV6, FP: board.FPVFPv1}); len(m) != 0 {
		t.Errorf("GOARM=6 on a Pi Zero: %v", m)
	}
	if !aarch64Less("v8.0", "v8.2") || aarch64Less("v8.2", "v8.2") || aarch64Less("v9.0", "v8.9") || aarch64Less("x", "v8.0") {
		t.Error("aarch64Less")
	}
}
