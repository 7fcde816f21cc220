package promote

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/internal/testenv"
)

func gateBoards(t *testing.T, names ...string) []board.Board {
	t.Helper()
	bs, err := board.Builtin().LookupList(names...)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// boardTest passes every board's case unless fail names the board.
func boardTest(seen *[]Pinned, fail map[string]string) TestFunc {
	return func(ctx context.Context, p Pinned) (Result, error) {
		*seen = append(*seen, p)
		res := Result{Targets: []string{"system"}, Started: time.Now(), Finished: time.Now()}
		for _, bp := range p.Boards {
			o := Outcome{Scenario: "startup", Target: "system", Board: bp.Board.String(), Platform: bp.Platform.String(), Verdict: Pass}
			if why, ok := fail[bp.Board.String()]; ok {
				o.Verdict, o.Reason = Fail, why
			}
			res.Outcomes = append(res.Outcomes, o)
		}
		return res, nil
	}
}

// --boards: each board's engine pulls its manifest (what is tested), the
// gate promotes only when every board passed, names the board that did
// not, and refuses before testing when a board pulls nothing.
func TestGateBoards(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	armv5 := v1.Platform{OS: "linux", Architecture: "arm", Variant: "v5"}
	cand := reg.Host + "/fleet:candidate"
	want := pushIndex(t, cand, armv7, amd64, armv5)

	var seen []Pinned
	d, err := Gate(ctx, cand, "latest", boardTest(&seen, nil), WithRegistry(fastRegistry()), WithBoards(gateBoards(t, "pi0w", "pi3b+/32")...))
	if err != nil || !d.Promoted {
		t.Fatalf("Gate: %+v, %v", d, err)
	}
	if tagDigest(t, reg.Host+"/fleet:latest") != want.String() {
		t.Error("latest is not the tested digest")
	}
	if len(seen) != 1 || platformList(seen[0].Required) != "linux/arm/v5, linux/arm/v7" {
		t.Errorf("tested platforms %v; want what the boards pull", seen[0].Required)
	}
	if got := strings.Join(d.Boards, "; "); got != "pi0w pulls linux/arm/v5; pi3b+/32 pulls linux/arm/v7" || !strings.Contains(d.Reason, "every board (pi0w pulls linux/arm/v5, pi3b+/32 pulls linux/arm/v7) passed") {
		t.Errorf("boards %q, reason %q", got, d.Reason)
	}

	// One board fails: refused, naming it.
	d, err = Gate(ctx, cand, "stable", boardTest(&seen, map[string]string{"pi0w": "illegal instruction on pi0w (ARM1176JZF-S)"}), WithRegistry(fastRegistry()), WithBoards(gateBoards(t, "pi0w", "pi3b+/32")...))
	if err != nil || d.Promoted || !strings.Contains(d.Reason, "startup [system pi0w linux/arm/v5]: fail: illegal instruction on pi0w") {
		t.Fatalf("a failing board: %+v, %v", d, err)
	}
	// A board nothing ran on is a refusal too.
	empty := func(ctx context.Context, p Pinned) (Result, error) { return Result{}, nil }
	d, err = Gate(ctx, cand, "stable", empty, WithRegistry(fastRegistry()), WithBoards(gateBoards(t, "pi2")...))
	if err != nil || d.Promoted || !strings.Contains(d.Reason, "no scenario passed on board pi2") {
		t.Fatalf("untested board: %+v, %v", d, err)
	}

	// An index without anything a Pi Zero's engine accepts: refused before
	// any test, naming the board and what the index has.
	armOnly := reg.Host + "/armonly:candidate"
	pushIndex(t, armOnly, armv7)
	n := len(seen)
	d, err = Gate(ctx, armOnly, "latest", boardTest(&seen, nil), WithRegistry(fastRegistry()), WithBoards(gateBoards(t, "pi3b+", "pi0w")...))
	if err != nil || d.Promoted || len(seen) != n {
		t.Fatalf("no manifest for pi0w: %+v, %v (tests run: %d)", d, err, len(seen)-n)
	}
	if !strings.Contains(d.Reason, "board pi0w pulls nothing from") || !strings.Contains(d.Reason, "the index has linux/arm/v7") {
		t.Errorf("reason %q", d.Reason)
	}
	// A single manifest is pulled whatever it is: the test decides.
	single := reg.Host + "/single:candidate"
	pushImage(t, single, armv7)
	d, err = Gate(ctx, single, "latest", boardTest(&seen, map[string]string{"pi0w": "needs ARMv7"}), WithRegistry(fastRegistry()), WithBoards(gateBoards(t, "pi0w")...))
	if err != nil || d.Promoted || !strings.Contains(d.Reason, "needs ARMv7") || len(d.Boards) != 1 || d.Boards[0] != "pi0w pulls linux/arm/v7" {
		t.Fatalf("single manifest on pi0w: %+v, %v", d, err)
	}
}
