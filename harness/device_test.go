package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/testenv"
)

// Every bundled scenario on the device target: a "board" made of a real
// sshd and a private Docker engine on this machine, running the amd64
// sample images (Go and Rust) natively, fixtures relayed by the agent over SSH.
func TestBundledScenariosOnALabBoard(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	host := testenv.Dockerd(t)
	s := testenv.SSHD(t, testenv.WithSessionEnv("DOCKER_HOST="+host))
	addr, port, _ := strings.Cut(s.Addr, ":")
	inv := filepath.Join(t.TempDir(), "devices.yaml")
	yaml := fmt.Sprintf("boards:\n  - name: lab-1\n    host: %s\n    port: %s\n    user: %s\n    key: %s\n    known_hosts: %s\n    tags: [lab]\n",
		addr, port, s.User, s.ClientKey, s.KnownHosts)
	if err := os.WriteFile(inv, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// The Go sample and its Rust twin pass the same cases.
	for _, sample := range []string{"pcapwatch", "pcapwatch-rs"} {
		t.Run(sample, func(t *testing.T) { bundledOnLabBoard(t, images, inv, sample) })
	}
}

func bundledOnLabBoard(t *testing.T, images, inv, sample string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	results, err := RunScenarios(ctx, Config{
		Image:     "oci:" + filepath.Join(images, sample),
		Scenarios: []string{filepath.Join(testenv.RepoRoot(t), "scenarios")},
		Targets:   []string{"device"},
		Platforms: []string{"linux/amd64"},
		Devices:   inv,
		Device:    "lab-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 7 {
		t.Fatalf("%d results, want one per bundled scenario", len(results))
	}
	for _, r := range results {
		if r.Verdict != scenario.Pass {
			t.Errorf("%s: %s: %s", r.ID(), r.Verdict, r.Reason)
		}
		if r.Device["board"] != "lab-1" {
			t.Errorf("%s: device info %v does not name the board", r.ID(), r.Device)
		}
	}
}
