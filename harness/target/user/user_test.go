//go:build linux

package user_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/targettest"
	"github.com/hilproject/hil/harness/target/user"
	"github.com/hilproject/hil/internal/testenv"
)

func boot(t *testing.T, variant, platform, iface string) (target.App, *targettest.Collector) {
	t.Helper()
	testenv.RequireRoot(t)
	img := targettest.Open(t, variant, platform)
	return targettest.Boot(t, user.New(), img, variant+" "+platform, iface, 60*time.Second, nil)
}

// Under qemu-user the ARM app starts, then libpcap fails on the emulator's
// missing SIOCETHTOOL: the device must say capture is unsupported (with the
// probe's reason) and recognise the app's error as the emulator gap.
func TestARMUnderQemuCaptureUnsupported(t *testing.T) {
	dev, out := boot(t, "pcapwatch", "linux/arm/v7", "eth0")
	errLine := targettest.HitsEmulatorGap(t, dev, out, 20*time.Second, 20*time.Second)
	if reason, ok := user.EmulatorGap(errLine.Text); !ok || !strings.Contains(reason, "qemu-user") {
		t.Errorf("EmulatorGap(%q) = %q, %v: expected the emulator gap", errLine.Text, reason, ok)
	}
	info := dev.Info()
	if info.String("mode") != "qemu-user" || !strings.Contains(info.String("emulator_version"), "qemu-arm") {
		t.Errorf("info: expected qemu-user mode and the emulator version, got %v", info)
	}
	if _, ok := user.EmulatorGap(`{"event":"summary","frames":3}`); ok {
		t.Error("EmulatorGap matched an ordinary output line")
	}
}

// The amd64 image runs natively (chrooted): capture works, frames written
// to the link arrive as ingress on the app's interface, SIGTERM gives the
// summary and exit 0.
func TestAMD64NativeCaptures(t *testing.T) {
	dev, out := boot(t, "pcapwatch", "linux/amd64", "lan0")
	if caps := target.CapabilitiesOf(dev); !caps.Capture {
		t.Fatalf("native run: expected capture supported, got %+v", caps)
	}
	targettest.CapturesARPs(t, dev, out, "lan0", 5, 20*time.Second, 20*time.Second)
	out.Rest(5 * time.Second)
}

// A broken image fails the same way it would on a board.
func TestBrokenVariants(t *testing.T) {
	for _, tc := range []struct {
		variant, platform string
		code              int
		line              string
	}{
		{"crash-on-start", "linux/arm/v7", 1, ""},
		{"crash-on-start", "linux/amd64", 1, ""},
		{"no-libpcap", "linux/arm/v7", 127, "libpcap.so.0.8: cannot open shared object file"},
		{"no-libpcap", "linux/amd64", 127, "libpcap.so.0.8: cannot open shared object file"},
	} {
		t.Run(tc.variant+"/"+tc.platform, func(t *testing.T) {
			dev, out := boot(t, tc.variant, tc.platform, "eth0")
			targettest.FailsLikeABoard(t, dev, out, tc.code, tc.line, 20*time.Second, 5*time.Second)
		})
	}
}

// Close stops a running app (and its process group) and removes the
// namespace and veth pair; a second Close is harmless.
func TestCloseReleasesARunningApp(t *testing.T) {
	dev, out := boot(t, "pcapwatch", "linux/amd64", "eth0")
	out.Until(targettest.Contains("ready iface=eth0"), 20*time.Second)
	info := dev.Info()
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	targettest.Gone(t, info)
	if err := dev.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := dev.Signal(syscall.SIGTERM); err == nil {
		t.Error("signal after close: expected an error")
	}
}

// Bad input gets a clear error before anything is started.
func TestBootErrors(t *testing.T) {
	testenv.RequireRoot(t)
	img := targettest.Open(t, "pcapwatch", "linux/amd64")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  target.RunConfig
		want string
	}{
		{"no program", target.RunConfig{}, "neither an entrypoint nor a cmd"},
		{"missing program", target.RunConfig{Entrypoint: []string{"/opt/nope"}}, `entrypoint "/opt/nope" not found`},
		{"unknown user", target.RunConfig{Entrypoint: img.Config.Entrypoint, User: "nobody-here"}, `"nobody-here" does not exist`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, err := user.New().Boot(ctx, img, tc.cfg)
			if err == nil {
				dev.Close()
				t.Fatalf("expected an error with %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: expected it to contain %q", err, tc.want)
			}
		})
	}
}

// A board's CPU model: a Pi Zero W runs under qemu-arm -cpu arm1176, where
// the sample's armel build (linux/arm/v5) starts (its loader, libc and Go
// runtime run on ARMv6) and its armhf build dies of SIGILL in the loader,
// as on the board.
func TestBoardCPU(t *testing.T) {
	testenv.RequireRoot(t)
	pi0w, err := board.Builtin().Lookup("pi0w")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		platform string
		want     target.Exit
	}{
		{"linux/arm/v5", target.Exited(0)},
		{"linux/arm/v7", target.KilledBy("SIGILL", 128+int(syscall.SIGILL))},
	} {
		img := targettest.Open(t, "pcapwatch", c.platform)
		cfg := targettest.RunConfig(img, "eth0")
		cfg.Cmd, cfg.Board = []string{"-h"}, &pi0w
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		dev, err := user.New().Boot(ctx, img, cfg)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		out := targettest.Collect(t, dev)
		ex, err := dev.Wait(ctx)
		rest := out.Rest(2 * time.Second)
		info := dev.Info()
		dev.Close()
		cancel()
		if err != nil || ex != c.want {
			t.Errorf("%s on pi0w: %s, %v; want %s (output %v)", c.platform, ex, err, c.want, rest)
		}
		if info["board"] != "pi0w" || info["cpu"] != "arm1176" {
			t.Errorf("%s: info board %q cpu %q", c.platform, info["board"], info["cpu"])
		}
		if c.want.Code == 0 && !strings.Contains(out.Text(), "Usage of /opt/pcapwatch") {
			t.Errorf("armel build on pi0w printed %q", out.Text())
		}
	}
	// A 32-bit OS runs no arm64 program: unsupported, before anything runs.
	img := targettest.Open(t, "pcapwatch", "linux/arm64")
	cfg := targettest.RunConfig(img, "eth0")
	pi2, _ := board.Builtin().Lookup("pi2")
	cfg.Board = &pi2
	var ue *target.UnsupportedError
	if _, err := user.New().Boot(context.Background(), img, cfg); !errors.As(err, &ue) || !strings.Contains(err.Error(), "runs no arm64 program") {
		t.Errorf("arm64 on pi2: %v", err)
	}
}
