package startup

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunpathOrigin(t *testing.T) {
	root := mkroot(t, with(armhfBase(), map[string]file{
		"/opt/app/bin/app":         elfFile("app-runpath"),
		"/opt/app/lib/libfoo.so.1": elfFile("libfoo-v2.so"),
		// $ORIGIN of the executable is the directory of its real path, so
		// starting it through a symlink elsewhere still finds ../lib.
		"/usr/bin/app": symlink("../../opt/app/bin/app"),
	}))
	r := check(t, root, Config{Cmd: []string{"app", "--iface", "eth0"}})
	wantOK(t, r)
	foo := findLib(r.Program, "libfoo.so.1")
	if foo == nil || foo.Path != "/opt/app/lib/libfoo.so.1" || foo.Via != "RUNPATH of app" {
		t.Fatalf("libfoo.so.1 resolved to %+v, want /opt/app/lib/libfoo.so.1 via RUNPATH", foo)
	}
	if r.Program.RealPath != "/opt/app/bin/app" || r.Program.Path != "/usr/bin/app" {
		t.Errorf("program = %s (real %s), want /usr/bin/app -> /opt/app/bin/app", r.Program.Path, r.Program.RealPath)
	}
	libc := findLib(r.Program, "libc.so.6")
	if libc == nil || libc.Path != "/lib/arm-linux-gnueabihf/libc.so.6" || libc.RealPath != "/usr/lib/arm-linux-gnueabihf/libc.so.6" || libc.Via != "default path" {
		t.Errorf("libc.so.6 resolved to %+v", libc)
	}
	if r.Interpreter == nil || r.Interpreter.RealPath != "/usr/lib/arm-linux-gnueabihf/ld-linux-armhf.so.3" {
		t.Fatalf("interpreter = %+v", r.Interpreter)
	}
	// /lib -> usr/lib, then the absolute link, then /lib again.
	if len(r.Interpreter.Links) != 3 {
		t.Errorf("loader symlink chain = %q, want 3 links", r.Interpreter.Links)
	}
	out := text(t, r)
	for _, s := range []string{"libfoo.so.1 => /opt/app/lib/libfoo.so.1", "ld-linux-armhf.so.3", "OK"} {
		if !strings.Contains(out, s) {
			t.Errorf("text report lacks %q:\n%s", s, out)
		}
	}
}

func TestRunpathOriginNotFoundElsewhere(t *testing.T) {
	// The same library one directory off: RUNPATH must not find it.
	root := mkroot(t, with(armhfBase(), map[string]file{
		"/opt/app/bin/app":     elfFile("app-runpath"),
		"/opt/lib/libfoo.so.1": elfFile("libfoo-v2.so"),
	}))
	r := check(t, root, Config{Entrypoint: []string{"/opt/app/bin/app"}})
	p := wantProblem(t, r, KindMissingLibrary, "app needs libfoo.so.1", "/opt/app/lib")
	if p.NeededBy != "/opt/app/bin/app" || p.Object != "libfoo.so.1" {
		t.Errorf("problem = %+v", p)
	}
}

func TestMissingVersion(t *testing.T) {
	root := mkroot(t, with(armhfBase(), map[string]file{
		"/opt/app/bin/app":         elfFile("app-runpath"),
		"/opt/app/lib/libfoo.so.1": elfFile("libfoo-v1.so"),
	}))
	r := check(t, root, Config{Entrypoint: []string{"/opt/app/bin/app"}})
	p := wantProblem(t, r, KindMissingVersion)
	want := "app needs V_2 (symbol foo2@V_2) but the image's libfoo.so.1 provides up to V_1"
	if p.Message != want {
		t.Errorf("message\n got %q\nwant %q", p.Message, want)
	}
}

