package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hilproject/hil/internal/testenv"
)

// hil gate for a fleet (--fleet FILE) with the static check: the sample
// index, whose armel build a Pi Zero W pulls, is promoted and attested
// per board; the armhf-only image, which the Zero pulls anyway, is
// refused naming the board and the ISA reason, latest unchanged. Bad
// input (an unknown board, a fleet file with an error, --platforms with
// boards) stops the gate with exit 2 before anything is pinned.
func TestGateFleetStatic(t *testing.T) {
	images := testenv.ImagesDir(t)
	reg := testenv.Registry(t)
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(fleet, []byte("# the boards in the field\nboards: [pi0w, pi3b+]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := reg.Host + "/fleet"
	push := func(variant string) string {
		t.Helper()
		out, errOut, code := runHilStderr(t, "registry", "push", filepath.Join(images, variant), repo+":candidate")
		if code != 0 {
			t.Fatalf("pushing %s: %s", variant, errOut)
		}
		return strings.TrimSpace(out[strings.Index(out, "@")+1:])
	}
	latest := func() string {
		out, _, _ := runHilStderr(t, "registry", "digest", repo+":latest")
		return strings.TrimSpace(out)
	}
	gate := func(args ...string) (string, int) {
		out, errOut, code := runHilStderr(t, append([]string{"gate", "--image", repo + ":candidate", "--target", "static",
			"--promote", "latest", "--report", t.TempDir()}, args...)...)
		return out + errOut, code
	}

	good := push("pcapwatch")
	out, code := gate("--fleet", fleet)
	if code != 0 || latest() != good {
		t.Fatalf("the sample index: exit %d, latest %s (want %s):\n%s", code, latest(), good, out)
	}
	if !strings.Contains(out, "boards       pi0w pulls linux/arm/v5, pi3b+ pulls linux/arm64") || !strings.Contains(out, "every board (pi0w pulls linux/arm/v5, pi3b+ pulls linux/arm64) passed") {
		t.Errorf("the decision does not say what each board pulled:\n%s", out)
	}
	show, _, _ := runHilStderr(t, "attest", "show", repo+":latest", "--insecure")
	for _, want := range []string{"static-check/static/pi0w/linux/arm/v5", "static-check/static/pi3b+/linux/arm64"} {
		if !strings.Contains(show, want) {
			t.Errorf("the attestation does not name %s:\n%s", want, show)
		}
	}

	push("pcapwatch-armhf")
	out, code = gate("--boards", "pi0w,pi3b+")
	if code != 1 || latest() != good {
		t.Fatalf("armhf-only: exit %d (want 1), latest %s (want %s):\n%s", code, latest(), good, out)
	}
	for _, want := range []string{"gate: REFUSED", "static-check [static pi0w linux/arm/v7]: fail:", "libc.so.6 needs ARMv7 (Thumb-2, VFPv3, NEON); a pi0w (Raspberry Pi Zero W) has ARMv6 (ARM1176JZF-S, VFPv2)"} {
		if !strings.Contains(out, want) {
			t.Errorf("refusal lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "static pi3b+") {
		t.Errorf("the Pi 3 passed and is not among the failures:\n%s", out)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("boards:\n  - pi3b+\n  - pi9\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--boards", "pi9"}, `unknown board "pi9"; known boards: pi0w (pi0), pi1 (pi1b+), pi2 (pi2b)`},
		{[]string{"--fleet", bad}, bad + `:3: unknown board "pi9"`},
		{[]string{"--boards", "pi2", "--platforms", "linux/arm/v7"}, "--platform and --board/--fleet"},
	} {
		if out, code := gate(c.args...); code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, want 2 and %q:\n%s", c.args, code, c.want, out)
		}
	}
}
