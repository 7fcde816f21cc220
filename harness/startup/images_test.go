package startup_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/startup"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/internal/testimage"
)

// sampleRootFS opens a built sample image (make images) and flattens one
// platform through harness/image, as `hil check` does.
func sampleRootFS(t testing.TB, variant, platform string) (string, startup.Config) {
	t.Helper()
	ctx := context.Background()
	art, err := image.Open(ctx, "oci:"+filepath.Join(testenv.ImagesDir(t), variant))
	if err != nil {
		t.Fatal(err)
	}
	img, err := art.Image(platform)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := img.RootFS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return dir, startup.ConfigFor(platform, img.Config)
}

func checkSample(t *testing.T, variant, platform string) *startup.Report {
	t.Helper()
	dir, cfg := sampleRootFS(t, variant, platform)
	r, err := startup.Check(context.Background(), dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	r.Text(&b)
	t.Logf("%s %s:\n%s", variant, platform, b.String())
	return r
}

// onlyProblem asserts the report has exactly one problem, of kind, whose
// message matches re.
func onlyProblem(t *testing.T, r *startup.Report, kind startup.Kind, re string) startup.Problem {
	t.Helper()
	if len(r.Problems) != 1 {
		t.Fatalf("want exactly one %s problem, got %d: %v", kind, len(r.Problems), r.Problems)
	}
	p := r.Problems[0]
	if p.Kind != kind {
		t.Fatalf("want %s, got %s: %s", kind, p.Kind, p.Message)
	}
	if !regexp.MustCompile(re).MatchString(p.Message) {
		t.Errorf("message %q does not match %q", p.Message, re)
	}
	return p
}

func TestSampleImageStarts(t *testing.T) {
	for _, platform := range []string{"linux/arm/v7", "linux/amd64"} {
		t.Run(platform, func(t *testing.T) {
			r := checkSample(t, "pcapwatch", platform)
			if !r.OK() {
				t.Fatalf("the good image fails on %s: %v", platform, r.Problems)
			}
			if r.Static || r.Interpreter == nil {
				t.Fatalf("pcapwatch is dynamic with a loader; report says static=%v interpreter=%v", r.Static, r.Interpreter)
			}
			var pcap *startup.Object
			var walk func(o *startup.Object)
			walk = func(o *startup.Object) {
				for _, c := range o.Needed {
					if c.Name == "libpcap.so.0.8" && !c.Repeat {
						pcap = c
					}
					walk(c)
				}
			}
			walk(r.Program)
			if pcap == nil || pcap.Missing || pcap.RealPath == "" {
				t.Fatalf("libpcap.so.0.8 not resolved in the tree: %+v", pcap)
			}
		})
	}
}

func TestBrokenVariants(t *testing.T) {
	t.Run("no-libpcap", func(t *testing.T) {
		for _, platform := range []string{"linux/arm/v7", "linux/amd64"} {
			r := checkSample(t, "no-libpcap", platform)
			p := onlyProblem(t, r, startup.KindMissingLibrary, `^pcapwatch needs libpcap\.so\.0\.8 but the image does not have it`)
			if p.Object != "libpcap.so.0.8" || !strings.HasSuffix(p.NeededBy, "/pcapwatch") {
				t.Errorf("problem names %q needed by %q", p.Object, p.NeededBy)
			}
		}
	})
	t.Run("old-glibc", func(t *testing.T) {
		r := checkSample(t, "old-glibc", "linux/arm/v7")
		onlyProblem(t, r, startup.KindMissingVersion,
			`^pcapwatch needs GLIBC_2\.(3[2-9]|[4-9]\d) \(symbol \S+@GLIBC_2\.\d+\) but the image's libc\.so\.6 \(glibc 2\.31\) provides up to GLIBC_2\.3[01]$`)
	})
	t.Run("wrong-arch", func(t *testing.T) {
		r := checkSample(t, "wrong-arch", "linux/arm/v7")
		onlyProblem(t, r, startup.KindWrongArch, `pcapwatch cannot run on linux/arm/v7: it is AArch64 64-bit, the platform linux/arm/v7 needs ARM 32-bit EABI5 hard-float`)
	})
	t.Run("no-loader", func(t *testing.T) {
		r := checkSample(t, "no-loader", "linux/arm/v7")
		p := onlyProblem(t, r, startup.KindMissingLoader, `^pcapwatch needs the loader /lib/ld-linux-armhf\.so\.3 \(its PT_INTERP\) but the image does not have it`)
		if p.Object != "/lib/ld-linux-armhf.so.3" {
			t.Errorf("object = %q", p.Object)
		}
	})
}

// The sample's armv7 image on boards: Debian's armhf binaries carry build
// attributes (ARMv7, Thumb-2, VFPv3-D16; libc.so.6 VFPv3 + NEON), the Go
// program says GOARM=7. A Pi Zero W is refused naming the library and the
// board; a Pi 2 and a Pi 3 take it.
func TestSampleImageOnBoards(t *testing.T) {
	dir, cfg := sampleRootFS(t, "pcapwatch", "linux/arm/v7")
	check := func(name string) *startup.Report {
		t.Helper()
		b, err := board.Builtin().Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Board = &b
		r, err := startup.Check(context.Background(), dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var s strings.Builder
		r.Text(&s)
		t.Logf("%s:\n%s", name, s.String())
		return r
	}

	r := check("pi0w")
	var libc, goarm *startup.Problem
	for i, p := range r.Problems {
		if p.Kind != startup.KindISA {
			t.Errorf("unexpected %s problem: %s", p.Kind, p.Message)
		}
		switch {
		case strings.HasPrefix(p.Message, "libc.so.6 needs "):
			libc = &r.Problems[i]
		case strings.Contains(p.Message, "GOARM=7"):
			goarm = &r.Problems[i]
		}
	}
	want := "libc.so.6 needs ARMv7 (Thumb-2, VFPv3, NEON); a pi0w (Raspberry Pi Zero W) has ARMv6 (ARM1176JZF-S, VFPv2): the board kills it with SIGILL"
	if libc == nil || libc.Message != want {
		t.Errorf("libc problem %+v, want %q", libc, want)
	}
	if goarm == nil || !strings.Contains(goarm.Message, "pcapwatch is a Go program built with GOARM=7") {
		t.Errorf("GOARM problem %+v", goarm)
	}
	if r.Interpreter == nil || r.Interpreter.ISA != "ARMv7 (Thumb-2, VFPv3-D16)" {
		t.Errorf("the loader's build attributes: %+v", r.Interpreter)
	}
	if r.Program == nil || !strings.HasSuffix(r.Program.ISA, "GOARM=7") {
		t.Errorf("the program's ISA: %+v", r.Program)
	}
	for _, name := range []string{"pi2", "pi3b+", "pi3b+/32", "pi4/64", "pi5"} {
		if r := check(name); !r.OK() {
			t.Errorf("%s refuses the sample image: %v", name, r.Problems)
		}
	}
}

// BenchmarkCheckBoard is BenchmarkCheck holding every ELF to a Pi 3's ISA
// (build attributes of each file, the Go build info of the program).
func BenchmarkCheckBoard(b *testing.B) {
	dir, cfg := sampleRootFS(b, "pcapwatch", "linux/arm/v7")
	pi3, err := board.Builtin().Lookup("pi3b+")
	if err != nil {
		b.Fatal(err)
	}
	cfg.Board = &pi3
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := startup.Check(ctx, dir, cfg)
		if err != nil || !r.OK() {
			b.Fatalf("check: %v %v", err, r)
		}
	}
}

// Issue 12, repro 4, against the real loader: the shell-form image whose
// program lacks libgcc_s.so.1. The check names the library and the
// program; the image's own ld.so agrees that it is missing.
func TestShellFormMatchesRealLoader(t *testing.T) {
	layout := testimage.ShellImage(t, testimage.Spec{Entrypoint: []string{"/bin/sh", "-c", testimage.Program}})
	ctx := context.Background()
	art, err := image.Open(ctx, "oci:"+layout)
	if err != nil {
		t.Fatal(err)
	}
	img, err := art.Image("linux/arm/v7")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := img.RootFS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := startup.Check(ctx, dir, startup.ConfigFor("linux/arm/v7", img.Config))
	if err != nil {
		t.Fatal(err)
	}
	p := onlyProblem(t, r, startup.KindMissingLibrary, `^sh -c runs /opt/program: program needs libgcc_s\.so\.1 but the image does not have it`)
	if p.NeededBy != testimage.Program || p.Object != "libgcc_s.so.1" {
		t.Errorf("problem %+v", p)
	}
	if r.Program == nil || r.Program.RealPath != "/bin/dash" || r.Program.Missing {
		t.Errorf("the shell itself: %+v", r.Program)
	}
	libs, stderr := realLoaderListOf(t, dir, "opt/program")
	if _, found := libs["libgcc_s.so.1"]; found || !strings.Contains(stderr, "libgcc_s.so.1: cannot open shared object file") {
		t.Errorf("ld.so --list: %v %s", libs, stderr)
	}
}

// BenchmarkCheckShellForm times the check of `/bin/sh -c /opt/program`
// on the sample's layers (dash, then the program the string runs).
func BenchmarkCheckShellForm(b *testing.B) {
	layout := testimage.ShellImage(b, testimage.Spec{Entrypoint: []string{"/bin/sh", "-c", "cd /opt && exec ./program"}, KeepLibgccS: true})
	ctx := context.Background()
	art, err := image.Open(ctx, "oci:"+layout)
	if err != nil {
		b.Fatal(err)
	}
	img, err := art.Image("linux/arm/v7")
	if err != nil {
		b.Fatal(err)
	}
	dir, err := img.RootFS(ctx)
	if err != nil {
		b.Fatal(err)
	}
	cfg := startup.ConfigFor("linux/arm/v7", img.Config)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := startup.Check(ctx, dir, cfg)
		if err != nil || !r.OK() || !r.Complete() {
			b.Fatalf("check: %v %v", err, r)
		}
	}
}