func TestOldGlibc(t *testing.T) {
	root := mkroot(t, with(armhfBase(), map[string]file{
		"/usr/lib/arm-linux-gnueabihf/libc.so.6":   elfFile("libc-2.31-stub.so"),
		"/usr/lib/arm-linux-gnueabihf/libbar.so.2": elfFile("libbar-armhf.so"),
		"/app": elfFile("app-bar"),
	}))
	r := check(t, root, Config{Entrypoint: []string{"/app"}})
	p := wantProblem(t, r, KindMissingVersion)
	want := "app needs GLIBC_2.34 (symbol __libc_start_main@GLIBC_2.34) but the image's libc.so.6 provides up to GLIBC_2.31"
	if p.Message != want {
		t.Errorf("message\n got %q\nwant %q", p.Message, want)
	}
}

func TestLDCacheOnly(t *testing.T) {
	files := with(armhfBase(), map[string]file{
		"/opt/vendor/lib/libbar.so.2": elfFile("libbar-armhf.so"),
		"/app":                        elfFile("app-bar"),
	})
	r := check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}})
	wantProblem(t, r, KindMissingLibrary, "app needs libbar.so.2", "/lib/arm-linux-gnueabihf")

	// An entry for another ABI is ignored, the armhf one is used.
	files["/etc/ld.so.cache"] = file{data: string(encodeLDCache([]cacheEntry{
		{Flags: flagELFLibc6 | flagX8664Lib64, Name: "libbar.so.2", Path: "/opt/x86/libbar.so.2"},
		{Flags: flagELFLibc6 | flagARMLibHF, Name: "libbar.so.2", Path: "/opt/vendor/lib/libbar.so.2"},
	}))}
	r = check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}})
	wantOK(t, r)
	bar := findLib(r.Program, "libbar.so.2")
	if bar == nil || bar.Path != "/opt/vendor/lib/libbar.so.2" || bar.Via != "ld.so.cache" {
		t.Fatalf("libbar.so.2 = %+v, want /opt/vendor/lib/libbar.so.2 via ld.so.cache", bar)
	}
	if !strings.Contains(r.LDCache, "new format, 2 entries") {
		t.Errorf("LDCache = %q", r.LDCache)
	}
}

func TestRPathAndLDLibraryPath(t *testing.T) {
	r := check(t, mkroot(t, with(armhfBase(), map[string]file{
		"/opt/bar/lib/libbar.so.2": elfFile("libbar-armhf.so"),
		"/app":                     elfFile("app-rpath"),
	})), Config{Entrypoint: []string{"/app"}})
	wantOK(t, r)
	if bar := findLib(r.Program, "libbar.so.2"); bar == nil || bar.Via != "RPATH of app" {
		t.Fatalf("libbar.so.2 = %+v, want via RPATH", bar)
	}

	files := with(armhfBase(), map[string]file{
		"/srv/lib/libbar.so.2": elfFile("libbar-armhf.so"),
		"/app":                 elfFile("app-bar"),
	})
	r = check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}, Env: []string{"LD_LIBRARY_PATH=/nowhere:/srv/lib"}})
	wantOK(t, r)
	if bar := findLib(r.Program, "libbar.so.2"); bar == nil || bar.Via != "LD_LIBRARY_PATH" {
		t.Fatalf("libbar.so.2 = %+v, want via LD_LIBRARY_PATH", bar)
	}
}

