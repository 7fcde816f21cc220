package harness

import (
	"os/exec"
	"strings"
	"testing"
)

// The library's core links no Docker client, testcontainers, SSH or
// OpenTelemetry: those come only with the container and device targets
// and the docker-daemon image source, which a program imports when it
// wants them (hil's CLI does). Checked on each core package and on a
// program that runs scenarios on the system target
// (testdata/systemonly).
func TestCoreLinksNoDockerSSHOrOtel(t *testing.T) {
	forbidden := []string{
		"github.com/testcontainers/",
		"github.com/moby/",
		"github.com/docker/docker/",
		"go.opentelemetry.io/",
		"golang.org/x/crypto/ssh",
	}
	core := []string{
		"./testdata/systemonly",
		".", "./image", "./startup", "./replay", "./scenario", "./report",
		"./promote", "./promote/staticgate", "./promote/scenariogate",
		"./target/system", "./target/user", "./hiltest", "./hilginkgo",
	}
	// scenariogate records attestations (harness/attest), whose DSSE
	// library (go-securesystemslib) links x/crypto/ssh for SSH-key
	// signatures; it opens no SSH connection.
	sshForSigning := map[string]bool{"./promote/scenariogate": true}
	for _, pkg := range core {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) && !(sshForSigning[pkg] && strings.HasPrefix(dep, "golang.org/x/crypto/ssh")) {
					t.Errorf("%s links %s", pkg, dep)
				}
			}
		}
	}
	// The plug-ins do bring them: the check above would notice a dependency
	// that moved.
	out, err := exec.Command("go", "list", "-deps", "./target/container").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "github.com/moby/moby/client") {
		t.Errorf("the container target does not link the Docker client any more? %v\n%s", err, out)
	}
}
