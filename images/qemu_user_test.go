//go:build linux

package images_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/internal/testenv"
)

// Each arm/v7 image, started under qemu-user from its own rootfs, fails
// (or gets past the loader) exactly as images/README.md says a board would.
// qemu-user cannot capture (see FINDINGS.md), so the good image is only
// required to get as far as opening the capture.
func TestArmImagesStartOrBreakAsAdvertised(t *testing.T) {
	testenv.RequireCommand(t, "/usr/bin/qemu-arm-static", "qemu-user-static")
	_, imgs := built(t)
	cases := []struct {
		image string
		code  int    // expected exit status, -1: any non-zero
		want  string // in stdout+stderr
		prog  string // "" is /opt/pcapwatch
	}{
		{"pcapwatch", -1, "capture on lo", ""},
		{"no-libpcap", -1, "libpcap.so.0.8: cannot open shared object file", ""},
		{"old-glibc", -1, "version `GLIBC_2.34' not found", ""},
		{"no-loader", -1, "Could not open '/lib/ld-linux-armhf.so.3'", ""},
		{"wrong-arch", -1, "Invalid ELF image for this architecture", ""},
		{"crash-on-start", 1, "pcapwatch: fatal: reading /etc/pcapwatch/config.toml", ""},
		{"pcapwatch-rs", -1, "capture on lo", rustProg},
		{"rs-no-deps", -1, "libdbus-1.so.3: cannot open shared object file", rustProg},
	}
	for _, c := range cases {
		t.Run(c.image, func(t *testing.T) {
			root := rootfs(t, imgs[c.image].Layout, "linux/arm/v7")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			prog := c.prog
			if prog == "" {
				prog = "/opt/pcapwatch"
			}
			cmd := exec.CommandContext(ctx, "/usr/bin/qemu-arm-static", "-L", root, root+prog, "--iface", "lo")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				if err == nil && strings.Contains(out.String(), "ready iface=lo") && c.prog == "" && c.image == "pcapwatch" {
					return // a QEMU that can capture: better still
				}
				t.Fatalf("expected a non-zero exit, found %v; output %q", err, out.String())
			}
			t.Logf("exit %d: %s", ee.ExitCode(), strings.TrimSpace(out.String()))
			if c.code >= 0 && ee.ExitCode() != c.code {
				t.Errorf("expected exit status %d, found %d", c.code, ee.ExitCode())
			}
			if !strings.Contains(out.String(), c.want) {
				t.Errorf("expected %q in the output, found %q", c.want, out.String())
			}
			if (c.image == "pcapwatch" || c.image == "pcapwatch-rs") && strings.Contains(out.String(), "error while loading shared libraries") {
				t.Errorf("the good image failed to load: %q", out.String())
			}
		})
	}
}