func TestIncompatibleCandidateSkipped(t *testing.T) {
	files := with(armhfBase(), map[string]file{
		// Searched first (/lib/arm-linux-gnueabihf = /usr/lib/arm-...) and
		// through LD_LIBRARY_PATH: of the wrong arch, so skipped.
		"/usr/lib/arm-linux-gnueabihf/libbar.so.2": elfFile("libbar-amd64.so"),
		"/opt/arm64/libbar.so.2":                   elfFile("libbar-arm64.so"),
		"/usr/lib/libbar.so.2":                     elfFile("libbar-armhf.so"),
		"/app":                                     elfFile("app-bar"),
	})
	cfg := Config{Entrypoint: []string{"/app"}, Env: []string{"LD_LIBRARY_PATH=/opt/arm64"}}
	r := check(t, mkroot(t, files), cfg)
	wantOK(t, r)
	if bar := findLib(r.Program, "libbar.so.2"); bar == nil || bar.RealPath != "/usr/lib/libbar.so.2" {
		t.Fatalf("libbar.so.2 = %+v, want the armhf copy in /usr/lib", bar)
	}

	// No copy fits: say which candidates were skipped and why.
	files["/usr/lib/libbar.so.2"] = elfFile("libbar-armel.so")
	r = check(t, mkroot(t, files), cfg)
	wantProblem(t, r, KindWrongArch, "app needs libbar.so.2", "x86-64 64-bit", "AArch64 64-bit", "ARM 32-bit EABI5 soft-float", "ARM 32-bit EABI5 hard-float")
}

func TestWrongArchProgram(t *testing.T) {
	root := mkroot(t, with(armhfBase(), map[string]file{"/app": elfFile("app-bar")}))
	r := check(t, root, Config{Platform: "linux/arm64", Entrypoint: []string{"/app"}})
	wantProblem(t, r, KindWrongArch, "/app", "ARM 32-bit", "AArch64 64-bit")
	r = check(t, root, Config{Platform: "linux/amd64", Entrypoint: []string{"/app"}})
	wantProblem(t, r, KindWrongArch, "ARM 32-bit", "x86-64 64-bit")
}

func TestScriptEntrypoint(t *testing.T) {
	files := with(armhfBase(), map[string]file{
		"/usr/local/bin/start.sh": script("#!/bin/sh -e\nexec /app \"$@\"\n"),
		"/bin/busybox":            elfFile("app-static"),
		"/bin/sh":                 symlink("busybox"),
		"/app":                    elfFile("app-bar"),
	})
	r := check(t, mkroot(t, files), Config{Entrypoint: []string{"start.sh"}, Env: []string{"PATH=/usr/local/bin:/bin"}})
	wantOK(t, r)
	if len(r.Scripts) != 1 || r.Scripts[0].Path != "/usr/local/bin/start.sh" || r.Scripts[0].Interpreter != "/bin/sh" || r.Scripts[0].Arg != "-e" {
		t.Fatalf("scripts = %+v", r.Scripts)
	}
	if r.Program.RealPath != "/usr/bin/busybox" && r.Program.RealPath != "/bin/busybox" {
		t.Errorf("program = %+v, want the busybox the #! line names", r.Program)
	}
	if !r.Static {
		t.Errorf("busybox stand-in is static, report says dynamic")
	}

	// The interpreter is missing.
	files["/usr/local/bin/start.sh"] = script("#!/bin/bash\nexec /app\n")
	r = check(t, mkroot(t, files), Config{Entrypoint: []string{"/usr/local/bin/start.sh"}})
	wantProblem(t, r, KindMissingProgram, "/bin/bash")

	// The interpreter is there but not executable.
	files["/usr/local/bin/start.sh"] = script("#!/bin/sh\n")
	files["/bin/busybox"] = file{from: filepath.Join("testdata", "elf", "app-static"), mode: 0o644}
	r = check(t, mkroot(t, files), Config{Entrypoint: []string{"/usr/local/bin/start.sh"}})
	wantProblem(t, r, KindNotExecutable, "/bin/sh", "not executable")
}

func TestStaticBinary(t *testing.T) {
	r := check(t, mkroot(t, map[string]file{"/app": elfFile("app-static")}), Config{Entrypoint: []string{"/app"}})
	wantOK(t, r)
	if !r.Static || r.Interpreter != nil {
		t.Fatalf("static = %v, interpreter = %+v", r.Static, r.Interpreter)
	}
	if out := text(t, r); !strings.Contains(out, "statically linked") {
		t.Errorf("text report does not say static:\n%s", out)
	}
}

