package harness

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/testenv"
)

func TestImageAndStaticCheck(t *testing.T) {
	images := testenv.ImagesDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	img, err := OpenImage(ctx, "oci:"+filepath.Join(images, "pcapwatch"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(img.Digest(), "sha256:") {
		t.Errorf("digest %q", img.Digest())
	}
	// A platform the image lacks is the image's fault, not the host's.
	if _, _, err := img.Platform(ctx, "linux/s390x"); err == nil || target.IsInfra(err) || !strings.Contains(err.Error(), "linux/arm/v7") {
		t.Errorf("missing platform: %v (infra %v); want an app-level error listing the platforms", err, target.IsInfra(err))
	}
	pi, rootfs, err := img.Platform(ctx, "linux/arm/v7")
	if err != nil {
		t.Fatal(err)
	}
	cfg := target.RunConfig{Entrypoint: pi.Config.Entrypoint, Cmd: pi.Config.Cmd, Env: pi.Config.Env}
	summary, problems, err := StaticCheck().Check(ctx, rootfs, pi, cfg)
	if err != nil || len(problems) != 0 || !strings.Contains(summary, "libpcap.so.0.8") {
		t.Errorf("good image: problems %v err %v\n%s", problems, err, summary)
	}

	bad, err := OpenImage(ctx, "oci:"+filepath.Join(images, "no-libpcap"))
	if err != nil {
		t.Fatal(err)
	}
	pi, rootfs, err = bad.Platform(ctx, "linux/arm/v7")
	if err != nil {
		t.Fatal(err)
	}
	_, problems, err = StaticCheck().Check(ctx, rootfs, pi, cfg)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0], "libpcap.so.0.8") {
		t.Errorf("no-libpcap: problems %v err %v", problems, err)
	}
}

func TestNewTargetNames(t *testing.T) {
	// This test binary links every target (plugins_test.go).
	for _, n := range []string{"system", "user", "container"} {
		tg, err := NewTarget(n)
		if err != nil || tg.Name() != n {
			t.Errorf("NewTarget(%q) = %v, %v", n, tg, err)
		}
	}
	if got := strings.Join(target.Names(), ","); got != "container,device,system,user" {
		t.Errorf("registered targets: %s", got)
	}
	if _, err := NewTarget("vm"); err == nil || !strings.Contains(err.Error(), "container, device, system, user") {
		t.Errorf("unknown target: %v", err)
	}
}

func TestDeviceTargetNeedsABoard(t *testing.T) {
	if _, err := NewTarget("device"); err == nil || !strings.Contains(err.Error(), "--device NAME") {
		t.Errorf("device without a board: %v", err)
	}
	inv := filepath.Join(t.TempDir(), "devices.yaml")
	if err := os.WriteFile(inv, []byte("boards:\n  - name: pi-lab-1\n    host: 192.0.2.10\n  - name: pi-lab-2\n    host: 192.0.2.11\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts, err := Config{Targets: []string{"device"}, Devices: inv, Device: "pi-lab-1"}.targets()
	if err != nil || len(ts) != 1 || ts[0].Name() != "device" {
		t.Fatalf("one board: %v, %v", ts, err)
	}
	ts, err = Config{Targets: []string{"device"}, Devices: inv, Device: "pi-lab-1,pi-lab-2"}.targets()
	if err != nil || len(ts) != 2 || ts[0].Name() != "device@pi-lab-1" || ts[1].Name() != "device@pi-lab-2" {
		t.Fatalf("two boards: %v, %v", ts, err)
	}
	if _, err := (Config{Targets: []string{"device"}, Devices: inv, Device: "pi-9"}).targets(); err == nil || !strings.Contains(err.Error(), "pi-lab-1") {
		t.Errorf("unknown board: %v", err)
	}
}
