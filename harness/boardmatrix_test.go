package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/startup"
	"github.com/hilproject/hil/internal/testenv"
)

// The board matrix of issue 14: boards × sample images, each cell measured
// here on every target that can run the board: the static check (what the
// board's engine pulls, held to the board's ISA) for all; the system target
// where QEMU models the board (the app starts, captures, stops cleanly);
// qemu-user with the board's CPU for the Pi Zero W, which QEMU's virt
// machine refuses (the app starts as far as printing its usage). The
// emulation runs with the static check off: it is the second opinion. The
// README's table is rendered from the same expectations (TestBoardMatrix
// checks it is there, word for word).
//
// Every cell is measured in make test: the static and qemu-user cells take
// a fraction of a second, a system cell one boot (cold the first time per
// board and image: a few seconds since the armmp kernel boots unpacked).

var matrixBoards = []string{"pi0w", "pi2", "pi3b+", "pi4/64"}

var matrixImages = []struct{ name, title string }{
	{"pcapwatch", "`pcapwatch` (index: arm/v7, amd64, arm/v5 armel, arm64)"},
	{"pcapwatch-armhf", "`pcapwatch-armhf` (its arm/v7 manifest alone)"},
	{"armv8-only", "`armv8-only` (arm/v7, an ARMv8 helper)"},
	{"old-glibc", "`old-glibc` (index: arm/v7, glibc 2.31)"},
}

// matrixCell is what one board does with one image. A field of "" means
// that check does not apply; "pass" passes; anything else is a substring
// of the failure's reason.
type matrixCell struct {
	pulls  string // the platform the board's engine pulls; "" pulls nothing
	static string
	system string // "unsupported: ..." for a board QEMU cannot model
	user   string
	// readme is the cell as the README's table says it.
	readme string
}

const (
	ill0 = "illegal instruction on pi0w (ARM1176JZF-S): the app was killed by SIGILL"
	ill2 = "illegal instruction on pi2 (Cortex-A7): the app was killed by SIGILL"
	arm6 = "unsupported: QEMU's virt machine refuses the ARM1176"
	glib = "version `GLIBC_2.34' not found"
)

var matrix = map[string]map[string]matrixCell{
	"pcapwatch": {
		"pi0w":   {"linux/arm/v5", "pass", arm6, "pass", "**runs**: pulls arm/v5 (armel); static pass; user (`-cpu arm1176`) pass; system unsupported (QEMU has no ARM1176 `virt`)"},
		"pi2":    {"linux/arm/v7", "pass", "pass", "", "**runs**: pulls arm/v7; static pass; system (`cortex-a7`) pass"},
		"pi3b+":  {"linux/arm64", "pass", "pass", "", "**runs**: pulls arm64; static pass; system (`cortex-a53`) pass"},
		"pi4/64": {"linux/arm64", "pass", "pass", "", "**runs**: pulls arm64; static pass; system (`cortex-a72`) pass"},
	},
	"pcapwatch-armhf": {
		"pi0w":   {"linux/arm/v7", "libc.so.6 needs ARMv7 (Thumb-2, VFPv3, NEON); a pi0w (Raspberry Pi Zero W) has ARMv6", arm6, ill0, "**refused**: pulls arm/v7 anyway (one manifest); static: libc.so.6 and 9 more need ARMv7, GOARM=7; user: illegal instruction on pi0w (ARM1176JZF-S)"},
		"pi2":    {"linux/arm/v7", "pass", "pass", "", "**runs**: static pass; system pass"},
		"pi3b+":  {"linux/arm/v7", "pass", "pass", "", "**runs**: pulls arm/v7 (AArch32 on the 64-bit OS); static pass; system pass"},
		"pi4/64": {"linux/arm/v7", "pass", "pass", "", "**runs**: as on pi3b+"},
	},
	"armv8-only": {
		"pi0w":   {"linux/arm/v7", "pcapwatch needs ARMv8-A (Thumb-2, VFPv3-D16); a pi0w", arm6, ill0, "**refused**: static: pcapwatch needs ARMv8-A, the rest ARMv7; user: illegal instruction on pi0w"},
		"pi2":    {"linux/arm/v7", "pcapwatch needs ARMv8-A (Thumb-2, VFPv3-D16); a pi2 (Raspberry Pi 2 Model B) has ARMv7", ill2, "", "**refused**: static: pcapwatch needs ARMv8-A; system: illegal instruction on pi2 (Cortex-A7)"},
		"pi3b+":  {"linux/arm/v7", "pass", "pass", "", "**runs**: static pass; system pass"},
		"pi4/64": {"linux/arm/v7", "pass", "pass", "", "**runs**: static pass; system pass"},
	},
	"old-glibc": {
		"pi0w":   {"", "", "", "", "**refused**: pulls nothing (the index has linux/arm/v7 only; a Pi Zero's engine takes v6 or v5)"},
		"pi2":    {"linux/arm/v7", "needs GLIBC_2.34", glib, "", "**refused**: static: needs GLIBC_2.34, the image has 2.31; system: the loader says `GLIBC_2.34' not found"},
		"pi3b+":  {"linux/arm/v7", "needs GLIBC_2.34", glib, "", "**refused**: as on pi2"},
		"pi4/64": {"linux/arm/v7", "needs GLIBC_2.34", glib, "", "**refused**: as on pi2"},
	},
}

