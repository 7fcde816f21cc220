package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/testenv"
)

// Two boards selected by tag run the same scenarios side by side, one case
// at a time each, and every result names its board.
func TestScenariosOnTwoBoardsInParallel(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	host := testenv.Dockerd(t)
	var inv strings.Builder
	inv.WriteString("boards:\n")
	for _, name := range []string{"lab-1", "lab-2"} {
		s := testenv.SSHD(t, testenv.WithSessionEnv("DOCKER_HOST="+host))
		addr, port, _ := strings.Cut(s.Addr, ":")
		fmt.Fprintf(&inv, "  - name: %s\n    host: %s\n    port: %s\n    user: %s\n    key: %s\n    known_hosts: %s\n    tags: [lab]\n",
			name, addr, port, s.User, s.ClientKey, s.KnownHosts)
	}
	fmt.Fprintf(&inv, "  - name: elsewhere\n    host: 192.0.2.1\n    tags: [office]\n")
	invPath := filepath.Join(t.TempDir(), "devices.yaml")
	if err := os.WriteFile(invPath, []byte(inv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	results, err := RunScenarios(ctx, Config{
		Image:     "oci:" + filepath.Join(images, "pcapwatch"),
		Scenarios: []string{filepath.Join(testenv.RepoRoot(t), "scenarios", "arp-sweep.yaml"), filepath.Join(testenv.RepoRoot(t), "scenarios", "graceful-stop.yaml")},
		Targets:   []string{"device"},
		Platforms: []string{"linux/amd64"},
		Devices:   invPath,
		Device:    "tag:lab",
	})
	if err != nil {
		t.Fatal(err)
	}
	perBoard := map[string]int{}
	var spans [][2]time.Time
	for _, r := range results {
		if r.Verdict != scenario.Pass {
			t.Errorf("%s: %s: %s", r.ID(), r.Verdict, r.Reason)
		}
		if want := "device@" + r.Device.String("board"); r.Target != want {
			t.Errorf("%s ran on board %q", r.ID(), r.Device["board"])
		}
		perBoard[r.Target]++
		spans = append(spans, [2]time.Time{r.Start, r.Start.Add(r.Duration)})
	}
	if perBoard["device@lab-1"] != 2 || perBoard["device@lab-2"] != 2 || len(results) != 4 {
		t.Fatalf("cases per board: %v; want both scenarios on lab-1 and lab-2 only", perBoard)
	}
	// Side by side: some case of one board overlaps some case of the other.
	overlap := false
	for i := range spans {
		for j := range spans {
			if results[i].Target != results[j].Target && spans[i][0].Before(spans[j][1]) && spans[j][0].Before(spans[i][1]) {
				overlap = true
			}
		}
	}
	if !overlap {
		t.Errorf("the boards ran one after the other, not in parallel")
	}
	// Boots that shared the engine removed their own tags only, and the
	// images went with the last of them.
	out, err := exec.Command("docker", "-H", host, "images", "--format", "{{.Repository}}:{{.Tag}}").CombinedOutput()
	if err != nil {
		t.Fatalf("docker images: %v: %s", err, out)
	}
	if strings.Contains(string(out), "hil.local") {
		t.Errorf("images left on the boards' engine: %s", out)
	}
}