func TestMissingLoader(t *testing.T) {
	files := with(armhfBase(), map[string]file{
		"/app":                         elfFile("app-bar"),
		"/usr/lib/ld-linux-armhf.so.3": {},
	})
	r := check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}})
	p := wantProblem(t, r, KindMissingLoader, "app needs the loader /lib/ld-linux-armhf.so.3")
	if p.Object != "/lib/ld-linux-armhf.so.3" {
		t.Errorf("object = %q", p.Object)
	}

	// An absolute symlink is relative to the root, never the host (whose
	// cross toolchain may well have this very file).
	files["/usr/lib/ld-linux-armhf.so.3"] = symlink("/usr/arm-linux-gnueabihf/lib/ld-linux-armhf.so.3")
	r = check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}})
	wantProblem(t, r, KindMissingLoader, "/lib/ld-linux-armhf.so.3")

	// A symlink loop ends with a clear error.
	files["/usr/lib/ld-linux-armhf.so.3"] = symlink("ld-loop")
	files["/usr/lib/ld-loop"] = symlink("/lib/ld-linux-armhf.so.3")
	r = check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}})
	wantProblem(t, r, KindMissingLoader, "too many levels of symbolic links")

	// ".." cannot climb out of the root either.
	files["/usr/lib/ld-linux-armhf.so.3"] = symlink("../../../../../../usr/lib/arm-linux-gnueabihf/ld-linux-armhf.so.3")
	files["/usr/lib/libbar.so.2"] = elfFile("libbar-armhf.so")
	r = check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}})
	wantOK(t, r)
}

func TestMissingLibrary(t *testing.T) {
	r := check(t, mkroot(t, with(armhfBase(), map[string]file{"/app": elfFile("app-bar")})), Config{Entrypoint: []string{"/app"}})
	p := wantProblem(t, r, KindMissingLibrary, "app needs libbar.so.2 but the image does not have it")
	if p.NeededBy != "/app" || p.Object != "libbar.so.2" {
		t.Errorf("problem = %+v", p)
	}
	if bar := findLib(r.Program, "libbar.so.2"); bar == nil || !bar.Missing {
		t.Errorf("tree does not mark libbar.so.2 missing: %+v", bar)
	}
	if out := text(t, r); !strings.Contains(out, "libbar.so.2 => NOT FOUND") {
		t.Errorf("text:\n%s", out)
	}
}

func TestCommandLookup(t *testing.T) {
	files := with(armhfBase(), map[string]file{
		"/usr/lib/libbar.so.2": elfFile("libbar-armhf.so"),
		"/opt/bin/app":         elfFile("app-bar"),
		"/usr/bin/data":        {data: "x", mode: 0o644},
		"/srv/run/app":         elfFile("app-bar"),
	})
	root := mkroot(t, files)
	wantOK(t, check(t, root, Config{Entrypoint: []string{"app"}, Env: []string{"PATH=/usr/bin:/opt/bin"}}))
	wantProblem(t, check(t, root, Config{Entrypoint: []string{"app"}}), KindMissingProgram, "app", DefaultPath)
	wantProblem(t, check(t, root, Config{Cmd: []string{"data"}}), KindNotExecutable, "/usr/bin/data")
	wantOK(t, check(t, root, Config{Cmd: []string{"./app"}, WorkingDir: "/srv/run"}))
	wantProblem(t, check(t, root, Config{}), KindNoCommand)
	wantProblem(t, check(t, root, Config{Cmd: []string{"/usr/bin/data"}}), KindNotExecutable, "/usr/bin/data")
	files["/usr/bin/text"] = script("just text\n")
	wantProblem(t, check(t, mkroot(t, files), Config{Cmd: []string{"/usr/bin/text"}}), KindNotExecutable, "neither an ELF file nor a #! script")
}

