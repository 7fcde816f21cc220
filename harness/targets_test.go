package harness

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/testenv"
)

// Every bundled scenario on the user and container targets, on both
// platforms of the sample images (Go and Rust), with a private Docker engine on this x86
// host: the amd64 image passes everything natively, capture included; the
// arm/v7 image runs under qemu-user (directly, or bind-mounted into the
// container), where libpcap cannot capture, so its cases are unsupported
// with the emulator's reason — never failed.
func TestBundledScenariosOnUserAndContainer(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	// The private engine for the container target.
	t.Setenv("DOCKER_HOST", testenv.Dockerd(t))
	// The Go sample and its Rust twin pass the same cases.
	for _, sample := range []string{"pcapwatch", "pcapwatch-rs"} {
		t.Run(sample, func(t *testing.T) { bundledOnUserAndContainer(t, images, sample) })
	}
}

func bundledOnUserAndContainer(t *testing.T, images, sample string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	results, err := RunScenarios(ctx, Config{
		Image:     "oci:" + filepath.Join(images, sample),
		Scenarios: []string{filepath.Join(testenv.RepoRoot(t), "scenarios")},
		Targets:   []string{"user", "container"},
		Platforms: []string{"linux/arm/v7", "linux/amd64"},
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range results {
		seen[r.Target+" "+r.Platform]++
		switch r.Platform {
		case "linux/amd64":
			if r.Verdict != scenario.Pass {
				t.Errorf("%s: %s: %s", r.ID(), r.Verdict, r.Reason)
			}
		default:
			if r.Verdict != scenario.Unsupported || !strings.Contains(r.Reason, "qemu") {
				t.Errorf("%s: %s (%s); want unsupported with the emulator's reason", r.ID(), r.Verdict, r.Reason)
			}
		}
	}
	for _, k := range []string{"user linux/amd64", "user linux/arm/v7", "container linux/amd64", "container linux/arm/v7"} {
		if seen[k] < 7 {
			t.Errorf("%s: %d cases, want every bundled scenario", k, seen[k])
		}
	}
}
