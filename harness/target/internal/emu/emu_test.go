package emu

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestFor(t *testing.T) {
	if e, err := For(v1.Platform{OS: "linux", Architecture: "amd64"}, "amd64"); err != nil || !e.Native {
		t.Errorf("amd64 on amd64: expected native, got %+v, %v", e, err)
	}
	if _, err := For(v1.Platform{OS: "windows", Architecture: "amd64"}, "amd64"); err == nil {
		t.Error("windows: expected an error")
	}
	if _, err := For(v1.Platform{OS: "linux", Architecture: "s390x"}, "amd64"); err == nil || !strings.Contains(err.Error(), "no qemu-user emulator known") {
		t.Errorf("s390x: expected an unknown-emulator error, got %v", err)
	}
	if _, err := exec.LookPath("qemu-arm-static"); err != nil {
		t.Skip("qemu-user-static not installed")
	}
	e, err := For(v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "amd64")
	if err != nil || e.Native || !strings.HasSuffix(e.Path, "qemu-arm-static") {
		t.Errorf("arm/v7 on amd64: expected qemu-arm-static, got %+v, %v", e, err)
	}
}

func TestGap(t *testing.T) {
	for _, line := range []string{
		"pcapwatch: capture on eth0: eth0: SIOCETHTOOL(ETHTOOL_GET_TS_INFO) ioctl failed: Function not implemented",
		"can't set PACKET_VERSION: Protocol not available",
		"setsockopt (TPACKET_V3): Protocol not available",
	} {
		if reason, ok := Gap(line); !ok || !strings.Contains(reason, "qemu-user") {
			t.Errorf("Gap(%q) = %q, %v: expected the emulator gap", line, reason, ok)
		}
	}
	for _, line := range []string{
		"ready iface=eth0",
		"pcapwatch: capture on eth0: No Such Device",
		"pcapwatch: fatal: reading /etc/pcapwatch/config.toml: no such file or directory",
		"/opt/pcapwatch: error while loading shared libraries: libpcap.so.0.8: cannot open shared object file",
	} {
		if reason, ok := Gap(line); ok {
			t.Errorf("Gap(%q) = %q: an app failure taken for the emulator gap", line, reason)
		}
	}
}

// The probe really runs under the emulator (qemu 7.2 here) and finds the
// gaps FINDINGS.md lists; natively it finds none.
func TestProbe(t *testing.T) {
	if _, err := exec.LookPath("qemu-arm-static"); err != nil {
		t.Skip("qemu-user-static not installed")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no Go toolchain to build the probe")
	}
	if os.Geteuid() != 0 {
		t.Skip("the probe opens a packet socket: needs root")
	}
	t.Setenv("HIL_CACHE", t.TempDir())
	memo.Clear()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := For(v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Probe(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if r.Capture {
		t.Fatalf("qemu-user: expected capture unsupported, got %+v", r)
	}
	if !strings.Contains(r.Reason, "SIOCETHTOOL") || !strings.Contains(r.Reason, r.Version) {
		t.Errorf("reason %q: expected SIOCETHTOOL and the QEMU version", r.Reason)
	}
	// Cached: a second probe does not run the emulator again.
	memo.Clear()
	r2, err := Probe(ctx, e)
	if err != nil || !r2.Probed.Equal(r.Probed) {
		t.Errorf("second probe: expected the cached report, got %+v, %v", r2, err)
	}
	if n, _ := Probe(ctx, Emulator{Native: true}); !n.Capture {
		t.Error("native: expected capture")
	}
}
