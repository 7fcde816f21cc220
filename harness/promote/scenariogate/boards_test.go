package scenariogate_test

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/promote/scenariogate"
	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/internal/testenv"
)

// The scenario gate with boards: each board's case runs what its engine
// pulls on the target's model of the board (qemu-arm -cpu arm1176 for a
// Pi Zero W), the outcomes and the attestation's configuration name the
// board, and --results planning agrees with the run. The sample index
// (its armel build for the Zero) passes; the armhf-only image, which the
// Zero pulls anyway, is refused: illegal instruction on pi0w.
func TestGateWithBoards(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := registry.New(registry.WithInsecure())
	candidate := strings.TrimPrefix(srv.URL, "http://") + "/fleet:candidate"
	ref, err := reg.ParseReference(candidate)
	if err != nil {
		t.Fatal(err)
	}
	boards, err := board.Builtin().LookupList("pi0w", "pi3b+/32")
	if err != nil {
		t.Fatal(err)
	}
	cfg := scenariogate.Config{Scenarios: []string{"testdata/usage.yaml"}, Targets: []string{"user"}, Boards: boards, ReportDir: t.TempDir()}
	test, err := scenariogate.Test(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gate := func(image string) *promote.Decision {
		t.Helper()
		if _, err := promote.PushLayout(ctx, reg, filepath.Join(images, image), ref); err != nil {
			t.Fatal(err)
		}
		d, err := promote.Gate(ctx, candidate, "latest", test, promote.WithRegistry(reg), promote.WithBoards(boards...), promote.WithDryRun())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := gate("pcapwatch")
	if !d.Passed || len(d.Result.Outcomes) != 2 {
		t.Fatalf("the sample index: %s %+v", d.Reason, d.Result.Outcomes)
	}
	for i, want := range []string{"usage [user pi0w linux/arm/v5]: pass", "usage [user pi3b+/32 linux/arm/v7]: pass"} {
		if got := d.Result.Outcomes[i].String(); got != want {
			t.Errorf("outcome %d: %q, want %q", i, got, want)
		}
	}
	var kinds []string
	for _, r := range d.Result.Configuration {
		if r.Kind == "board" {
			kinds = append(kinds, r.Name)
		}
	}
	if strings.Join(kinds, ",") != "pi0w,pi3b+/32" {
		t.Errorf("board profiles in the configuration: %v", kinds)
	}
	d = gate("pcapwatch-armhf")
	if d.Passed || !strings.Contains(d.Reason, "usage [user pi0w linux/arm/v7]: fail: ") || !strings.Contains(d.Reason, "illegal instruction on pi0w (ARM1176JZF-S)") {
		t.Errorf("armhf-only: passed %v: %s", d.Passed, d.Reason)
	}
	// Deciding from these results plans the same board cases.
	from, err := scenariogate.FromResults(cfg, cfg.ReportDir)
	if err != nil {
		t.Fatal(err)
	}
	d, err = promote.Gate(ctx, candidate, "latest", from, promote.WithRegistry(reg), promote.WithBoards(boards...), promote.WithDryRun())
	if err != nil {
		t.Fatal(err)
	}
	if d.Passed || len(d.Result.Outcomes) != 2 || d.Result.Outcomes[0].Board != "pi0w" || !strings.Contains(d.Reason, "illegal instruction on pi0w") {
		t.Errorf("from the results: %s %+v", d.Reason, d.Result.Outcomes)
	}
}
