package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/internal/testimage"
	"github.com/hilproject/hil/schemas"
)

func TestCheckCommand(t *testing.T) {
	images := testenv.ImagesDir(t)

	out, errText, code := runHil(t, "check", "oci:"+filepath.Join(images, "pcapwatch"))
	if code != 0 {
		t.Fatalf("good image: exit %d (%s)\n%s", code, errText, out)
	}
	for _, s := range []string{"== linux/arm/v7", "== linux/amd64", "libpcap.so.0.8 =>", "OK: the program can start"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}

	out, errText, code = runHil(t, "check", filepath.Join(images, "no-libpcap"), "--platform", "linux/arm/v7", "--json")
	if code != 1 {
		t.Fatalf("no-libpcap: exit %d, want 1 (%s)\n%s", code, errText, out)
	}
	validates(t, "hil check --json (failing)", schemas.Check, out)
	var res checkOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if res.OK || len(res.Results) != 1 || res.Results[0].Platform != "linux/arm/v7" {
		t.Fatalf("JSON result: %+v", res)
	}
	if ps := res.Results[0].Report.Problems; len(ps) != 1 || ps[0].Kind != "missing-library" || ps[0].Object != "libpcap.so.0.8" {
		t.Fatalf("problems: %+v", ps)
	}
	if !strings.Contains(errText, "cannot start on linux/arm/v7") {
		t.Errorf("error text %q", errText)
	}

	if _, errText, code = runHil(t, "check", "oci:"+filepath.Join(images, "pcapwatch"), "--platform", "linux/riscv64"); code != 2 || !strings.Contains(errText, "linux/arm/v7") {
		t.Errorf("absent platform: exit %d, %q; want 2 naming the platforms present", code, errText)
	}
	if _, errText, code = runHil(t, "check", "oci:"+filepath.Join(t.TempDir(), "nope")); code != 2 {
		t.Errorf("bad reference: exit %d (%s), want 2", code, errText)
	}
}

// Issue 12, repro 4: the seed's shell form. ENTRYPOINT /opt/program is
// stored as ["/bin/sh", "-c", "/opt/program"]; the program lacks
// libgcc_s.so.1. Only dash used to be checked ("OK: the program can
// start"); now the program the string runs is checked too.
func TestCheckShellForm(t *testing.T) {
	dir := testimage.ShellImage(t, testimage.Spec{Entrypoint: []string{"/bin/sh", "-c", testimage.Program}})
	out, errText, code := runHil(t, "check", "oci:"+dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (%s)\n%s", code, errText, out)
	}
	for _, s := range []string{"program: /bin/sh -> /bin/dash", "sh -c runs /opt/program: program needs libgcc_s.so.1 but the image does not have it", "[missing-library]"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "OK: the program can start") {
		t.Errorf("still says OK:\n%s", out)
	}

	// With the library the same image starts.
	good := testimage.ShellImage(t, testimage.Spec{Entrypoint: []string{"/bin/sh", "-c", testimage.Program}, KeepLibgccS: true})
	if out, errText, code := runHil(t, "check", "oci:"+good); code != 0 || !strings.Contains(out, "OK: the program can start") {
		t.Errorf("with libgcc_s.so.1: exit %d (%s)\n%s", code, errText, out)
	}

	// What the string runs from a variable the image does not set cannot
	// be checked: exit 1 with the reason, unless --allow-unresolved.
	unresolved := testimage.ShellImage(t, testimage.Spec{Entrypoint: []string{"/bin/sh", "-ec"}, Cmd: []string{"exec $APP"}, KeepLibgccS: true})
	out, errText, code = runHil(t, "check", "oci:"+unresolved, "--json")
	if code != 1 || !strings.Contains(errText, "not checked: $APP") || !strings.Contains(errText, "--allow-unresolved") {
		t.Fatalf("unresolved: exit %d, error %q", code, errText)
	}
	var res checkOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if r := res.Results[0].Report; res.OK || len(r.NotChecked) != 1 || r.NotChecked[0].What != "$APP" || !r.OK() {
		t.Errorf("JSON: ok=%v %+v", res.OK, res.Results[0].Report)
	}
	if out, errText, code := runHil(t, "check", "oci:"+unresolved, "--allow-unresolved"); code != 0 || !strings.Contains(out, "not checked: $APP") {
		t.Errorf("--allow-unresolved: exit %d (%s)\n%s", code, errText, out)
	}
}