func TestBadELF(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "elf", "libbar-armhf.so"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte{}, good...)
	// Point the program headers past the end of the file.
	corrupt[28], corrupt[29], corrupt[30], corrupt[31] = 0xff, 0xff, 0xff, 0x7f
	for name, data := range map[string][]byte{
		"truncated": good[:100],
		"header":    good[:20],
		"corrupt":   corrupt,
	} {
		t.Run(name, func(t *testing.T) {
			files := with(armhfBase(), map[string]file{
				"/usr/lib/libbar.so.2": {data: string(data), mode: 0o644},
				"/app":                 elfFile("app-bar"),
			})
			r := check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}})
			wantProblem(t, r, KindBadELF, "/usr/lib/libbar.so.2", "libbar.so.2")
			// The program itself damaged.
			files["/app"] = file{data: string(data), mode: 0o755}
			r = check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}})
			wantProblem(t, r, KindBadELF, "/app")
		})
	}
}

func TestJSON(t *testing.T) {
	r := check(t, mkroot(t, with(armhfBase(), map[string]file{"/app": elfFile("app-bar")})), Config{Entrypoint: []string{"/app"}})
	var buf bytes.Buffer
	if err := r.JSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Problems) != 1 || back.Problems[0].Kind != KindMissingLibrary || back.Program == nil || back.Interpreter == nil {
		t.Fatalf("JSON round trip lost data:\n%s", buf.String())
	}
}

