// Package targettest holds what the user and container target tests share:
// opening the sample images, a RunConfig from an image config, ARP frames
// the sample app reports, collecting output, and checks that nothing was
// left behind.
package targettest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// Collector reads a device's output in the background.
type Collector struct {
	t     testing.TB
	lines chan target.Line
	all   []target.Line
	done  chan struct{}
}

// Collect starts reading dev.Output().
func Collect(t testing.TB, dev target.Device) *Collector {
	c := &Collector{t: t, lines: make(chan target.Line, 1024), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.lines)
		for l := range dev.Output() {
			c.lines <- l
		}
	}()
	return c
}

// Until returns the first line matching pred, failing the test at timeout
// with everything seen so far.
func (c *Collector) Until(pred func(target.Line) bool, timeout time.Duration) target.Line {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("output ended without the expected line; output:\n%s", c.Text())
			}
			c.all = append(c.all, l)
			if pred(l) {
				return l
			}
		case <-deadline:
			c.t.Fatalf("no expected line after %v; output:\n%s", timeout, c.Text())
		}
	}
}

// Rest reads until the output ends (or timeout) and returns every line.
func (c *Collector) Rest(timeout time.Duration) []target.Line {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return c.all
			}
			c.all = append(c.all, l)
		case <-deadline:
			c.t.Fatalf("output did not end within %v; output:\n%s", timeout, c.Text())
		}
	}
}

// Text is every line seen so far.
func (c *Collector) Text() string {
	var b strings.Builder
	for _, l := range c.all {
		b.WriteString(string(l.Stream) + ": " + l.Text + "\n")
	}
	return b.String()
}

// Contains matches a line containing s.
func Contains(s string) func(target.Line) bool {
	return func(l target.Line) bool { return strings.Contains(l.Text, s) }
}

// Event decodes a JSON event line of the sample app ("" when not one).
func Event(l target.Line) (string, map[string]any) {
	var m map[string]any
	if json.Unmarshal([]byte(l.Text), &m) != nil {
		return "", nil
	}
	ev, _ := m["event"].(string)
	return ev, m
}

// Gone fails when what a closed device reported in Info still exists: its
// named namespace, the host end of its veth pair, its process.
func Gone(t testing.TB, info map[string]string) {
	t.Helper()
	if ns := info["netns"]; strings.HasPrefix(ns, "/run/netns/") || strings.HasPrefix(ns, "/var/run/netns/") {
		if _, err := os.Stat(ns); err == nil {
			t.Errorf("network namespace %s left behind", ns)
		}
	}
	if h := info["host_iface"]; h != "" {
		if _, err := os.Stat(filepath.Join("/sys/class/net", h)); err == nil {
			t.Errorf("host interface %s left behind", h)
		}
	}
	if pid := info["pid"]; pid != "" && info["target"] == "user" {
		if _, err := os.Stat(filepath.Join("/proc", pid)); err == nil {
			st, _ := os.ReadFile(filepath.Join("/proc", pid, "stat"))
			t.Errorf("app process %s left behind: %s", pid, st)
		}
	}
}