// matrixTable is the README's table.
func matrixTable() string {
	var b strings.Builder
	b.WriteString("| board |")
	for _, img := range matrixImages {
		b.WriteString(" " + img.title + " |")
	}
	b.WriteString("\n|---|")
	for range matrixImages {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, bd := range matrixBoards {
		b.WriteString("| `" + bd + "` |")
		for _, img := range matrixImages {
			b.WriteString(" " + matrix[img.name][bd].readme + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestBoardMatrix(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	readme, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), matrixTable()) {
		t.Errorf("README.md does not hold the board matrix as measured here; it should read:\n%s", matrixTable())
	}
	scs, err := scenario.LoadDir(filepath.Join("testdata", "boards"))
	if err != nil {
		t.Fatal(err)
	}
	boards, err := board.Builtin().LookupList(matrixBoards...)
	if err != nil {
		t.Fatal(err)
	}
	// The cells run in parallel, after this function returns.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	retries := 1
	type opened struct {
		img    *Image
		runner *scenario.Runner
	}
	var mu sync.Mutex
	runners := map[string]opened{}
	open := func(t *testing.T, name string) opened {
		mu.Lock()
		defer mu.Unlock()
		if o, ok := runners[name]; ok {
			return o
		}
		r, img, err := NewRunner(ctx, Config{Image: "oci:" + filepath.Join(images, name), Targets: []string{"system", "user"}, Retries: &retries, Boards: boards})
		if err != nil {
			t.Fatal(err)
		}
		runners[name] = opened{img, r}
		return runners[name]
	}
	for _, im := range matrixImages {
		for i, name := range matrixBoards {
			b, want := boards[i], matrix[im.name][name]
			t.Run(im.name+"/"+b.Label(), func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				o := open(t, im.name)
				pulled, err := b.Pull(o.img.Platforms(), o.img.Single())
				got := pulled.Platform.String()
				if err != nil {
					got = ""
				}
				if got != want.pulls {
					t.Fatalf("%s pulls %q (%v), want %q", b, got, err, want.pulls)
				}
				if want.static != "" {
					checkStatic(t, ctx, o.img, b, got, want.static)
				}
				for _, sc := range scs {
					for _, c := range o.runner.Plan(sc) {
						if c.Board == nil || c.Board.Key() != b.Key() {
							continue
						}
						expect := map[string]string{"system": want.system, "user": want.user}[c.Target]
						if expect == "" {
							continue
						}
						res := o.runner.Run(ctx, c)
						checkVerdict(t, res, expect)
					}
				}
				t.Logf("%s on %s: %s", im.name, b, time.Since(start).Round(100*time.Millisecond))
			})
		}
	}
}

func checkStatic(t *testing.T, ctx context.Context, img *Image, b board.Board, platform, want string) {
	t.Helper()
	pi, rootfs, err := img.Platform(ctx, platform)
	if err != nil {
		t.Fatal(err)
	}
	cfg := startup.ConfigFor(platform, pi.Config)
	cfg.Board = &b
	rep, err := startup.Check(ctx, rootfs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	for _, p := range rep.Problems {
		problems = append(problems, p.Message)
	}
	all := strings.Join(problems, "; ")
	switch {
	case want == "pass" && !rep.OK():
		t.Errorf("static check on %s: %s; want a pass", b, all)
	case want != "pass" && (rep.OK() || !strings.Contains(all, want)):
		t.Errorf("static check on %s: %q; want a refusal saying %q", b, all, want)
	}
}

func checkVerdict(t *testing.T, res scenario.Result, want string) {
	t.Helper()
	switch {
	case want == "pass" && res.Verdict != scenario.Pass:
		t.Errorf("%s: %s: %s; want a pass", res.ID(), res.Verdict, res.Reason)
	case strings.HasPrefix(want, "unsupported: "):
		if res.Verdict != scenario.Unsupported || !strings.Contains(res.Reason, strings.TrimPrefix(want, "unsupported: ")) {
			t.Errorf("%s: %s: %s; want unsupported, %q", res.ID(), res.Verdict, res.Reason, want)
		}
	case want != "pass" && (res.Verdict != scenario.Fail || !strings.Contains(res.Reason, want)):
		t.Errorf("%s: %s: %s; want a fail saying %q", res.ID(), res.Verdict, res.Reason, want)
	default:
		t.Logf("%s: %s %s", res.ID(), res.Verdict, firstLine(res.Reason))
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Every bundled scenario on each board QEMU models, in each of the three
// userlands: armhf on a Pi 2's 32-bit kernel, armhf as AArch32 userland on
// the 64-bit kernel (pi3b+ pulling the armhf-only image, and pi4/32 under
// linux32), and arm64 (pi4/64). A board's first case boots cold, the rest
// restore its snapshots. (The same through Ginkgo: make test-boards.)
func TestBundledScenarioOnBoards(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "scenarios", "*.yaml"))
	if err != nil || len(files) < 7 {
		t.Fatalf("bundled scenarios: %v %v", files, err)
	}
	var scs []*scenario.Scenario
	for _, f := range files {
		sc, err := scenario.ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		scs = append(scs, sc)
	}
	for _, c := range []struct{ board, image, platform string }{
		{"pi2", "pcapwatch", "linux/arm/v7"},
		{"pi3b+", "pcapwatch-armhf", "linux/arm/v7"},
		{"pi4/32", "pcapwatch", "linux/arm/v7"},
		{"pi4/64", "pcapwatch", "linux/arm64"},
	} {
		t.Run(fmt.Sprintf("%s/%s", strings.ReplaceAll(c.board, "/", "-"), c.image), func(t *testing.T) {
			t.Parallel()
			b, err := board.Builtin().Lookup(c.board)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			retries := 1
			r, _, err := NewRunner(ctx, Config{Image: "oci:" + filepath.Join(images, c.image), Targets: []string{"system"}, Retries: &retries, Boards: []board.Board{b}})
			if err != nil {
				t.Fatal(err)
			}
			var boots []string
			for _, sc := range scs {
				cases := r.Plan(sc)
				if len(cases) != 1 || cases[0].Platform != c.platform {
					t.Fatalf("%s: planned %+v; want one case on %s", sc.Name, cases, c.platform)
				}
				res := r.Run(ctx, cases[0])
				if res.Verdict != scenario.Pass {
					t.Errorf("%s: %s: %s", res.ID(), res.Verdict, res.Reason)
				}
				if res.Device["board"] != b.String() || res.Device["cpu"] != b.OSInfo().System.CPU {
					t.Errorf("%s ran on board %q cpu %q", res.ID(), res.Device["board"], res.Device["cpu"])
				}
				boots = append(boots, fmt.Sprintf("%s %s %s (%v ms boot)", sc.Name, res.Duration.Round(100*time.Millisecond), res.Device["boot"], res.Device["boot_ms"]))
			}
			t.Logf("%s on %s: %s", c.image, b, strings.Join(boots, ", "))
		})
	}
}
