// Package fleetsim is a stand-in for the auto-updater a fleet of boards
// runs next to its app (on the Raspberry Pis hil gates for, that updater
// is Watchtower). Its Go module is not served here, so hil's tests use
// this stand-in, which does what that updater does per its documentation
// and source, on one Docker engine ("a board"):
//
//   - every interval, for each running container in its scope (the scope
//     label equals its scope), ask the registry for the digest of the tag
//     the container was created from;
//   - when the image the engine has for that tag is not that digest, pull
//     the tag;
//   - when the pulled image differs from the one the container runs: stop
//     the container (its stop signal, SIGTERM by default, then SIGKILL
//     after the stop timeout), remove it, re-create it under the same name
//     with the same configuration on the new image (only what was set at
//     run time is carried over: an entrypoint, cmd, env or label the old
//     image set comes from the new image), start it, and remove the old
//     image.
//
// Containers created from a digest (repo@sha256:…) are left alone, as the
// real updater leaves them. Networking is carried over as the network
// mode only (hil's boards run the app with network "none" or "host").
// It is test support: it has no rollback and no health window, just as
// the updater it stands in for has none.
package fleetsim

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// ScopeLabel is the container label that puts a container in an updater's
// scope. It is the label a fleet's app containers already carry for the
// real updater (its --scope), so the same containers work with either.
const ScopeLabel = "com.centurylinklabs.watchtower.scope"

// StopSignalLabel overrides the signal that stops a container, as it does
// for the real updater.
const StopSignalLabel = "com.centurylinklabs.watchtower.stop-signal"

// Update is what one pass did to one container.
type Update struct {
	Container string // name, without the leading slash
	Image     string // the tag it was created from
	OldImage  string // image ID before
	NewImage  string // image ID after ("" when nothing changed)
	OldID     string // container ID before
	NewID     string // container ID after the re-create
	// Err is why the container could not be checked or updated; the pass
	// goes on with the next container, as the real updater does.
	Err error
}

// Updated reports whether the container was re-created on a new image.
func (u Update) Updated() bool { return u.NewImage != "" && u.Err == nil }

// StandIn watches the containers of one scope on one Docker engine.
type StandIn struct {
	cli         *client.Client
	scope       string
	interval    time.Duration
	stopTimeout time.Duration
	cleanup     bool
	restarting  bool
	onUpdate    func(Update)

	mu     sync.Mutex
	passes int
}

// Option configures a StandIn.
type Option func(*StandIn)

// WithScope watches only containers whose ScopeLabel is scope ("" watches
// the containers that have no scope label, as the real updater does).
func WithScope(scope string) Option { return func(s *StandIn) { s.scope = scope } }

// WithInterval sets the poll interval (the real updater's --interval;
// default 1 s here, tests want it short).
func WithInterval(d time.Duration) Option { return func(s *StandIn) { s.interval = d } }

// WithStopTimeout sets how long a container gets to stop after its stop
// signal before SIGKILL (the real updater's --stop-timeout, default 10 s).
func WithStopTimeout(d time.Duration) Option { return func(s *StandIn) { s.stopTimeout = d } }

// WithoutCleanup keeps the old image after an update (the real updater
// without --cleanup).
func WithoutCleanup() Option { return func(s *StandIn) { s.cleanup = false } }

// WithIncludeRestarting also updates containers that are restarting (the
// real updater's --include-restarting). Without it a container in a crash
// loop is only seen in the moments it happens to be running, so a fix or
// a rollback of its tag may never reach it.
func WithIncludeRestarting() Option { return func(s *StandIn) { s.restarting = true } }

// WithOnUpdate calls fn with every container a pass looked at and changed
// or failed on (for logs).
func WithOnUpdate(fn func(Update)) Option { return func(s *StandIn) { s.onUpdate = fn } }

// New connects to the engine at dockerHost ("unix:///…/docker.sock").
func New(ctx context.Context, dockerHost string, opts ...Option) (*StandIn, error) {
	s := &StandIn{interval: time.Second, stopTimeout: 10 * time.Second, cleanup: true}
	for _, o := range opts {
		o(s)
	}
	if s.interval <= 0 {
		return nil, fmt.Errorf("fleet stand-in: the poll interval must be positive, found %s", s.interval)
	}
	cli, err := client.New(client.WithHost(dockerHost))
	if err != nil {
		return nil, fmt.Errorf("fleet stand-in: a Docker client for %s: %w", dockerHost, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("fleet stand-in: no Docker engine answers at %s: %w", dockerHost, err)
	}
	s.cli = cli
	return s, nil
}

// Close releases the Docker client.
func (s *StandIn) Close() error { return s.cli.Close() }

// Passes is how many polls have completed.
func (s *StandIn) Passes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.passes
}