// BenchmarkCheck times the check on the sample image's arm/v7 rootfs (the
// rootfs is flattened once, outside the timing).
func BenchmarkCheck(b *testing.B) {
	dir, cfg := sampleRootFS(b, "pcapwatch", "linux/arm/v7")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := startup.Check(ctx, dir, cfg)
		if err != nil || !r.OK() {
			b.Fatalf("check: %v %v", err, r)
		}
	}
}

// realLoaderList runs the image's own ld.so with --list under qemu-user on
// the rootfs: the dynamic equivalent of the check.
func realLoaderList(t *testing.T, rootfs string) (map[string]string, string) {
	return realLoaderListOf(t, rootfs, "opt/pcapwatch")
}

// realLoaderListOf is realLoaderList for the program at prog in the rootfs.
func realLoaderListOf(t *testing.T, rootfs, prog string) (map[string]string, string) {
	t.Helper()
	testenv.RequireCommand(t, "/usr/bin/qemu-arm-static", "qemu-user-static")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/qemu-arm-static", "-L", rootfs,
		filepath.Join(rootfs, "lib/ld-linux-armhf.so.3"), "--list", filepath.Join(rootfs, prog))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run() // exits non-zero when something is missing; stderr says what
	libs := map[string]string{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), " => ")
		if !ok || strings.HasPrefix(name, "/") {
			continue // the loader itself
		}
		libs[name] = strings.Fields(rest)[0]
	}
	return libs, stderr.String()
}

