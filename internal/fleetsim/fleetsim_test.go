package fleetsim

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hilproject/hil/internal/testenv"
)

// release is a one-binary amd64 image: busybox running a shell loop that
// says which release it is and stops cleanly on SIGTERM.
func release(t *testing.T, version string) v1.Image {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static: %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))})
	tw.Write(bb)
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	cfg := v1.Config{
		Entrypoint: []string{"/bin/sh", "-c", `trap 'echo stopped; exit 0' TERM; echo release $VERSION $*; while :; do sleep 0.1; done`, "app"},
		Cmd:        []string{"--default"},
		Env:        []string{"VERSION=" + version},
		Labels:     map[string]string{"org.example.release": version},
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: cfg, RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

type board struct {
	t   *testing.T
	cli *client.Client
}

func (b board) run(name, image string, labels map[string]string, cmd ...string) string {
	b.t.Helper()
	ctx := context.Background()
	pull, err := b.cli.ImagePull(ctx, image, client.ImagePullOptions{})
	if err == nil {
		err = pull.Wait(ctx)
		pull.Close()
	}
	if err != nil {
		b.t.Fatalf("pulling %s on the board: %v", image, err)
	}
	c, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name,
		Config:     &dcontainer.Config{Image: image, Cmd: cmd, Env: []string{"SITE=lab"}, Labels: labels},
		HostConfig: &dcontainer.HostConfig{NetworkMode: "none"}})
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		b.t.Fatal(err)
	}
	return c.ID
}

func (b board) inspect(name string) dcontainer.InspectResponse {
	b.t.Helper()
	r, err := b.cli.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{})
	if err != nil {
		b.t.Fatalf("inspecting %s: %v", name, err)
	}
	return r.Container
}

func (b board) hasImage(id string) bool {
	_, err := b.cli.ImageInspect(context.Background(), id)
	return err == nil
}