// Run polls every interval until ctx ends; it returns ctx's error.
func (s *StandIn) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if _, err := s.Poll(ctx); err != nil && ctx.Err() == nil && s.onUpdate != nil {
			s.onUpdate(Update{Err: err})
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Poll is one pass over the scope (the real updater's --run-once). It
// returns the containers it re-created or failed on.
func (s *StandIn) Poll(ctx context.Context) ([]Update, error) {
	defer func() {
		s.mu.Lock()
		s.passes++
		s.mu.Unlock()
	}()
	status := []string{"running"}
	if s.restarting {
		status = append(status, "restarting")
	}
	list, err := s.cli.ContainerList(ctx, client.ContainerListOptions{Filters: make(client.Filters).Add("status", status...)})
	if err != nil {
		return nil, fmt.Errorf("fleet stand-in: listing containers: %w", err)
	}
	var out []Update
	for _, c := range list.Items {
		if c.Labels[ScopeLabel] != s.scope {
			continue
		}
		u := s.check(ctx, c.ID)
		if u.Err != nil || u.NewImage != "" {
			out = append(out, u)
			if s.onUpdate != nil {
				s.onUpdate(u)
			}
		}
	}
	return out, ctx.Err()
}

func (s *StandIn) check(ctx context.Context, id string) Update {
	u := Update{OldID: id}
	ci, err := s.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		u.Err = fmt.Errorf("inspecting container %.12s: %w", id, err)
		return u
	}
	c := ci.Container
	u.Container, u.Image, u.OldImage = strings.TrimPrefix(c.Name, "/"), c.Config.Image, c.Image
	ref, err := name.ParseReference(u.Image, registryOpts(u.Image)...)
	if err != nil {
		u.Err = fmt.Errorf("container %s: image %q is not a registry reference: %w", u.Container, u.Image, err)
		return u
	}
	if _, pinned := ref.(name.Digest); pinned || strings.HasPrefix(u.Image, "sha256:") {
		return Update{} // pinned by digest: not updatable
	}
	old, err := s.cli.ImageInspect(ctx, c.Image)
	if err != nil {
		u.Err = fmt.Errorf("container %s: inspecting its image %s: %w", u.Container, c.Image, err)
		return u
	}
	// Pull only when the registry's digest for the tag is not one this
	// engine has for the image it runs (the real updater's HEAD check).
	desc, err := remote.Head(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err == nil && slices.Contains(old.RepoDigests, ref.Context().Name()+"@"+desc.Digest.String()) {
		return Update{}
	}
	pull, err := s.cli.ImagePull(ctx, u.Image, client.ImagePullOptions{})
	if err == nil {
		err = pull.Wait(ctx)
		pull.Close()
	}
	if err != nil {
		u.Err = fmt.Errorf("container %s: pulling %s: %w", u.Container, u.Image, err)
		return u
	}
	cur, err := s.cli.ImageInspect(ctx, u.Image)
	if err != nil {
		u.Err = fmt.Errorf("container %s: inspecting %s after the pull: %w", u.Container, u.Image, err)
		return u
	}
	if cur.ID == c.Image {
		return Update{}
	}
	cfg := createConfig(c.Config, old.Config.Entrypoint, old.Config.Cmd, old.Config.Env, old.Config.Labels)
	if err := s.stop(ctx, c); err != nil {
		u.Err = fmt.Errorf("container %s: stopping it for %s: %w", u.Container, cur.ID, err)
		return u
	}
	created, err := s.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: c.HostConfig, Name: u.Container})
	if err != nil {
		u.Err = fmt.Errorf("container %s: re-creating it on %s: %w", u.Container, cur.ID, err)
		return u
	}
	u.NewID = created.ID
	if _, err := s.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		u.Err = fmt.Errorf("container %s: starting it on %s: %w", u.Container, cur.ID, err)
		return u
	}
	u.NewImage = cur.ID
	if s.cleanup {
		// As the real updater: a failure here (the image still used by
		// another container) is only worth a log line.
		if _, err := s.cli.ImageRemove(ctx, c.Image, client.ImageRemoveOptions{Force: true}); err != nil && s.onUpdate != nil {
			s.onUpdate(Update{Container: u.Container, Image: u.Image, Err: fmt.Errorf("removing the old image %s: %w", c.Image, err)})
		}
	}
	return u
}

// stop sends the stop signal, waits up to the stop timeout, and removes
// the container (force: SIGKILL when it is still running).
func (s *StandIn) stop(ctx context.Context, c dcontainer.InspectResponse) error {
	sig := c.Config.Labels[StopSignalLabel]
	if sig == "" {
		sig = "SIGTERM"
	}
	if c.State != nil && c.State.Running {
		if _, err := s.cli.ContainerKill(ctx, c.ID, client.ContainerKillOptions{Signal: sig}); err != nil {
			return fmt.Errorf("sending %s: %w", sig, err)
		}
		wctx, cancel := context.WithTimeout(ctx, s.stopTimeout)
		w := s.cli.ContainerWait(wctx, c.ID, client.ContainerWaitOptions{Condition: dcontainer.WaitConditionNotRunning})
		select {
		case <-w.Result:
		case <-w.Error: // timed out (or gone): the forced removal below ends it
		}
		cancel()
	}
	if _, err := s.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
		return fmt.Errorf("removing: %w", err)
	}
	return nil
}

// createConfig is the container's configuration for the re-create: what
// was set at run time stays, what came from the old image is dropped so
// the new image's own values apply (the real updater's GetCreateConfig).
func createConfig(cur *dcontainer.Config, imgEntrypoint, imgCmd, imgEnv []string, imgLabels map[string]string) *dcontainer.Config {
	cfg := *cur
	if slices.Equal(cfg.Entrypoint, imgEntrypoint) {
		cfg.Entrypoint = nil
		if slices.Equal(cfg.Cmd, imgCmd) {
			cfg.Cmd = nil
		}
	}
	var env []string
	for _, e := range cfg.Env {
		if !slices.Contains(imgEnv, e) {
			env = append(env, e)
		}
	}
	cfg.Env = env
	labels := map[string]string{}
	for k, v := range cfg.Labels {
		if iv, ok := imgLabels[k]; !ok || iv != v {
			labels[k] = v
		}
	}
	cfg.Labels = labels
	return &cfg
}

// registryOpts allows plain HTTP to loopback registries only (hil's trust
// rule; the tests' registries listen on 127.0.0.1).
func registryOpts(ref string) []name.Option {
	host := ref
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return []name.Option{name.Insecure}
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return []name.Option{name.Insecure}
	}
	return nil
}