// TestMatchesRealLoader compares the check with what the image's glibc
// ld.so does on the same rootfs: the same libraries from the same paths,
// the same missing library, the same highest missing version.
func TestMatchesRealLoader(t *testing.T) {
	t.Run("pcapwatch", func(t *testing.T) {
		dir, cfg := sampleRootFS(t, "pcapwatch", "linux/arm/v7")
		want, stderr := realLoaderList(t, dir)
		if len(want) == 0 {
			t.Fatalf("ld.so --list printed no libraries: %s", stderr)
		}
		r, err := startup.Check(context.Background(), dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		var walk func(o *startup.Object)
		walk = func(o *startup.Object) {
			for _, c := range o.Needed {
				if !c.Repeat && !c.Missing && !strings.HasPrefix(c.Name, "ld-linux") {
					got[c.Name] = c.Path
				}
				walk(c)
			}
		}
		walk(r.Program)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("libraries differ from ld.so --list\n got %v\nwant %v", got, want)
		}
	})
	t.Run("no-libpcap", func(t *testing.T) {
		dir, cfg := sampleRootFS(t, "no-libpcap", "linux/arm/v7")
		_, stderr := realLoaderList(t, dir)
		if !strings.Contains(stderr, "libpcap.so.0.8: cannot open shared object file") {
			t.Fatalf("ld.so did not fail on libpcap: %s", stderr)
		}
		r, _ := startup.Check(context.Background(), dir, cfg)
		if len(r.Problems) != 1 || r.Problems[0].Object != "libpcap.so.0.8" {
			t.Errorf("check problems %v, ld.so says %s", r.Problems, stderr)
		}
	})
	t.Run("old-glibc", func(t *testing.T) {
		dir, cfg := sampleRootFS(t, "old-glibc", "linux/arm/v7")
		_, stderr := realLoaderList(t, dir)
		var highest string
		for _, m := range regexp.MustCompile("version `(GLIBC_[0-9.]+)' not found").FindAllStringSubmatch(stderr, -1) {
			if highest == "" || versionLess(highest, m[1]) {
				highest = m[1]
			}
		}
		if highest == "" {
			t.Fatalf("ld.so did not report a missing version: %s", stderr)
		}
		r, _ := startup.Check(context.Background(), dir, cfg)
		if len(r.Problems) != 1 || r.Problems[0].Object != highest {
			t.Errorf("check problems %v, ld.so's highest missing version is %s", r.Problems, highest)
		}
	})
}

