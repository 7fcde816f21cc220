package scenario

import (
	"context"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/target"
)

func boards(t *testing.T, names ...string) []board.Board {
	t.Helper()
	bs, err := board.Builtin().LookupList(names...)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

func plats(ss ...string) []v1.Platform {
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

// boardImages is an image with an index of platforms (or one manifest).
type boardImages struct {
	fakeImages
	plats  []v1.Platform
	single bool
}

func (b boardImages) Platforms() []v1.Platform { return b.plats }
func (b boardImages) Single() bool             { return b.single }
func (b boardImages) Platform(ctx context.Context, platform string) (*image.Image, string, error) {
	img, dir, err := b.fakeImages.Platform(ctx, platform)
	if img != nil {
		p, _ := v1.ParsePlatform(platform)
		img.Platform = *p
	}
	return img, dir, err
}

// A board's case runs what its engine pulls from the index (containerd's
// matcher), is refused when it pulls nothing, and takes a single manifest
// whatever it is; the run's boards and a scenario's own intersect.
func TestPlannerBoards(t *testing.T) {
	sc, err := Parse("b.yaml", []byte("name: b\ntargets: [system, user]\nboards: [pi0w, pi3, pi4/32]\nsteps:\n  - wait: 1ms\n"), WithFixtures(nil))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Parse("p.yaml", []byte("name: p\ntargets: [system]\nsteps:\n  - wait: 1ms\n"), WithFixtures(nil))
	if err != nil {
		t.Fatal(err)
	}
	index := plats("linux/arm/v7", "linux/amd64", "linux/arm/v5", "linux/arm64")
	pull := func(ps []v1.Platform, single bool) func(board.Board) (board.Pulled, error) {
		return func(b board.Board) (board.Pulled, error) { return b.Pull(ps, single) }
	}
	keys := func(cs []Case) []string {
		var out []string
		for _, c := range cs {
			s := c.Key().String()
			if c.Refused != "" {
				s += " REFUSED"
			}
			out = append(out, s)
		}
		return out
	}
	for _, c := range []struct {
		name   string
		p      Planner
		scs    []*Scenario
		want   []string
		detail func(t *testing.T, cs []Case)
	}{
		{"the scenario's boards", Planner{Targets: []string{"system"}, Pull: pull(index, false)}, []*Scenario{sc, plain},
			[]string{"b [system pi0w linux/arm/v5]", "b [system pi3b+ linux/arm64]", "b [system pi4/32 linux/arm/v7]", "p [system linux/arm/v7]"}, nil},
		{"run boards intersect the scenario's", Planner{Targets: []string{"system", "user"}, Boards: boards(t, "pi3b+", "pi2"), Pull: pull(index, false)}, []*Scenario{sc, plain},
			[]string{"b [system pi3b+ linux/arm64]", "b [user pi3b+ linux/arm64]", "p [system pi3b+ linux/arm64]", "p [system pi2 linux/arm/v7]"}, nil},
		{"nothing in common", Planner{Targets: []string{"system"}, Boards: boards(t, "pi5"), Pull: pull(index, false)}, []*Scenario{sc},
			nil, nil},
		{"no manifest for the board", Planner{Targets: []string{"system"}, Pull: pull(plats("linux/arm/v7", "linux/amd64"), false)}, []*Scenario{sc},
			[]string{"b [system pi0w linux/arm/v6] REFUSED", "b [system pi3b+ linux/arm/v7]", "b [system pi4/32 linux/arm/v7]"},
			func(t *testing.T, cs []Case) {
				if !strings.Contains(cs[0].Refused, "pi0w (Raspberry Pi Zero W) asks for linux/arm/v6 and the index has no manifest it accepts") || !strings.Contains(cs[0].Refused, "the index has linux/arm/v7, linux/amd64") {
					t.Errorf("refusal %q", cs[0].Refused)
				}
			}},
		{"a single manifest is pulled whatever it is", Planner{Targets: []string{"system"}, Pull: pull(plats("linux/arm/v7"), true)}, []*Scenario{sc},
			[]string{"b [system pi0w linux/arm/v7]", "b [system pi3b+ linux/arm/v7]", "b [system pi4/32 linux/arm/v7]"},
			func(t *testing.T, cs []Case) {
				if !strings.Contains(cs[0].Pulled, "pi0w asks for linux/arm/v6; Docker warns") {
					t.Errorf("pi0w's note %q", cs[0].Pulled)
				}
			}},
		{"unknown platforms", Planner{Targets: []string{"system"}, Boards: boards(t, "pi2")}, []*Scenario{plain},
			[]string{"p [system pi2 linux/arm/v7] REFUSED"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := c.p.Cases(c.scs)
			if got := keys(cs); strings.Join(got, "; ") != strings.Join(c.want, "; ") {
				t.Fatalf("cases\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
			if c.detail != nil {
				c.detail(t, cs)
			}
		})
	}
}

// A scenario's boards: are resolved when it loads, with file:line:col for
// a name no profile has (listing the known ones) and for boards given with
// platforms.
func TestParseBoardsErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"name: x\nboards: [pi3b+, pi9]\nsteps:\n  - wait: 1ms\n", `x.yaml:2:17: boards[1]: unknown board "pi9"; known boards: pi0w (pi0), pi1 (pi1b+), pi2 (pi2b)`},
		{"name: x\nboards: [pi3, pi3b+/64]\nsteps:\n  - wait: 1ms\n", "x.yaml:2:15: boards[1]: pi3b+/64 is listed twice"},
		{"name: x\nboards: [pi2/64]\nsteps:\n  - wait: 1ms\n", `x.yaml:2:10: boards[0]: board "pi2/64": a pi2 (Raspberry Pi 2 Model B, Cortex-A7) has no 64-bit OS`},
		{"name: x\nboards: []\nsteps:\n  - wait: 1ms\n", "x.yaml:2:9: boards: want at least one board"},
		{"name: x\nplatforms: [linux/arm/v7]\nboards: [pi2]\nsteps:\n  - wait: 1ms\n", "x.yaml:3:1: boards: a board runs the manifest its engine pulls"},
	} {
		_, err := Parse("x.yaml", []byte(c.yaml), WithFixtures(nil))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n  %v\nwant %q", c.yaml, err, c.want)
		}
	}
	cat, err := board.Builtin().WithProfiles("extra.yaml", []byte(`boards:
  - name: acme-a7
    model: Acme A7
    cpu: Cortex-A7
    memory: 1GiB
    isa: {arch: v7, fp: VFPv4, simd: NEONv2, idiv: true}
    os:
      32:
        platform: linux/arm/v7
        system: {emulator: qemu-system-arm, machine: virt, cpu: cortex-a7, kernel: armhf}
        user: {emulator: qemu-arm, cpu: cortex-a7}
`))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := Parse("x.yaml", []byte("name: x\nboards: [acme-a7]\nsteps:\n  - wait: 1ms\n"), WithFixtures(nil), WithBoardCatalog(cat))
	if err != nil || len(sc.Boards) != 1 || sc.Boards[0].Name != "acme-a7" {
		t.Fatalf("a profile file's board: %v, %v", sc, err)
	}
}

