package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hilproject/hil/internal/fleetsim"
	"github.com/hilproject/hil/internal/testenv"
)

// fleetBoard is a board as the fleet runs it: a Docker engine (private,
// on this machine) running the app container, with the fleet stand-in
// watching it, reachable over SSH for hil watch.
type fleetBoard struct {
	t         *testing.T
	cli       *client.Client
	inventory string
	// entry is the board's item of a devices.yaml boards list.
	entry   string
	standIn *fleetsim.StandIn
	// restart is the app container's restart policy ("" for none; a
	// fleet runs its app with unless-stopped).
	restart dcontainer.RestartPolicyMode
}

const fleetScope = "lab-fleet"

func newFleetBoard(t *testing.T) *fleetBoard {
	t.Helper()
	return newFleetBoardNamed(t, "pi-fleet-1", "fleet")
}

// newFleetBoardNamed is a fleet board called name with tags in its
// inventory entry.
func newFleetBoardNamed(t *testing.T, name string, tags ...string) *fleetBoard {
	t.Helper()
	testenv.RequireRoot(t)
	host := testenv.Dockerd(t)
	s := testenv.SSHD(t, testenv.WithSessionEnv("DOCKER_HOST="+host))
	addr, port, _ := strings.Cut(s.Addr, ":")
	inv := filepath.Join(t.TempDir(), "devices.yaml")
	entry := fmt.Sprintf("  - name: %s\n    host: %s\n    port: %s\n    user: %s\n    key: %s\n    known_hosts: %s\n    tags: [%s]\n",
		name, addr, port, s.User, s.ClientKey, s.KnownHosts, strings.Join(tags, ", "))
	if err := os.WriteFile(inv, []byte("boards:\n"+entry), 0o600); err != nil {
		t.Fatal(err)
	}
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return &fleetBoard{t: t, cli: cli, inventory: inv, entry: entry}
}

// deploy is the first install on the board: pull the tag and run it in
// the stand-in's scope, the app on the container's loopback (the board
// engine has no bridge).
func (b *fleetBoard) deploy(ctx context.Context, ref string) {
	b.t.Helper()
	pull, err := b.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err == nil {
		err = pull.Wait(ctx)
		pull.Close()
	}
	if err != nil {
		b.t.Fatalf("pulling %s onto the board: %v", ref, err)
	}
	c, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "pcapwatch",
		Config:     &dcontainer.Config{Image: ref, Cmd: []string{"--iface", "lo"}, Labels: map[string]string{fleetsim.ScopeLabel: fleetScope}},
		HostConfig: &dcontainer.HostConfig{NetworkMode: "none", RestartPolicy: dcontainer.RestartPolicy{Name: b.restart}}})
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		b.t.Fatal(err)
	}
}

// running is the app container's ID, image ID and repo digests.
func (b *fleetBoard) running(ctx context.Context) (id, image string, digests []string) {
	b.t.Helper()
	c, err := b.cli.ContainerInspect(ctx, "pcapwatch", client.ContainerInspectOptions{})
	if err != nil {
		return "", "", nil
	}
	img, err := b.cli.ImageInspect(ctx, c.Container.Image)
	if err != nil {
		return c.Container.ID, c.Container.Image, nil
	}
	return c.Container.ID, c.Container.Image, img.RepoDigests
}

// watch runs the stand-in on the board until the test ends.
func (b *fleetBoard) watch(ctx context.Context, opts ...fleetsim.Option) {
	b.t.Helper()
	var mu sync.Mutex
	s, err := fleetsim.New(ctx, b.cli.DaemonHost(), append([]fleetsim.Option{
		fleetsim.WithScope(fleetScope), fleetsim.WithInterval(500 * time.Millisecond), fleetsim.WithStopTimeout(10 * time.Second),
		fleetsim.WithOnUpdate(func(u fleetsim.Update) {
			mu.Lock()
			defer mu.Unlock()
			b.t.Logf("fleet stand-in: %s %s: %.19s → %.19s %v", u.Container, u.Image, u.OldImage, u.NewImage, u.Err)
		})}, opts...)...)
	if err != nil {
		b.t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(rctx); close(done) }()
	b.t.Cleanup(func() { cancel(); <-done; s.Close() })
	b.standIn = s
}