// Boards: each board gets the manifest its engine pulls (containerd's
// matcher) and every ELF is held to its ISA.
func TestCheckBoards(t *testing.T) {
	images := testenv.ImagesDir(t)
	index := "oci:" + filepath.Join(images, "pcapwatch")
	single := "docker-archive:" + filepath.Join(images, "pcapwatch.tar") + ":hil.local/pcapwatch:arm-v7"

	// The sample index has arm/v7, amd64, arm/v5 (armel) and arm64: a Pi
	// Zero's engine (arm/v6, v5) takes the armel build, a Pi 2 arm/v7, a
	// Pi 3 (64-bit OS) arm64; all of them fit their board.
	out, errText, code := runHil(t, "check", index, "--boards", "pi0w,pi2,pi3b+", "--json")
	if code != 0 {
		t.Fatalf("exit %d (%s)\n%s", code, errText, out)
	}
	var res checkOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 3 {
		t.Fatalf("%d results: %+v", len(res.Results), res.Results)
	}
	for i, want := range []string{"linux/arm/v5", "linux/arm/v7", "linux/arm64"} {
		if r := res.Results[i]; r.Platform != want || r.Report == nil || !r.Report.OK() || r.Report.Board != r.Board {
			t.Errorf("%s: %+v, want %s", r.Board, r, want)
		}
	}
	// An index with arm/v7 only (old-glibc): the Pi Zero's engine finds
	// nothing and says what the index has.
	out, errText, code = runHil(t, "check", "oci:"+filepath.Join(images, "old-glibc"), "--boards", "pi0w", "--json")
	res = checkOutput{}
	if code != 1 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("old-glibc on pi0w: exit %d (%s)\n%s", code, errText, out)
	}
	if r := res.Results[0]; r.Board != "pi0w" || !strings.Contains(r.Refused, "asks for linux/arm/v6") || !strings.Contains(r.Refused, "the index has linux/arm/v7") || r.Report != nil {
		t.Errorf("pi0w: %+v", r)
	}
	if !strings.Contains(errText, "no manifest for pi0w") {
		t.Errorf("error %q", errText)
	}

	// A single-manifest arm/v7 image is pulled anyway: the Pi Zero's CPU
	// refuses it, naming a library and the board.
	out, errText, code = runHil(t, "check", single, "--board", "pi0w", "--board", "pi2")
	if code != 1 || !strings.Contains(errText, "cannot start on pi0w") || strings.Contains(errText, "pi2") {
		t.Fatalf("single manifest: exit %d (%s)\n%s", code, errText, out)
	}
	for _, s := range []string{
		"== board pi0w (Raspberry Pi Zero W) pulls linux/arm/v7",
		"libc.so.6 needs ARMv7 (Thumb-2, VFPv3, NEON); a pi0w (Raspberry Pi Zero W) has ARMv6 (ARM1176JZF-S, VFPv2): the board kills it with SIGILL",
		"pcapwatch is a Go program built with GOARM=7",
		"== board pi2 (Raspberry Pi 2 Model B) pulls linux/arm/v7",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}

	// Bad input: an unknown board lists the known ones; a profile file
	// with an error says file:line.
	if _, errText, code := runHil(t, "check", index, "--board", "pi9"); code != 2 || !strings.Contains(errText, `unknown board "pi9"`) || !strings.Contains(errText, "pi3b+ (pi3, pi3b)") {
		t.Errorf("unknown board: exit %d, %q", code, errText)
	}
	bad := filepath.Join(t.TempDir(), "boards.yaml")
	if err := os.WriteFile(bad, []byte("boards:\n  - name: x\n    colour: red\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errText, code := runHil(t, "check", index, "--board", "x", "--board-profiles", bad); code != 2 || !strings.Contains(errText, bad+":3: ") {
		t.Errorf("bad profile file: exit %d, %q", code, errText)
	}
}