// The board reaches the target, the result names it, a board that pulls
// nothing fails without a boot, and an app the board's CPU kills with
// SIGILL fails naming the board and its core.
func TestRunnerBoards(t *testing.T) {
	index := boardImages{plats: plats("linux/arm/v7", "linux/arm/v5")}
	run := func(t *testing.T, tg *fakeTarget, imgs ImageSource, bs []board.Board) []Result {
		t.Helper()
		sc, err := Parse("t.yaml", []byte(head("  - wait: 10ms\n")), WithFixtures(nil), WithKnownTargets("fake"))
		if err != nil {
			t.Fatal(err)
		}
		r := NewRunner(imgs, WithTarget(tg), WithBoards(bs...), WithRetries(0))
		return r.RunCases(context.Background(), r.Plan(sc), nil)
	}

	var got []*board.Board
	tg := &fakeTarget{script: func(d *fakeDevice) {
		got = append(got, d.cfg.Board)
		app(0)(d)
	}}
	rs := run(t, tg, index, boards(t, "pi0w", "pi2"))
	if len(rs) != 2 || rs[0].Verdict != Pass || rs[1].Verdict != Pass {
		t.Fatalf("results %+v", rs)
	}
	if rs[0].Board != "pi0w" || rs[0].Platform != "linux/arm/v5" || rs[1].Board != "pi2" || rs[1].Platform != "linux/arm/v7" || rs[0].ID() != "t [fake pi0w linux/arm/v5]" {
		t.Errorf("results name %s and %s", rs[0].ID(), rs[1].ID())
	}
	if len(got) != 2 || got[0] == nil || got[0].Name != "pi0w" || got[1].Name != "pi2" {
		t.Errorf("the target got boards %v", got)
	}

	tg = &fakeTarget{script: app(0)}
	rs = run(t, tg, boardImages{plats: plats("linux/arm/v7")}, boards(t, "pi1"))
	if rs[0].Verdict != Fail || tg.boots != 0 || !strings.Contains(rs[0].Reason, "the board pulls nothing: pi1 (Raspberry Pi 1 Model B+) asks for linux/arm/v6") {
		t.Errorf("pi1 on an armv7-only index: %s %q (%d boots)", rs[0].Verdict, rs[0].Reason, tg.boots)
	}

	tg = &fakeTarget{script: func(d *fakeDevice) { d.end(target.KilledBy("SIGILL", 132), nil) }}
	rs = run(t, tg, index, boards(t, "pi0w"))
	if rs[0].Verdict != Fail || !strings.HasPrefix(rs[0].Reason, "the startup (") || !strings.Contains(rs[0].Reason, "illegal instruction on pi0w (ARM1176JZF-S): the app was killed by SIGILL: the app ended (killed by SIGILL)") {
		t.Errorf("SIGILL: %s %q", rs[0].Verdict, rs[0].Reason)
	}
	tg = &fakeTarget{script: func(d *fakeDevice) {
		d.out <- target.Line{Stream: target.Stderr, Text: "SIGILL: illegal instruction"}
		d.end(target.Exited(2), nil)
	}}
	rs = run(t, tg, index, boards(t, "pi2"))
	if rs[0].Verdict != Fail || !strings.Contains(rs[0].Reason, `illegal instruction on pi2 (Cortex-A7): the Go runtime caught it ("SIGILL: illegal instruction") and exited 2`) {
		t.Errorf("Go's SIGILL: %s %q", rs[0].Verdict, rs[0].Reason)
	}
	// Without a board, a SIGILL is the app's plain failure.
	tg = &fakeTarget{script: func(d *fakeDevice) { d.end(target.KilledBy("SIGILL", 132), nil) }}
	rs = run(t, tg, index, nil)
	if rs[0].Verdict != Fail || strings.Contains(rs[0].Reason, "illegal instruction on") || rs[0].Board != "" {
		t.Errorf("no board: %s %q", rs[0].Verdict, rs[0].Reason)
	}
}