func TestCheckCannotRun(t *testing.T) {
	ctx := context.Background()
	if _, err := Check(ctx, t.TempDir(), Config{Platform: "linux/mips"}); err == nil {
		t.Error("unknown platform: want an error")
	}
	if _, err := Check(ctx, filepath.Join(t.TempDir(), "nope"), Config{Platform: "linux/arm/v7"}); err == nil {
		t.Error("missing rootfs: want an error")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	root := mkroot(t, with(armhfBase(), map[string]file{"/app": elfFile("app-bar")}))
	if r, err := Check(cancelled, root, Config{Platform: "linux/arm/v7", Entrypoint: []string{"/app"}}); err == nil {
		t.Errorf("cancelled context: want an error, got a report %+v", r)
	}
}

// TestRealGlibc runs the check on the real armhf glibc of the cross
// toolchain, and compares the version tables parsed from PT_DYNAMIC with
// what debug/elf reads from the section headers.
func TestRealGlibc(t *testing.T) {
	const sys = "/usr/arm-linux-gnueabihf/lib"
	if _, err := os.Stat(filepath.Join(sys, "libc.so.6")); err != nil {
		t.Skip("armhf glibc not installed (libc6-armhf-cross):", err)
	}
	root := mkroot(t, map[string]file{
		"/lib/arm-linux-gnueabihf/libc.so.6":           {from: filepath.Join(sys, "libc.so.6"), mode: 0o755},
		"/lib/arm-linux-gnueabihf/ld-linux-armhf.so.3": {from: filepath.Join(sys, "ld-linux-armhf.so.3"), mode: 0o755},
		"/lib/ld-linux-armhf.so.3":                     symlink("arm-linux-gnueabihf/ld-linux-armhf.so.3"),
		"/opt/app/bin/app":                             elfFile("app-runpath"),
		"/opt/app/lib/libfoo.so.1":                     elfFile("libfoo-v2.so"),
	})
	wantOK(t, check(t, root, Config{Entrypoint: []string{"/opt/app/bin/app"}}))

	for _, lib := range []string{"libc.so.6", "ld-linux-armhf.so.3"} {
		p := filepath.Join(sys, lib)
		ours, err := parseFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defs, err := f.DynamicVersions()
		if err != nil {
			t.Fatal(err)
		}
		if len(defs) != len(ours.VerDef) {
			t.Fatalf("%s: %d DT_VERDEF entries, debug/elf has %d", lib, len(ours.VerDef), len(defs))
		}
		for i, d := range defs {
			if d.Name != ours.VerDef[i].Name || d.Index != ours.VerDef[i].Index {
				t.Errorf("%s verdef %d: ours %+v, debug/elf %+v", lib, i, ours.VerDef[i], d)
			}
		}
		needs, _ := f.DynamicVersionNeeds()
		if len(needs) != len(ours.VerNeed) {
			t.Errorf("%s: %d DT_VERNEED entries, debug/elf has %d", lib, len(ours.VerNeed), len(needs))
		}
		f.Close()
	}
}

func TestExpandTokens(t *testing.T) {
	root := mkroot(t, map[string]file{"/lib/arm-linux-gnueabihf/.keep": {data: ""}})
	a, _ := parsePlatform("linux/arm/v7")
	c := &checker{root: rootFS{dir: root}, arch: a, cfg: Config{WorkingDir: "/srv"}, cwd: "/srv"}
	n := &node{origin: "/opt/app/bin"}
	for in, want := range map[string]string{
		"$ORIGIN/../lib":         "/opt/app/lib",
		"${ORIGIN}/plugins":      "/opt/app/bin/plugins",
		"/usr/$LIB/app":          "/usr/lib/arm-linux-gnueabihf/app",
		"/opt/$PLATFORM":         "/opt/v7l",
		"$ORIGINAL/x":            "/srv/$ORIGINAL/x",
		"relative/dir":           "/srv/relative/dir",
		"":                       "/srv",
		"$ORIGIN/$LIB/$PLATFORM": "/opt/app/bin/lib/arm-linux-gnueabihf/v7l",
	} {
		if got := c.expand(in, n, "test")[0].dir; got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"GLIBC_2.4", "GLIBC_2.34", -1},
		{"GLIBC_2.34", "GLIBC_2.34", 0},
		{"GLIBC_2.34", "GLIBC_2.3.4", 1},
		{"GLIBCXX_3.4.30", "GLIBCXX_3.4.9", 1},
		{"V_2", "V_1", 1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// withNoDefLib returns a copy of an ELF32 LE file with DF_1_NODEFLIB added
// to its DT_FLAGS_1 (GNU ld ignores -z nodeflib for these targets).
func withNoDefLib(t *testing.T, name string) file {
	t.Helper()
	p := filepath.Join("testdata", "elf", name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dyn := f.Section(".dynamic")
	if dyn == nil {
		t.Fatalf("%s has no .dynamic", name)
	}
	for off := dyn.Offset; off+8 <= dyn.Offset+dyn.Size; off += 8 {
		if elf.DynTag(binary.LittleEndian.Uint32(b[off:])) == elf.DT_FLAGS_1 {
			v := binary.LittleEndian.Uint32(b[off+4:]) | uint32(elf.DF_1_NODEFLIB)
			binary.LittleEndian.PutUint32(b[off+4:], v)
			return file{data: string(b), mode: 0o755}
		}
	}
	t.Fatalf("%s has no DT_FLAGS_1", name)
	return file{}
}

func TestNoDefLib(t *testing.T) {
	files := with(armhfBase(), map[string]file{
		"/usr/lib/libbar.so.2": elfFile("libbar-armhf.so"),
		"/app":                 withNoDefLib(t, "app-bar"),
	})
	r := check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}})
	// libc.so.6 is in a default dir too: both are missing for this app.
	if len(r.Problems) != 2 || r.Problems[0].Kind != KindMissingLibrary || !strings.Contains(r.Problems[0].Message, "-z nodeflib") {
		t.Fatalf("want libbar.so.2 and libc.so.6 missing because of nodeflib, got:\n%s", text(t, r))
	}
	r = check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}, Env: []string{"LD_LIBRARY_PATH=/usr/lib:/lib/arm-linux-gnueabihf"}})
	wantOK(t, r)
}

