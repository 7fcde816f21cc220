package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hilproject/hil/internal/fleetsim"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/schemas"
)

// pushVariant pushes a sample image layout to repo:tag and returns its
// digest (sha256:...).
func pushVariant(t *testing.T, images, variant, ref string) string {
	t.Helper()
	out, errOut, code := runHilStderr(t, "registry", "push", filepath.Join(images, variant), ref)
	if code != 0 {
		t.Fatalf("pushing %s: %s", variant, errOut)
	}
	return strings.TrimSpace(out[strings.Index(out, "@")+1:])
}

func tagDigestCLI(t *testing.T, ref string) string {
	t.Helper()
	out, _, _ := runHilStderr(t, "registry", "digest", ref)
	return strings.TrimSpace(out)
}

// waitRunning waits until the board's app container is running the
// digest (a container other than notID, up for at least a second).
func (b *fleetBoard) waitRunning(ctx context.Context, repo, digest, notID string, limit time.Duration) (string, time.Duration) {
	b.t.Helper()
	start := time.Now()
	for {
		id, _, digests := b.running(ctx)
		if id != "" && id != notID && slices.Contains(digests, repo+"@"+digest) {
			if c, err := b.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil && c.Container.State.Running {
				return id, time.Since(start)
			}
		}
		if time.Since(start) > limit {
			b.t.Fatalf("%s after it was due, the board runs container %.12s with %v, not %s", limit, id, digests, digest)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The rollback loop as it runs in the field, in one test: the board runs
// release A from latest (a container with unless-stopped, the fleet
// stand-in watching it); hil gate promotes late-crash (it passes the
// gate: the static check here, to keep the test short; the scenario
// suites show it passes every bundled scenario too), the stand-in rolls it
// out, and it panics 10 s after ready. hil watch --rollback sees the
// restart within its window, moves latest back to A (the last digest with
// a passing, signed hil attestation), and records why; the stand-in pulls
// A and the board runs it again. A second rollback has nowhere to go
// (late-crash is withdrawn) and changes nothing.
func TestWatchRollsBackALateCrashAndTheBoardRunsTheOldDigestAgain(t *testing.T) {
	images := testenv.ImagesDir(t)
	b := newFleetBoard(t)
	b.restart = dcontainer.RestartPolicyUnlessStopped
	reg := testenv.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Setenv("COSIGN_PASSWORD", "")
	signKey, pubKey := cosignKeyPair(t, t.TempDir(), "")
	repo := reg.Host + "/pcapwatch"
	gate := func() (string, int) {
		out, errOut, code := runHilStderr(t, "gate", "--image", repo+":candidate", "--target", "static",
			"--promote", "latest", "--sign-key", signKey, "--report", t.TempDir())
		return out + errOut, code
	}

	a := pushVariant(t, images, "pcapwatch-rs", repo+":candidate")
	if out, code := gate(); code != 0 {
		t.Fatalf("gate on pcapwatch-rs: exit %d:\n%s", code, out)
	}
	b.deploy(ctx, repo+":latest")
	b.watch(ctx, fleetsim.WithStopTimeout(5*time.Second))
	aID, _ := b.waitRunning(ctx, repo, a, "", 30*time.Second)

	bad := pushVariant(t, images, "late-crash", repo+":candidate")
	start := time.Now()
	if out, code := gate(); code != 0 || !strings.Contains(out, "gate: PROMOTED") {
		t.Fatalf("gate on late-crash: exit %d, want 0 (it passes the gate):\n%s", code, out)
	}
	promoted := time.Since(start)
	out, errOut, code := runHilStderr(t, "watch", "--devices", b.inventory, "--device", "pi-fleet-1", "--image", repo+":latest",
		"--rollout-timeout", "30s", "--window", "25s", "--rollback", "--key", pubKey, "--sign-key", signKey)
	restored := time.Since(start)
	// The panic is seen as a restart, or as the container restarting
	// (exit code 101), depending on when the window's poll falls.
	if code != 1 || !strings.Contains(out, "rollback: ROLLED BACK") || !regexp.MustCompile(`problem: container \w+ (restarted 1 times|is restarting \(exit code 101\))`).MatchString(out) {
		t.Fatalf("hil watch --rollback after late-crash: exit %d, want 1 with a restart seen and latest rolled back:\n%s%s", code, out, errOut)
	}
	if got := tagDigestCLI(t, repo+":latest"); got != a {
		t.Fatalf("latest is %s after the rollback, want A %s:\n%s", got, a, out)
	}
	_, back := b.waitRunning(ctx, repo, a, aID, 30*time.Second)
	t.Logf("rollback loop: promotion %s, then failed window and latest restored %s later, old digest running again %s later; %s in all",
		promoted.Round(time.Millisecond), (restored - promoted).Round(time.Millisecond), back.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// The record: signed, on both digests, naming the board and what it
	// showed.
	att, errOut, code := runHilStderr(t, "attest", "show", repo+"@"+bad, "--key", pubKey)
	if !strings.Contains(att, "rollback of "+repo+":latest") || !strings.Contains(att, "board pi-fleet-1: container") || !regexp.MustCompile(`withdrawn +`+bad).MatchString(att) {
		t.Fatalf("no rollback record on late-crash's digest (exit %d):\n%s%s", code, att, errOut)
	}

	// Nowhere left to go: refused, nothing written.
	out, errOut, code = runHilStderr(t, "rollback", "--tag", "latest", "--repository", repo, "--key", pubKey)
	if code != 1 || !strings.Contains(out, "no earlier digest") || !strings.Contains(out, "withdrawn") || !strings.Contains(errOut, "WARNING: no --sign-key") {
		t.Fatalf("hil rollback from the first release: exit %d, want 1 refusing:\n%s%s", code, out, errOut)
	}
	if got := tagDigestCLI(t, repo+":latest"); got != a {
		t.Fatalf("a refused rollback moved latest to %s", got)
	}
}

// The canary stage: a canary board runs the canary tag, a fleet board
// runs latest, each with the stand-in. A canary board that does not
// answer stops the gate before anything moves (infra-error). A candidate
// that crashes on the canary board is held there: latest never moves, the
// canary tag goes back, the report names the board and what it showed.
// A good candidate passes the canary window, then latest moves and the
// fleet board pulls it.
func TestCanaryHoldsLatestUntilTheCanaryBoardsPass(t *testing.T) {
	images := testenv.ImagesDir(t)
	canary := newFleetBoardNamed(t, "pi-canary-1", "canary")
	fleet := newFleetBoard(t)
	canary.restart = dcontainer.RestartPolicyUnlessStopped
	fleet.restart = dcontainer.RestartPolicyUnlessStopped
	reg := testenv.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	inv := filepath.Join(t.TempDir(), "devices.yaml")
	// pi-gone: a board whose SSH port nothing listens on.
	gone := "  - name: pi-gone\n    host: 127.0.0.1\n    port: 1\n    tags: [gone]\n"
	if err := os.WriteFile(inv, []byte("boards:\n"+canary.entry+fleet.entry+gone), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := reg.Host + "/pcapwatch"
	gate := func(boards, window string) (string, int) {
		out, errOut, code := runHilStderr(t, "gate", "--image", repo+":candidate", "--target", "static", "--no-attest",
			"--canary", "canary", "--canary-boards", boards, "--canary-window", window, "--canary-rollout", "30s",
			"--devices", inv, "--promote", "latest", "--report", t.TempDir())
		return out + errOut, code
	}

	a := pushVariant(t, images, "pcapwatch-rs", repo+":latest")
	pushVariant(t, images, "pcapwatch-rs", repo+":canary")
	canary.deploy(ctx, repo+":canary")
	fleet.deploy(ctx, repo+":latest")
	// A canary board in a crash loop must still get the canary tag's
	// next move: the real updater needs --include-restarting for that.
	canary.watch(ctx, fleetsim.WithStopTimeout(5*time.Second), fleetsim.WithIncludeRestarting())
	fleet.watch(ctx, fleetsim.WithStopTimeout(5*time.Second))
	fleetID, _ := fleet.waitRunning(ctx, repo, a, "", 30*time.Second)

	pushVariant(t, images, "crash-on-start", repo+":candidate")
	out, code := gate("pi-gone", "3s")
	if code != 2 || !strings.Contains(out, "infra-error") || !strings.Contains(out, "pi-gone") {
		t.Fatalf("canary on a board that does not answer: exit %d, want 2 (infra-error naming pi-gone):\n%s", code, out)
	}
	if got := tagDigestCLI(t, repo+":canary"); got != a {
		t.Fatalf("the canary tag moved to %s although a canary board does not answer", got)
	}

	out, code = gate("tag:canary", "5s")
	if code != 1 || !strings.Contains(out, "canary: CANARY-FAILED") || !strings.Contains(out, "board pi-canary-1") {
		t.Fatalf("canary on crash-on-start: exit %d, want 1 naming pi-canary-1:\n%s", code, out)
	}
	if got := tagDigestCLI(t, repo+":latest"); got != a {
		t.Fatalf("latest moved to %s after a failed canary window", got)
	}
	if got := tagDigestCLI(t, repo+":canary"); got != a {
		t.Fatalf("the canary tag is %s after a failed window, want it back on %s:\n%s", got, a, out)
	}
	if id, _, _ := fleet.running(ctx); id != fleetID {
		t.Fatalf("the fleet board's container changed (%.12s → %.12s) though latest never moved", fleetID, id)
	}

	// The good candidate in JSON: the canary document, valid against
	// its schema, says PROMOTED.
	good := pushVariant(t, images, "pcapwatch", repo+":candidate")
	jsonOut, errOut, code := runHilStderr(t, "gate", "--image", repo+":candidate", "--target", "static", "--no-attest",
		"--canary", "canary", "--canary-boards", "pi-canary-1", "--canary-window", "3s", "--canary-rollout", "30s",
		"--devices", inv, "--promote", "latest", "--report", t.TempDir(), "--json")
	if code != 0 || !strings.Contains(jsonOut, `"verdict": "PROMOTED"`) {
		t.Fatalf("canary on pcapwatch: exit %d, want 0 (promoted):\n%s%s", code, jsonOut, errOut)
	}
	validates(t, "hil gate --canary --json", schemas.Def("canary"), jsonOut)
	if got := tagDigestCLI(t, repo+":latest"); got != good {
		t.Fatalf("latest is %s after the canary passed, want %s", got, good)
	}
	fleet.waitRunning(ctx, repo, good, fleetID, 30*time.Second)

	// The fleet board runs what latest names and stays up: hil watch
	// --json says so in its schema's shape.
	jsonOut, errOut, code = runHilStderr(t, "watch", "--devices", inv, "--device", "pi-fleet-1", "--image", repo+":latest",
		"--rollout-timeout", "30s", "--window", "2s", "--json")
	if code != 0 || !strings.Contains(jsonOut, `"ok": true`) {
		t.Fatalf("hil watch --json on the fleet board: exit %d, want 0:\n%s%s", code, jsonOut, errOut)
	}
	validates(t, "hil watch --json", schemas.Def("watch"), jsonOut)
}

// Bad input stops before anything is pinned, read or written.
func TestCanaryAndRollbackBadInput(t *testing.T) {
	inv := filepath.Join(t.TempDir(), "devices.yaml")
	if err := os.WriteFile(inv, []byte("boards:\n  - name: pi-1\n    host: 127.0.0.1\n    tags: [canary]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gate", "--image", "127.0.0.1:1/app:candidate", "--target", "static", "--promote", "latest", "--canary", "canary"}, "--canary needs --canary-boards"},
		{[]string{"gate", "--image", "127.0.0.1:1/app:candidate", "--target", "static", "--promote", "latest", "--canary-boards", "pi-1"}, "--canary-boards without --canary"},
		{[]string{"gate", "--image", "127.0.0.1:1/app:candidate", "--target", "static", "--promote", "latest", "--canary", "canary", "--canary-boards", "tag:nope", "--devices", inv}, `no board in ` + inv + ` carries the tag "nope"`},
		{[]string{"gate", "--image", "127.0.0.1:1/app:candidate", "--target", "static", "--promote", "latest", "--canary", "canary", "--canary-boards", "pi-1", "--devices", inv, "--canary-window", "0s"}, "--canary-window 0s"},
		{[]string{"rollback", "--tag", "latest"}, "bare tag name: give --repository"},
		{[]string{"rollback", "--tag", "127.0.0.1:1/app:latest", "--require-result", "FAILED"}, "FAILED is never accepted"},
		{[]string{"rollback", "--tag", "127.0.0.1:1/app:latest", "--key", "/nonexistent.pub"}, "--key"},
		{[]string{"watch", "--devices", inv, "--device", "pi-1", "--image", "127.0.0.1:1/app:latest", "--rollback", "--sign-key", "/nonexistent.key"}, "--sign-key"},
	} {
		_, errText, code := runHil(t, c.args...)
		if code != 2 || !strings.Contains(errText, c.want) {
			t.Errorf("hil %s: exit %d %q, want 2 saying %q", strings.Join(c.args, " "), code, errText, c.want)
		}
	}
}