// WithParallel runs up to n cases at once, each once, with the results in
// plan order; without it, one at a time.
func TestRunCasesParallel(t *testing.T) {
	sc, err := Parse("t.yaml", []byte(head("  - wait: 150ms\n")), WithFixtures(nil), WithKnownTargets("fake"))
	if err != nil {
		t.Fatal(err)
	}
	bs := boards(t, "pi2", "pi3b+", "pi4/64", "pi5", "pi4/32")
	for _, n := range []int{1, 2, 3} {
		var mu sync.Mutex
		active, most := 0, 0
		ran := map[string]int{}
		tg := &fakeTarget{script: func(d *fakeDevice) {
			mu.Lock()
			active++
			most = max(most, active)
			ran[d.cfg.Board.String()]++
			mu.Unlock()
			app(0)(d)
			mu.Lock()
			active--
			mu.Unlock()
		}}
		r := NewRunner(boardImages{plats: plats("linux/arm/v7", "linux/arm64")}, WithTarget(tg), WithBoards(bs...), WithRetries(0), WithParallel(n))
		cases := r.Plan(sc)
		var seen []string
		rs := r.RunCases(context.Background(), cases, func(res Result) { seen = append(seen, res.Board) })
		if len(rs) != len(bs) || len(seen) != len(bs) {
			t.Fatalf("parallel %d: %d results, %d seen, want %d", n, len(rs), len(seen), len(bs))
		}
		for i, res := range rs {
			if res.Verdict != Pass || res.Board != bs[i].String() {
				t.Errorf("parallel %d: result %d is %s on %s, want a pass on %s (plan order)", n, i, res.Verdict, res.Board, bs[i])
			}
			if ran[bs[i].String()] != 1 {
				t.Errorf("parallel %d: %s ran %d times", n, bs[i], ran[bs[i].String()])
			}
		}
		if most != n {
			t.Errorf("parallel %d: at most %d cases ran at once", n, most)
		}
	}
}
