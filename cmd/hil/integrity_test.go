package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/internal/tamper"
	"github.com/hilproject/hil/internal/testenv"
)

// The sample's arm/v7 app layer (opt/pcapwatch), fixed by the reproducible
// image build.
func sampleArmAppLayer(t testing.TB) string {
	t.Helper()
	return tamper.BlobsOf(t, filepath.Join(testenv.ImagesDir(t), "pcapwatch"), "linux/arm/v7").Top()
}

// tamperSampleLayout copies the sample layout and adds a file to its arm/v7
// app layer blob, keeping the blob's name: a valid layer, but not the one
// the manifest's digest and the config's diff_id pin.
func tamperSampleLayout(t *testing.T) string {
	t.Helper()
	l := tamper.CopyLayout(t, filepath.Join(testenv.ImagesDir(t), "pcapwatch"))
	l.Overwrite(sampleArmAppLayer(t), tamper.AddToLayer(t, l.Read(sampleArmAppLayer(t)), tamper.File("etc/tampered", "", 0o644), "not in the image\n"))
	return l.Dir
}

// Issue 12, repro 2: a layer blob that no longer matches its digest and
// diff_id must not pass `hil check` (it did, exit 0).
func TestCheckRefusesTamperedLayer(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	dir := tamperSampleLayout(t)
	out, errText, code := runHil(t, "check", "oci:"+dir, "--platform", "linux/arm/v7")
	if code != 2 {
		t.Fatalf("check of a tampered layout: exit %d, want 2 (refused)\n%s\n%s", code, out, errText)
	}
	for _, s := range []string{"layer " + sampleArmAppLayer(t), dir, "expected", "found"} {
		if !strings.Contains(errText, s) {
			t.Errorf("the error lacks %q: %s", s, errText)
		}
	}
}

// insecureVerbs are the commands with an --insecure flag, by path.
func insecureVerbs(c *cobra.Command) []string {
	var out []string
	if f := c.Flags().Lookup("insecure"); f != nil {
		out = append(out, strings.TrimPrefix(c.CommandPath(), "hil "))
	}
	for _, sub := range c.Commands() {
		out = append(out, insecureVerbs(sub)...)
	}
	return out
}

// Issue 12, repro 3: every verb that touches a registry refuses --insecure
// (plain HTTP) for a registry off loopback before any network I/O. Each
// runs as a process of its own in an empty network namespace, so even a
// regression could not reach 192.0.2.1 (TEST-NET-1, here the gateway).
func TestInsecureIsLoopbackOnlyInEveryVerb(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) not found: %v", err)
	}
	const far = "192.0.2.1:5000"
	scenarios := filepath.Join(testenv.RepoRoot(t), "scenarios")
	layout := filepath.Join(testenv.ImagesDir(t), "pcapwatch")
	verbs := map[string][]string{
		"check":           {"check", "--insecure", far + "/app:1"},
		"init":            {"init", "--insecure", "--image", far + "/app:1", "--dir", t.TempDir()},
		"image inspect":   {"image", "inspect", "--insecure", far + "/app:1"},
		"run":             {"run", "--insecure", "--image", far + "/app:1", scenarios},
		"gate":            {"gate", "--insecure", "--image", far + "/app:c", "--promote", "latest", "--scenarios", scenarios, "--report", t.TempDir()},
		"registry push":   {"registry", "push", "--insecure", layout, far + "/app:1"},
		"registry digest": {"registry", "digest", "--insecure", far + "/app:1"},
		"attest show":     {"attest", "show", "--insecure", far + "/app:1"},
		"attest verify":   {"attest", "verify", "--insecure", "--key", "no-such.pub", far + "/app:1"},
		"rollback":        {"rollback", "--insecure", "--tag", far + "/app:latest", "--key", "no-such.pub"},
		"watch":           {"watch", "--insecure", "--devices", "no-such.yaml", "--device", "pi-1", "--image", far + "/app:latest"},
	}
	for _, v := range insecureVerbs(rootCmd) {
		if verbs[v] == nil {
			t.Errorf("hil %s has --insecure but no case here: add it", v)
		}
	}
	for verb, args := range verbs {
		t.Run(strings.ReplaceAll(verb, " ", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "unshare", append([]string{"--net", os.Args[0]}, args...)...)
			cmd.Env = append(os.Environ(), "HIL_TEST_MAIN=1", "HIL_CACHE="+t.TempDir(), "DOCKER_CONFIG="+t.TempDir())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			msg := stderr.String()
			if code != 2 {
				t.Fatalf("hil %s: exit %d (%v), want 2\n%s", verb, code, err, msg)
			}
			for _, s := range []string{"--insecure", far, "not on loopback", "HTTPS"} {
				if !strings.Contains(msg, s) {
					t.Errorf("hil %s: the refusal lacks %q:\n%s", verb, s, msg)
				}
			}
		})
	}
}