func versionLess(a, b string) bool {
	pa := strings.Split(strings.TrimPrefix(a, "GLIBC_"), ".")
	pb := strings.Split(strings.TrimPrefix(b, "GLIBC_"), ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

// The sample images against boards, the static half of the board matrix:
// bullseye's libgcrypt 1.8 (attributes ARMv8-A) reads /proc/self/auxv to
// pick its code, so old-glibc on a Pi 2 is refused for GLIBC_2.34 alone;
// armv8-only's program is refused on a Pi 2 (the Go runtime's own read of
// /proc/self/auxv excuses nothing) and passes on a Pi 3; the armel build
// passes a Pi Zero W.
func TestSampleImagesOnBoards(t *testing.T) {
	run := func(variant, platform, b string) *startup.Report {
		t.Helper()
		dir, cfg := sampleRootFS(t, variant, platform)
		bd, err := board.Builtin().Lookup(b)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Board = &bd
		r, err := startup.Check(context.Background(), dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := run("old-glibc", "linux/arm/v7", "pi2")
	onlyProblem(t, r, startup.KindMissingVersion, `GLIBC_2\.34`)
	if notes := strings.Join(r.Notes, "\n"); !strings.Contains(notes, "libgcrypt.so.20 says it may use ARMv8-A") || !strings.Contains(notes, "/proc/self/auxv") {
		t.Errorf("no note on libgcrypt's run-time dispatch: %s", notes)
	}
	onlyProblem(t, run("armv8-only", "linux/arm/v7", "pi2"), startup.KindISA, `^pcapwatch needs ARMv8-A \(Thumb-2, VFPv3-D16\); a pi2 \(Raspberry Pi 2 Model B\) has ARMv7`)
	if r := run("armv8-only", "linux/arm/v7", "pi3b+"); !r.OK() {
		t.Errorf("armv8-only on pi3b+: %v", r.Problems)
	}
	if r := run("pcapwatch", "linux/arm/v5", "pi0w"); !r.OK() {
		t.Errorf("the armel build on pi0w: %v", r.Problems)
	}
}