func TestLDConfHint(t *testing.T) {
	files := with(armhfBase(), map[string]file{
		"/usr/local/lib/vendor/libbar.so.2":   elfFile("libbar-armhf.so"),
		"/etc/ld.so.conf":                     {data: "include /etc/ld.so.conf.d/*.conf\n"},
		"/etc/ld.so.conf.d/vendor.conf":       {data: "# vendor libs\n/usr/local/lib/vendor\n"},
		"/etc/ld.so.conf.d/other.conf.ignore": {data: "/nowhere\n"},
		"/app":                                elfFile("app-bar"),
	})
	r := check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}})
	wantProblem(t, r, KindMissingLibrary, "app needs libbar.so.2", "/usr/local/lib/vendor/libbar.so.2",
		"/etc/ld.so.conf.d/vendor.conf", "ldconfig", "LD_LIBRARY_PATH")
}

func TestPlatforms(t *testing.T) {
	for p, want := range map[string]elf.Machine{
		"linux/arm/v7": elf.EM_ARM, "linux/arm": elf.EM_ARM, "linux/arm/v6": elf.EM_ARM, "linux/arm/v5": elf.EM_ARM,
		"linux/arm64": elf.EM_AARCH64, "linux/arm64/v8": elf.EM_AARCH64, "linux/amd64": elf.EM_X86_64,
		"linux/386": elf.EM_386, "linux/riscv64": elf.EM_RISCV, "linux/ppc64le": elf.EM_PPC64, "linux/s390x": elf.EM_S390,
	} {
		a, err := parsePlatform(p)
		if err != nil || a.Machine != want {
			t.Errorf("parsePlatform(%s) = %v, %v; want %v", p, a.Machine, err, want)
		}
	}
	for _, p := range []string{"windows/amd64", "linux/mips", "linux/arm/v9", "amd64", ""} {
		if _, err := parsePlatform(p); err == nil {
			t.Errorf("parsePlatform(%q): want an error", p)
		}
	}
	// The armel (v5) float ABI is soft: a hard-float library does not fit.
	a, _ := parsePlatform("linux/arm/v5")
	in, err := parseFile(filepath.Join("testdata", "elf", "libbar-armhf.so"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := a.compatible(in, true); ok || !strings.Contains(why, "hard-float") {
		t.Errorf("armhf library on linux/arm/v5: ok=%v %q", ok, why)
	}
}

// TestAbsoluteSymlinksStayInRoot: every file the check opens is reached
// through the root, never through the host, even when the host has a file
// at the link's target.
func TestAbsoluteSymlinksStayInRoot(t *testing.T) {
	files := with(armhfBase(), map[string]file{
		"/opt/app/bin/app":         elfFile("app-runpath"),
		"/opt/app/lib/libfoo.so.1": elfFile("libfoo-v2.so"),
		"/usr/bin/app":             symlink("/opt/app/bin/app"),
		"/usr/bin/hosttrue":        symlink("/bin/true"),
	})
	root := mkroot(t, files)
	wantOK(t, check(t, root, Config{Cmd: []string{"/usr/bin/app"}}))
	wantProblem(t, check(t, root, Config{Cmd: []string{"/usr/bin/hosttrue"}}), KindMissingProgram, "/usr/bin/hosttrue")

	// A cache reached through an absolute link inside the root is used;
	// one pointing at the host's path is not.
	cache := encodeLDCache([]cacheEntry{{Flags: flagELFLibc6 | flagARMLibHF, Name: "libbar.so.2", Path: "/opt/vendor/lib/libbar.so.2"}})
	files = with(armhfBase(), map[string]file{
		"/opt/vendor/lib/libbar.so.2": elfFile("libbar-armhf.so"),
		"/app":                        elfFile("app-bar"),
		"/var/cache/ld.so.cache":      {data: string(cache)},
		"/etc/ld.so.cache":            symlink("/var/cache/ld.so.cache"),
	})
	wantOK(t, check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}}))
	hostCache := filepath.Join(t.TempDir(), "ld.so.cache")
	if err := os.WriteFile(hostCache, cache, 0o644); err != nil {
		t.Fatal(err)
	}
	files["/etc/ld.so.cache"] = symlink(hostCache)
	wantProblem(t, check(t, mkroot(t, files), Config{Entrypoint: []string{"/app"}}), KindMissingLibrary, "libbar.so.2")
}