// The pipeline as it runs in the field: the board runs the previous
// release from latest with the fleet stand-in watching it; hil gate tests
// the Rust build on the ARM emulator and promotes it; the stand-in pulls
// the new digest and restarts the app; hil watch confirms the board runs
// exactly the promoted digest and stays healthy. Then a broken candidate
// (rs-no-deps) is refused: latest does not move, and the board keeps
// running what it ran.
func TestFleetPullsWhatTheGatePromotesAndNothingElse(t *testing.T) {
	images := testenv.ImagesDir(t)
	b := newFleetBoard(t)
	reg := testenv.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	scen := t.TempDir()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "scenarios", "startup.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scen, "startup.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	repo := reg.Host + "/pcapwatch"
	push := func(variant, tag string) string {
		t.Helper()
		out, errOut, code := runHilStderr(t, "registry", "push", filepath.Join(images, variant), repo+":"+tag)
		if code != 0 {
			t.Fatalf("pushing %s: %s", variant, errOut)
		}
		return strings.TrimSpace(out[strings.Index(out, "@")+1:])
	}
	gate := func() (string, int) {
		out, errOut, code := runHilStderr(t, "gate", "--image", repo+":candidate", "--scenarios", scen,
			"--target", "system", "--promote", "latest", "--retries", "1", "--report", t.TempDir())
		return out + errOut, code
	}
	watch := func() (string, int) {
		out, errOut, code := runHilStderr(t, "watch", "--devices", b.inventory, "--device", "pi-fleet-1",
			"--image", repo+":latest", "--window", "3s")
		return out + errOut, code
	}
	runsDigest := func(digests []string, d string) bool { return slices.Contains(digests, repo+"@"+d) }

	// The board runs the previous release (the Go build) from latest.
	prev := push("pcapwatch", "latest")
	b.deploy(ctx, repo+":latest")
	b.watch(ctx)
	prevID, prevImage, digests := b.running(ctx)
	if !runsDigest(digests, prev) {
		t.Fatalf("the board does not run the previous release %s: %v", prev, digests)
	}

	// The gate promotes the Rust build; the stand-in rolls it out.
	cand := push("pcapwatch-rs", "candidate")
	start := time.Now()
	if out, code := gate(); code != 0 || !strings.Contains(out, "gate: PROMOTED") {
		t.Fatalf("gate on pcapwatch-rs: exit %d, want 0 (promoted):\n%s", code, out)
	}
	promoted := time.Now()
	for {
		id, _, digests := b.running(ctx)
		if id != "" && id != prevID && runsDigest(digests, cand) {
			break
		}
		if time.Since(promoted) > 30*time.Second {
			t.Fatalf("30 s after the promotion the board runs %v (container %.12s), not %s", digests, id, cand)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("gate %s, then the board ran the promoted digest %s later", promoted.Sub(start).Round(time.Millisecond), time.Since(promoted).Round(time.Millisecond))
	out, code := watch()
	if code != 0 || !strings.Contains(out, "ok: promoted digest running and healthy") || !strings.Contains(out, cand) {
		t.Fatalf("hil watch after the roll-out: exit %d, want 0 confirming %s:\n%s", code, cand, out)
	}
	if _, err := b.cli.ImageInspect(ctx, prevImage); err == nil {
		t.Errorf("the previous release's image %s is still on the board after the update", prevImage)
	}
	rolledID, _, _ := b.running(ctx)

	// A broken candidate: refused, latest unchanged, the board untouched.
	push("rs-no-deps", "candidate")
	out, code = gate()
	if code != 1 || !strings.Contains(out, "gate: REFUSED") || !strings.Contains(out, "libdbus-1.so.3") {
		t.Fatalf("gate on rs-no-deps: exit %d, want 1 (refused for libdbus-1.so.3):\n%s", code, out)
	}
	if got, _, _ := runHilStderr(t, "registry", "digest", repo+":latest"); strings.TrimSpace(got) != cand {
		t.Fatalf("latest moved to %s after a refusal, want %s", got, cand)
	}
	after := b.standIn.Passes()
	for b.standIn.Passes() < after+3 {
		time.Sleep(100 * time.Millisecond)
	}
	if id, _, digests := b.running(ctx); id != rolledID || !runsDigest(digests, cand) {
		t.Fatalf("after a refused candidate the board runs container %.12s with %v; want %.12s still on %s", id, digests, rolledID, cand)
	}
	if out, code := watch(); code != 0 || !strings.Contains(out, cand) {
		t.Fatalf("hil watch after the refusal: exit %d, want 0 on %s:\n%s", code, cand, out)
	}
}