// The same verbs with --insecure for a registry on loopback are not
// refused: each gets as far as the registry's answer.
func TestInsecureWorksOnLoopbackInEveryVerb(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := testenv.Registry(t)
	layout := filepath.Join(testenv.ImagesDir(t), "pcapwatch")
	ref := reg.Host + "/hil/pcapwatch:1"

	if out, errText, code := runHil(t, "registry", "push", "--insecure", layout, ref); code != 0 || !strings.Contains(out, reg.Host+"/hil/pcapwatch@sha256:") {
		t.Fatalf("registry push: exit %d %s\n%s", code, errText, out)
	}
	if out, errText, code := runHil(t, "registry", "digest", "--insecure", ref); code != 0 || !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("registry digest: exit %d %s\n%s", code, errText, out)
	}
	if out, errText, code := runHil(t, "image", "inspect", "--insecure", ref); code != 0 || !strings.Contains(out, "linux/arm/v7") {
		t.Fatalf("image inspect: exit %d %s\n%s", code, errText, out)
	}
	if out, errText, code := runHil(t, "check", "--insecure", ref, "--platform", "linux/arm/v7"); code != 0 || !strings.Contains(out, "OK: the program can start") {
		t.Fatalf("check: exit %d %s\n%s", code, errText, out)
	}
	// No attestation yet: exit 1, "none", not a refusal.
	if out, errText, code := runHil(t, "attest", "show", "--insecure", ref); code != 1 || !strings.Contains(out+errText, "no hil attestation is attached") {
		t.Fatalf("attest show: exit %d %s\n%s", code, errText, out)
	}
	_, pub := cosignKeyPair(t, t.TempDir(), "pw")
	if out, errText, code := runHil(t, "attest", "verify", "--insecure", "--key", pub, ref); code != 1 || !strings.Contains(out+errText, "no test-result attestation") {
		t.Fatalf("attest verify: exit %d %s\n%s", code, errText, out)
	}
	// Nothing attested in the repository: a refusal, not an error.
	if out, errText, code := runHil(t, "rollback", "--insecure", "--tag", ref, "--key", pub); code != 1 || !strings.Contains(out, "no earlier digest") {
		t.Fatalf("rollback: exit %d %s\n%s", code, errText, out)
	}
	// run opens the image (through the registry) before it makes the
	// targets: an unknown target after a successful open proves the open.
	_, errText, code := runHil(t, "run", "--insecure", "--image", ref, "--target", "no-such-target", filepath.Join(testenv.RepoRoot(t), "scenarios"))
	if code != 2 || !strings.Contains(errText, "unknown target") {
		t.Fatalf("run: exit %d %s; want the unknown-target error after the image opened", code, errText)
	}
	// gate: dry run with the fake tester.
	defer func(old func(*gateFlags) (promote.TestFunc, error)) { gateTester = old }(gateTester)
	gateTester = fakeTester(promote.Pass, "")
	out, errText, code := runHil(t, "gate", "--insecure", "--dry-run", "--image", ref, "--promote", "latest", "--report", t.TempDir())
	if code != 0 || !strings.Contains(out, "WOULD PROMOTE") {
		t.Fatalf("gate --dry-run: exit %d %s\n%s", code, errText, out)
	}
}

// Issue 12, repro 2 to the end: a copy of old-glibc whose runtime layer
// blob was swapped for the good image's (new glibc) under the old name is
// refused, and leaves nothing that a later gate of the genuine old-glibc
// (the same manifest digest, from a registry) could reuse: the gate
// refuses it for its glibc. Before, the check passed, the poisoned rootfs
// was cached under the manifest digest and the gate PROMOTED old-glibc.
func TestTamperedLayoutCannotPoisonTheGate(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	images := testenv.ImagesDir(t)
	// old-glibc's arm/v7 runtime layer (bullseye) and pcapwatch's (bookworm).
	oldRuntime := strings.TrimPrefix(tamper.BlobsOf(t, filepath.Join(images, "old-glibc"), "linux/arm/v7").Layers[0], "sha256:")
	goodRuntime := strings.TrimPrefix(tamper.BlobsOf(t, filepath.Join(images, "pcapwatch"), "linux/arm/v7").Layers[0], "sha256:")
	dir := filepath.Join(t.TempDir(), "old-glibc")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(images, "old-glibc"))); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(images, "pcapwatch", "blobs", "sha256", goodRuntime))
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(dir, "blobs", "sha256", oldRuntime)
	os.Chmod(blob, 0o644)
	if err := os.WriteFile(blob, good, 0o644); err != nil {
		t.Fatal(err)
	}

	_, errText, code := runHil(t, "check", "oci:"+dir, "--platform", "linux/arm/v7")
	if code != 2 || !strings.Contains(errText, "layer sha256:"+oldRuntime) {
		t.Fatalf("check of the tampered old-glibc: exit %d (%s), want 2 naming layer %s", code, errText, oldRuntime)
	}

	reg := testenv.Registry(t)
	cand := reg.Host + "/old-glibc:candidate"
	if out, errText, code := runHil(t, "registry", "push", filepath.Join(images, "old-glibc"), cand); code != 0 {
		t.Fatalf("registry push: exit %d %s\n%s", code, errText, out)
	}
	out, errOut, code := runHilStderr(t, "gate", "--target", "static", "--image", cand, "--promote", "latest", "--report", t.TempDir())
	if code != 1 || !strings.Contains(out, "gate: REFUSED") || !strings.Contains(out, "GLIBC_2.34") {
		t.Fatalf("gate of the genuine old-glibc after the tampered copy: exit %d, want 1 (refused for its glibc)\n%s\n%s", code, out, errOut)
	}
	if out, _, code := runHil(t, "registry", "digest", reg.Host+"/old-glibc:latest"); code != 1 || strings.TrimSpace(out) != "(none)" {
		t.Fatalf("latest after the refusal: %q (exit %d), want (none)", out, code)
	}
}
