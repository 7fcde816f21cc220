package kernel

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDebianArmmp gets the real Debian kernel (fetched through apt on a
// fresh cache; HIL_TEST_KERNEL_FETCH=1 forces the apt round trip) and checks
// the modules come out in dependency order.
func TestDebianArmmp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	get := Default
	if os.Getenv("HIL_TEST_KERNEL_FETCH") == "1" {
		get = Fetch
	}
	k, err := get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(k.Release, "-armmp") || !strings.HasPrefix(k.Package, "linux-image-") {
		t.Fatalf("unexpected kernel %+v", k)
	}
	if st, err := os.Stat(k.Image); err != nil || st.Size() < 1<<20 {
		t.Fatalf("kernel image %s: %v", k.Image, err)
	}
	pos := map[string]int{}
	for i, m := range k.Modules {
		pos[m.Name] = i
		if _, err := os.Stat(m.Path); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"failover", "net_failover", "virtio_mmio", "virtio_net", "virtio_console"} {
		if _, ok := pos[want]; !ok {
			t.Fatalf("module %s missing from %+v", want, k.Modules)
		}
	}
	if !(pos["failover"] < pos["net_failover"] && pos["net_failover"] < pos["virtio_net"]) {
		t.Fatalf("modules not in dependency order: %+v", k.Modules)
	}
	ks, err := List()
	if err != nil {
		t.Fatal(err)
	}
	var newest *Kernel
	for _, c := range ks {
		if c.Arch == "armhf" {
			newest = c
		}
	}
	if newest == nil {
		t.Fatalf("List after Fetch has no armhf kernel: %v", ks)
	}
	d, err := Default(ctx)
	if err != nil || d.Package != newest.Package {
		t.Fatalf("Default = %+v, %v; want the newest cached armhf kernel %s", d, err, newest.Package)
	}
}

func TestLocalMissingModule(t *testing.T) {
	img := t.TempDir() + "/zImage"
	os.WriteFile(img, []byte("x"), 0o644)
	_, err := Local(img, t.TempDir(), "armhf", "virtio_net")
	if err == nil || !strings.Contains(err.Error(), "virtio_net not found") {
		t.Fatalf("want a 'virtio_net not found' error, got %v", err)
	}
	if _, err := Local("/nonexistent/zImage", "", "armhf"); err == nil {
		t.Fatal("missing kernel image accepted")
	}
}

func TestReleaseOrder(t *testing.T) {
	if !releaseLess("6.1.0-9-armmp", "6.1.0-50-armmp") {
		t.Fatal("6.1.0-9 should sort before 6.1.0-50")
	}
}
