// Package targettest holds what hil's own target tests share beyond the
// public harness/target/targettest (Conformance, Collect, Wait, Gone):
// opening the sample images, a RunConfig from an image config, ARP frames
// the sample app reports, the sample app's checks, and faults.
package targettest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	conformance "github.com/hilproject/hil/harness/target/targettest"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/testenv"
)

// Open opens the built sample image variant (pcapwatch, no-libpcap, ...)
// for platform, failing the test when it was not built.
func Open(t testing.TB, variant, platform string) *image.Image {
	t.Helper()
	dir := filepath.Join(testenv.ImagesDir(t), variant)
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		t.Fatalf("sample image %s not built in %s: run `make images`", variant, dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := image.Open(ctx, "oci:"+dir)
	if err != nil {
		t.Fatalf("opening %s: %v", dir, err)
	}
	img, err := a.Image(platform)
	if err != nil {
		t.Fatalf("%s: %v", variant, err)
	}
	return img
}

// RunConfig is img's own config, run on iface.
func RunConfig(img *image.Image, iface string) target.RunConfig {
	c := img.Config
	return target.RunConfig{
		Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env,
		WorkingDir: c.WorkingDir, User: c.User, Iface: iface,
	}
}

// ARP is an ARP request from 02:00:00:00:00:<i> at 192.168.1.<i>: the
// sample app reports each new (mac, ip) as device_seen.
func ARP(i byte) []byte {
	f := make([]byte, 42)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	mac := []byte{0x02, 0, 0, 0, 0, i}
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	binary.BigEndian.PutUint16(f[14:], 1)      // Ethernet
	binary.BigEndian.PutUint16(f[16:], 0x0800) // IPv4
	f[18], f[19] = 6, 4
	binary.BigEndian.PutUint16(f[20:], 1) // request
	copy(f[22:28], mac)
	copy(f[28:32], []byte{192, 168, 1, i})
	copy(f[38:42], []byte{192, 168, 1, 254})
	return f
}

// The generic helpers are the public targettest's (Conformance uses them).
type Collector = conformance.Collector

var (
	Collect  = conformance.Collect
	Contains = conformance.Contains
	Gone     = conformance.Gone
	Wait     = conformance.Wait
)

// Event decodes a JSON event line of the sample app ("" when not one).
func Event(l target.Line) (string, map[string]any) {
	var m map[string]any
	if json.Unmarshal([]byte(l.Text), &m) != nil {
		return "", nil
	}
	ev, _ := m["event"].(string)
	return ev, m
}

// SampleApp is the sample app pcapwatch for platform as Conformance's app:
// it serves (captures) on eth0 until SIGTERM, and an unknown flag makes
// it exit 2 at once with Go's flag error on stderr.
func SampleApp(t testing.TB, platform string) conformance.App {
	t.Helper()
	img := Open(t, "pcapwatch", platform)
	serve := RunConfig(img, "eth0")
	serve.Cmd = []string{"--iface", "eth0"}
	exit := RunConfig(img, "eth0")
	exit.Cmd = []string{"--no-such-flag"}
	return conformance.App{
		Image: img,
		Serve: serve, Ready: "ready iface=eth0",
		Exit: exit, ExitCode: 2, ExitLine: "flag provided but not defined: -no-such-flag",
	}
}
