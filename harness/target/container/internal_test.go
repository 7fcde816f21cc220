//go:build linux

package container

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/internal/testenv"
)

func TestLocalTag(t *testing.T) {
	h := v1.Hash{Algorithm: "sha256", Hex: "a90b5da76936efb9813e1440849377e180b9d1b68d78f1e4d0ca08f438f3793a"}
	for ref, want := range map[string]string{
		"oci:build/images/pcapwatch":                    "hil.local/pcapwatch:a90b5da76936",
		"oci:/x/pcapwatch/@sha256:4f75":                 "hil.local/pcapwatch:a90b5da76936",
		"docker-archive:build/images/no-libpcap.tar":    "hil.local/no-libpcap:a90b5da76936",
		"127.0.0.1:5000/team/Sensor_App:v1.2":           "hil.local/sensor_app:a90b5da76936",
		"registry:localhost:5000/app@sha256:4f7579055c": "hil.local/app:a90b5da76936",
		"oci:/tmp/###": "hil.local/image:a90b5da76936",
	} {
		if got := localTag(&image.Image{Ref: ref, ManifestDigest: h}); got != want {
			t.Errorf("localTag(%q) = %q, expected %q", ref, got, want)
		}
	}
}

func TestEngineArchAndExit(t *testing.T) {
	for m, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "riscv64": "riscv64"} {
		if got := engineArch(m); got != want {
			t.Errorf("engineArch(%q) = %q, expected %q", m, got, want)
		}
	}
}

func TestLocalEngine(t *testing.T) {
	for host, want := range map[string]bool{
		"unix:///var/run/docker.sock": true,
		"tcp://127.0.0.1:2375":        true,
		"tcp://localhost:2375":        true,
		"tcp://[::1]:2375":            true,
		"tcp://192.0.2.10:2376":       false,
		"ssh://pi@raspberrypi":        false,
		"::bad":                       false,
	} {
		if got := localEngine(host); got != want {
			t.Errorf("localEngine(%q) = %v, expected %v", host, got, want)
		}
	}
}

// The app starts only once its interface is up: an interface that is
// there but down keeps it waiting (libpcap would refuse it: "Interface
// Not Up"), and one that never comes up ends the wait with exit 125.
func TestWaitForIfaceWaitsUntilUp(t *testing.T) {
	testenv.RequireRoot(t)
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("no busybox on the host")
	}
	name := fmt.Sprintf("hilw%d", os.Getpid()%100000)
	la := netlink.NewLinkAttrs()
	la.Name = name
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: name + "p"}); err != nil {
		t.Fatal(err)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(link) })

	run := func(loops int) (string, error) {
		out, err := exec.Command(bb, "sh", "-c", waitScript(name, loops, bb), "wrapper", "echo", "started").CombinedOutput()
		return string(out), err
	}
	out, err := run(5)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 125 || !strings.Contains(out, "never appeared or never came up") {
		t.Fatalf("interface down: %q, %v; expected exit 125 saying it never came up", out, err)
	}

	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = netlink.LinkSetUp(link)
	}()
	start := time.Now()
	out, err = run(2500)
	if err != nil || strings.TrimSpace(out) != "started" {
		t.Fatalf("interface brought up after 100 ms: %q, %v; expected the command to run", out, err)
	}
	if waited := time.Since(start); waited < 90*time.Millisecond {
		t.Errorf("the command ran after %v, before the interface came up", waited)
	}
}
