package targettest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/target"
)

// Collector reads a device's output in the background.
type Collector struct {
	t     testing.TB
	lines chan target.Line
	all   []target.Line
	done  chan struct{}
}

// Collect starts reading dev.Output().
func Collect(t testing.TB, dev target.App) *Collector {
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

// Wait waits up to timeout for the app to exit and returns the observed
// exit, failing the test on an error.
func Wait(t testing.TB, dev target.App, timeout time.Duration) target.Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ex, err := dev.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return ex
}

// Gone fails when what a closed device reported in Info still exists on
// this host: its named network namespace ("netns"), the host end of its
// veth pair ("host_iface"), its process ("pid", for the targets whose
// process runs on this host: user and system).
func Gone(t testing.TB, info target.Info) {
	t.Helper()
	if ns := info.String("netns"); strings.HasPrefix(ns, "/run/netns/") || strings.HasPrefix(ns, "/var/run/netns/") {
		if _, err := os.Stat(ns); err == nil {
			t.Errorf("network namespace %s left behind", ns)
		}
	}
	if h := info.String("host_iface"); h != "" {
		if _, err := os.Stat(filepath.Join("/sys/class/net", h)); err == nil {
			t.Errorf("host interface %s left behind", h)
		}
	}
	if pid := info.String("pid"); pid != "" && (info["target"] == "user" || info["target"] == "system") {
		if st, err := os.ReadFile(filepath.Join("/proc", pid, "stat")); err == nil {
			t.Errorf("process %s left behind: %s", pid, st)
		}
	}
}