// One pass does what the fleet's updater does: nothing while the tag is
// unchanged; once it moves, the scoped container is stopped and
// re-created under its name from the new image with what was set at run
// time (cmd, env, labels) and the new image's own defaults; containers
// outside the scope and containers pinned by digest are left alone; the
// old image is removed once nothing uses it.
func TestStandInUpdatesItsScopeLikeTheFleetsUpdater(t *testing.T) {
	reg := testenv.Registry(t)
	host := testenv.Dockerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var logs []Update
	s, err := New(ctx, host, WithScope("lab"), WithStopTimeout(5*time.Second), WithOnUpdate(func(u Update) { logs = append(logs, u) }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	b := board{t, cli}

	tag := reg.Host + "/fleet/app:latest"
	v1img := release(t, "1")
	push(t, tag, v1img)
	v1digest, _ := v1img.Digest()
	appID := b.run("app", tag, map[string]string{ScopeLabel: "lab", "site": "lab"}, "--site", "lab")
	otherID := b.run("other", tag, nil)
	pinnedID := b.run("pinned", reg.Host+"/fleet/app@"+v1digest.String(), map[string]string{ScopeLabel: "lab"})
	oldImage := b.inspect("app").Image

	if us, err := s.Poll(ctx); err != nil || len(us) != 0 {
		t.Fatalf("tag unchanged: expected no update, found %+v (%v)", us, err)
	}
	if b.inspect("app").ID != appID {
		t.Fatal("the app was re-created although its tag did not move")
	}

	push(t, tag, release(t, "2"))
	us, err := s.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 1 || !us[0].Updated() || us[0].Container != "app" || us[0].OldID != appID {
		t.Fatalf("expected the one scoped container updated, found %+v", us)
	}
	app := b.inspect("app")
	if app.ID == appID || app.ID != us[0].NewID || !app.State.Running || app.Image != us[0].NewImage || app.Image == oldImage {
		t.Fatalf("app after the update: id %s (was %s), running %v, image %s (was %s)", app.ID, appID, app.State.Running, app.Image, oldImage)
	}
	if app.Config.Image != tag || !slices.Equal(app.Config.Cmd, []string{"--site", "lab"}) {
		t.Errorf("re-created from %s with cmd %v; expected %s with the run-time cmd", app.Config.Image, app.Config.Cmd, tag)
	}
	if !slices.Contains(app.Config.Env, "SITE=lab") || !slices.Contains(app.Config.Env, "VERSION=2") || slices.Contains(app.Config.Env, "VERSION=1") {
		t.Errorf("env %v: expected the run-time SITE=lab and the new image's VERSION=2", app.Config.Env)
	}
	if app.Config.Labels["site"] != "lab" || app.Config.Labels[ScopeLabel] != "lab" || app.Config.Labels["org.example.release"] != "2" {
		t.Errorf("labels %v: expected the run-time labels and the new image's release label", app.Config.Labels)
	}
	if len(app.Config.Entrypoint) != 4 || app.Config.Entrypoint[0] != "/bin/sh" {
		t.Errorf("entrypoint %q: expected the image's own", app.Config.Entrypoint)
	}
	for n, id := range map[string]string{"other": otherID, "pinned": pinnedID} {
		if c := b.inspect(n); c.ID != id || c.Image != oldImage || !c.State.Running {
			t.Errorf("%s (outside the scope or pinned) was touched: id %s image %s running %v", n, c.ID, c.Image, c.State.Running)
		}
	}
	// The old image is still in use by other and pinned: kept, with a log
	// line, as the real updater does.
	if !b.hasImage(oldImage) {
		t.Error("the old image was removed while other containers still run it")
	}
	logged := false
	for _, l := range logs {
		logged = logged || (l.Err != nil && strings.Contains(l.Err.Error(), "removing the old image"))
	}
	if !logged {
		t.Errorf("expected a log of the failed cleanup, found %+v", logs)
	}

	// Nothing else uses release 2: the next update removes it.
	second := app.Image
	push(t, tag, release(t, "3"))
	if us, err := s.Poll(ctx); err != nil || len(us) != 1 || !us[0].Updated() {
		t.Fatalf("release 3: %+v (%v)", us, err)
	}
	if b.hasImage(second) {
		t.Errorf("release 2's image %s is still on the board after the update", second)
	}
}

// Run polls on its interval until its context ends.
func TestStandInRunPollsOnItsInterval(t *testing.T) {
	reg := testenv.Registry(t)
	host := testenv.Dockerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := New(ctx, host, WithScope("lab"), WithInterval(200*time.Millisecond), WithStopTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cli, _ := client.New(client.WithHost(host))
	defer cli.Close()
	b := board{t, cli}
	tag := reg.Host + "/fleet/app:latest"
	push(t, tag, release(t, "1"))
	b.run("app", tag, map[string]string{ScopeLabel: "lab"})
	old := b.inspect("app").Image

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	push(t, tag, release(t, "2"))
	deadline := time.Now().Add(30 * time.Second)
	// Between the stand-in's remove and re-create there is no "app": that
	// moment is not the update being done.
	image := func() string {
		r, err := cli.ContainerInspect(ctx, "app", client.ContainerInspectOptions{})
		if err != nil {
			return old
		}
		return r.Container.Image
	}
	for image() == old {
		if time.Now().After(deadline) {
			t.Fatalf("the board still runs %s 30 s after the tag moved (%d passes)", old, s.Passes())
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run returned %v, expected context.Canceled", err)
	}
	if s.Passes() < 2 {
		t.Errorf("expected several passes, found %d", s.Passes())
	}
}

func TestNewRefusesABadIntervalAndNoEngine(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, "unix:///nonexistent.sock", WithInterval(0)); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Errorf("interval 0: %v", err)
	}
	if _, err := New(ctx, "unix://"+t.TempDir()+"/docker.sock"); err == nil || !strings.Contains(err.Error(), "no Docker engine answers") {
		t.Errorf("no engine: %v", err)
	}
}
