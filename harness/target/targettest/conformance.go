// Package targettest checks that a target keeps the contract of
// harness/target, the way go-containerregistry's validate checks an
// image: Conformance runs the same checks on every target (hil's own
// system, user, container and device targets call it in their tests; a
// target of your own should too). It also holds the helpers those checks
// use (Collect, Wait, Gone).
package targettest

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/target"
)

// App is what Conformance runs: an image and two ways to run it.
type App struct {
	Image *image.Image
	// Serve runs until it gets SIGTERM: once up it prints a line holding
	// Ready on stdout, and on SIGTERM it exits with code 0.
	Serve target.RunConfig
	Ready string
	// Exit ends on its own with ExitCode, after a line holding ExitLine on
	// stderr.
	Exit     target.RunConfig
	ExitCode int
	ExitLine string
	// Timeout bounds each wait: a boot, the ready line, an exit (default
	// 2 minutes).
	Timeout time.Duration
	// Leftovers checks that nothing a closed device made is left, given
	// its Info from before Close (default Gone: its network namespace, its
	// veth end, its process on this host).
	Leftovers func(t testing.TB, info target.Info)
}

// Conformance checks the targets newTarget makes against the contract of
// harness/target, each check on a fresh device:
//
//   - boot and output: Boot returns once the app runs; its stdout lines
//     arrive on Output; it has a Link and an Info; a Liveness device is
//     alive.
//   - signal and exit: Signal delivers SIGTERM; Wait returns the observed
//     exit 0; Output then ends; a Liveness device is not dead after its
//     app's own exit.
//   - exit on its own: Wait returns the observed ExitCode; the stderr
//     line arrived, on stderr; Output ends.
//   - close while running: Close stops the app; Wait then returns an exit
//     that is not observed (never exit 0), and Output ends.
//   - every device: Close is safe to call twice (same result), and leaves
//     nothing behind (App.Leftovers).
func Conformance(t *testing.T, newTarget func(t *testing.T) target.Target, app App) {
	if app.Timeout == 0 {
		app.Timeout = 2 * time.Minute
	}
	if app.Leftovers == nil {
		app.Leftovers = Gone
	}
	boot := func(t *testing.T, cfg target.RunConfig) (target.App, *Collector) {
		t.Helper()
		tg := newTarget(t)
		ctx, cancel := context.WithTimeout(context.Background(), app.Timeout)
		defer cancel()
		dev, err := tg.Boot(ctx, app.Image, cfg)
		if err != nil {
			t.Fatalf("%s: Boot: %v", tg.Name(), err)
		}
		if dev == nil {
			t.Fatalf("%s: Boot returned no device and no error", tg.Name())
		}
		t.Cleanup(func() { closeTwice(t, dev, app.Leftovers) })
		return dev, Collect(t, dev)
	}
	ready := func(l target.Line) bool { return l.Stream == target.Stdout && strings.Contains(l.Text, app.Ready) }

	t.Run("boot, output, signal and exit", func(t *testing.T) {
		dev, out := boot(t, app.Serve)
		out.Until(ready, app.Timeout)
		if dev.Link() == nil {
			t.Error("Link is nil while the app runs")
		}
		if len(dev.Info()) == 0 {
			t.Error("Info says nothing about the device")
		}
		if err := dev.Info().Validate(); err != nil {
			t.Errorf("Info is not typed as target.InfoKeys documents: %v", err)
		}
		alive(t, dev, true)
		if err := dev.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("Signal(SIGTERM): %v", err)
		}
		if ex := Wait(t, dev, app.Timeout); !ex.Observed || ex.Code != 0 || ex.Signal != "" {
			t.Errorf("after SIGTERM: exit %s (%+v), want the observed exit 0", ex, ex)
		}
		out.Rest(app.Timeout)
		alive(t, dev, true) // its own exit is not a death
	})

	t.Run("exit on its own", func(t *testing.T) {
		dev, out := boot(t, app.Exit)
		ex := Wait(t, dev, app.Timeout)
		lines := out.Rest(app.Timeout)
		if !ex.Observed || ex.Code != app.ExitCode {
			t.Errorf("exit %s (%+v), want the observed exit %d; output:\n%s", ex, ex, app.ExitCode, out.Text())
		}
		found := false
		for _, l := range lines {
			found = found || l.Stream == target.Stderr && strings.Contains(l.Text, app.ExitLine)
		}
		if !found {
			t.Errorf("no line holding %q on stderr; output:\n%s", app.ExitLine, out.Text())
		}
	})

	t.Run("close while running", func(t *testing.T) {
		dev, out := boot(t, app.Serve)
		out.Until(ready, app.Timeout)
		if err := dev.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), app.Timeout)
		defer cancel()
		ex, err := dev.Wait(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait did not return within %s of Close", app.Timeout)
		}
		if ex.Observed {
			t.Errorf("after Close: exit %s was observed; an app hil stopped has no exit status", ex)
		}
		out.Rest(app.Timeout)
	})
}

// alive checks a Liveness device: want says it should be alive (nil).
func alive(t *testing.T, dev target.App, want bool) {
	t.Helper()
	if _, ok := dev.(target.Liveness); !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := target.AliveOf(ctx, dev); (err == nil) != want {
		t.Errorf("Alive = %v, want alive %v", err, want)
	}
}

// closeTwice closes dev twice (the second Close must give what the first
// gave) and checks that nothing is left.
func closeTwice(t testing.TB, dev target.App, leftovers func(testing.TB, target.Info)) {
	info := dev.Info()
	first := dev.Close()
	if first != nil {
		t.Errorf("Close: %v", first)
	}
	if second := dev.Close(); (second == nil) != (first == nil) {
		t.Errorf("Close again: %v, after %v: Close must be safe to call twice", second, first)
	}
	leftovers(t, info)
}
