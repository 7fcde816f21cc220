package device

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/jsonfmt"
)

// WatchReport is what Watch found on a board after a promotion.
type WatchReport struct {
	Board          string   `json:"board"`
	Ref            string   `json:"ref"`
	PromotedDigest string   `json:"promoted_digest"`
	Container      string   `json:"container,omitempty"`
	RunningDigests []string `json:"running_digests,omitempty"`
	// Window is how long the container was held to (window_ms in JSON).
	Window time.Duration `json:"-"`
	// Rollout is how long the board took to run the promoted digest
	// (WatchDigest with a rollout timeout; 0 when not waited for;
	// rollout_ms in JSON).
	Rollout   time.Duration `json:"-"`
	Restarts  int           `json:"restarts"`
	LastState string        `json:"last_state,omitempty"`
	// Health is the container's healthcheck status at the end ("none"
	// when the image and the run define no healthcheck).
	Health   string   `json:"health,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

type watchReportJSON WatchReport

// MarshalJSON writes the durations as window_ms and rollout_ms.
func (r WatchReport) MarshalJSON() ([]byte, error) {
	var rollout *float64
	if r.Rollout > 0 {
		ms := jsonfmt.Millis(r.Rollout)
		rollout = &ms
	}
	return json.Marshal(struct {
		watchReportJSON
		WindowMS  float64  `json:"window_ms"`
		RolloutMS *float64 `json:"rollout_ms,omitempty"`
	}{watchReportJSON(r), jsonfmt.Millis(r.Window), rollout})
}

// OK reports whether the board runs the promoted digest and stayed healthy.
func (r *WatchReport) OK() bool { return len(r.Problems) == 0 }

// Watch checks, after Watchtower pulled a promoted tag, that the container
// running ref on the board runs exactly the digest ref resolves to in the
// registry now, and that it stays running (no restarts, not unhealthy)
// for window. Registry options (auth, insecure) are passed through.
func Watch(ctx context.Context, board Machine, ref string, window time.Duration, registryOpts ...remote.Option) (*WatchReport, error) {
	tag, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: expected a registry reference like host/repo:tag: %w", ref, err)
	}
	desc, err := remote.Head(tag, append([]remote.Option{remote.WithContext(ctx)}, registryOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("resolving %s in its registry: %w", ref, err)
	}
	return WatchDigest(ctx, board, Expect{Ref: ref, Digest: desc.Digest.String(), Window: window})
}

// Expect is what a board should do after a promotion.
type Expect struct {
	// Ref is the tag the board's app container was created from
	// (host/repo:tag), the one the fleet's updater polls.
	Ref string
	// Digest is the sha256:... the tag was moved to.
	Digest string
	// Rollout is how long the board may take to pull the digest and
	// re-create the container (its updater's poll interval plus the pull).
	// 0: it must run it already. A container found within Rollout is held
	// to "never restarted since it was created".
	Rollout time.Duration
	// Window is how long the container must then keep running: the same
	// container, not restarted, not exited, never unhealthy, and healthy
	// at the end when it has a healthcheck.
	Window time.Duration
	// Poll is how often the board is asked (default 1 s).
	Poll time.Duration
}

// WatchDigest waits up to exp.Rollout for the board to run exp.Digest from
// exp.Ref, then holds it to the health window. Problems the board shows
// (not running the digest, a restart, an exit, unhealthy) are in the
// report; an error means the board could not be watched (it does not
// answer over SSH, Docker fails there): a target.InfraError, never a
// verdict on the app.
func WatchDigest(ctx context.Context, board Machine, exp Expect) (*WatchReport, error) {
	tag, err := name.ParseReference(exp.Ref)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: expected a registry reference like host/repo:tag: %w", exp.Ref, err)
	}
	if exp.Poll <= 0 {
		exp.Poll = time.Second
	}
	rep := &WatchReport{Board: board.Name, Ref: exp.Ref, PromotedDigest: exp.Digest, Window: exp.Window}
	c, err := dial(ctx, board, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.close()

	// Find the container of the tag that runs the digest, waiting for the
	// fleet's updater to pull and re-create it when asked to.
	start := time.Now()
	var found boardContainer
	for {
		cs, err := listContainers(ctx, c, tag)
		if err != nil {
			return nil, err
		}
		var other []boardContainer
		for _, bc := range cs {
			if bc.runs(exp.Digest) {
				if found.id == "" || bc.alive() && !found.alive() {
					found = bc
				}
			} else if bc.alive() {
				other = append(other, bc)
			}
		}
		// An older release still running beside a crashed copy of the
		// promoted one is not the promoted one running.
		if found.id != "" && !found.alive() && len(other) > 0 {
			found = boardContainer{}
		}
		if found.id != "" {
			rep.Container, rep.RunningDigests = found.id, found.digests
			break
		}
		if !time.Now().Before(start.Add(exp.Rollout)) {
			switch {
			case len(other) > 0:
				rep.Container, rep.RunningDigests = other[0].id, other[0].digests
				waited := ""
				if exp.Rollout > 0 {
					waited = fmt.Sprintf(" after waiting %s", exp.Rollout)
				}
				rep.Problems = append(rep.Problems, fmt.Sprintf("board %s runs %s as %v%s, but %s is %s now (Watchtower has not pulled it, or something else was deployed)",
					board.Name, exp.Ref, rep.RunningDigests, waited, exp.Ref, exp.Digest))
			default:
				rep.Problems = append(rep.Problems, fmt.Sprintf("no running container of %s on board %s", exp.Ref, board.Name))
			}
			return rep, nil
		}
		if err := sleep(ctx, exp.Poll); err != nil {
			return nil, err
		}
	}
	if exp.Rollout > 0 {
		rep.Rollout = time.Since(start).Round(time.Millisecond)
	}

	// The health window (balena's idea): the same container must keep
	// running, unrestarted and never unhealthy, for the whole window.
	baseline := -1
	if exp.Rollout > 0 {
		baseline = 0 // a fresh container: every restart since it was created counts
	}
	deadline := time.Now().Add(exp.Window)
	for {
		st, gone, err := inspectState(ctx, c, rep.Container)
		if err != nil {
			return nil, err
		}
		if gone {
			rep.Problems = append(rep.Problems, fmt.Sprintf("container %.12s of %s was removed from board %s during the window", rep.Container, exp.Ref, board.Name))
			return rep, nil
		}
		if baseline < 0 {
			baseline = st.restarts
		}
		rep.Restarts = st.restarts - baseline
		rep.LastState = st.raw
		rep.Health = st.health
		end := !time.Now().Before(deadline)
		switch {
		case st.status != "running":
			rep.Problems = append(rep.Problems, fmt.Sprintf("container %.12s is %s (exit code %d)", rep.Container, st.status, st.exitCode))
		case rep.Restarts > 0:
			rep.Problems = append(rep.Problems, fmt.Sprintf("container %.12s restarted %d times during the window", rep.Container, rep.Restarts))
		case st.health == "unhealthy":
			rep.Problems = append(rep.Problems, fmt.Sprintf("container %.12s is unhealthy", rep.Container))
		case end && st.health == "starting":
			rep.Problems = append(rep.Problems, fmt.Sprintf("container %.12s never reported healthy during the %s window (its healthcheck is still starting)", rep.Container, exp.Window))
		}
		if len(rep.Problems) > 0 || end {
			return rep, nil
		}
		if err := sleep(ctx, min(exp.Poll, time.Until(deadline)+time.Millisecond)); err != nil {
			return nil, err
		}
	}
}

// Reachable connects to the board over SSH and asks its Docker engine for
// its version: the check that a board can be watched at all. Its error is
// a target.InfraError.
func Reachable(ctx context.Context, board Machine) error {
	c, err := dial(ctx, board, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.close()
	if _, err := c.run(ctx, nil, "docker version --format '{{.Server.Version}}'"); err != nil {
		return target.Infra(fmt.Errorf("board %s answers over SSH but its Docker engine does not: %w", board.Name, err))
	}
	return nil
}

// boardContainer is one container on the board created from the tag.
type boardContainer struct {
	id, status, created string
	digests             []string // repo digests (sha256:...) of its image
}

func (b boardContainer) alive() bool { return b.status == "running" || b.status == "restarting" }

func (b boardContainer) runs(digest string) bool {
	for _, d := range b.digests {
		if d == digest {
			return true
		}
	}
	return false
}

// listContainers lists every container (running or not) on the board
// created from tag, newest first, with the digests of its image. The
// created-from reference (Config.Image) is what the fleet's updater
// follows, whatever image the tag names on the board now.
func listContainers(ctx context.Context, c *conn, tag name.Reference) ([]boardContainer, error) {
	const list = `ids=$(docker ps -aq --no-trunc); [ -z "$ids" ] || docker inspect --format '{{.Id}} {{.Config.Image}} {{.Image}} {{.State.Status}} {{.Created}}' $ids`
	out, err := c.run(ctx, nil, list)
	// The fleet's updater removes containers while we watch it: one gone
	// between ps and inspect makes inspect fail with "No such object".
	// The next listing is consistent again.
	for try := 0; err != nil && strings.Contains(err.Error(), "No such object") && try < 3 && ctx.Err() == nil; try++ {
		out, err = c.run(ctx, nil, list)
	}
	if err != nil {
		return nil, target.Infra(err)
	}
	var cs []boardContainer
	images := map[string][]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !sameRef(f[1], tag) {
			continue
		}
		images[f[2]] = append(images[f[2]], len(cs))
		cs = append(cs, boardContainer{id: f[0], status: f[3], created: f[4]})
	}
	if len(cs) == 0 {
		return nil, nil
	}
	var ids []string
	for id := range images {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	// One line per image: its ID, then its repo digests.
	out, err = c.run(ctx, nil, "docker image inspect --format '{{.Id}}{{range .RepoDigests}} {{.}}{{end}}' "+quoteAll(ids)+" 2>/dev/null; true")
	if err != nil {
		return nil, target.Infra(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, i := range images[f[0]] {
			for _, rd := range f[1:] {
				if _, dg, ok := strings.Cut(rd, "@"); ok {
					cs[i].digests = append(cs[i].digests, dg)
				}
			}
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].created > cs[j].created })
	return cs, nil
}

// sameRef reports whether a container's created-from reference is tag
// (docker normalizes neither "repo" vs "repo:latest" nor docker.io).
func sameRef(img string, tag name.Reference) bool {
	if img == tag.String() || img == tag.Name() {
		return true
	}
	r, err := name.ParseReference(img, name.WeakValidation)
	return err == nil && r.Name() == tag.Name()
}

type containerState struct {
	status, health, raw string
	restarts, exitCode  int
}

// inspectState reads the container's state; gone reports a container
// that no longer exists.
func inspectState(ctx context.Context, c *conn, id string) (containerState, bool, error) {
	out, err := c.run(ctx, nil, "docker inspect --format '{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "+quote(id))
	if err != nil {
		if strings.Contains(err.Error(), "No such") {
			return containerState{}, true, nil
		}
		return containerState{}, false, target.Infra(err)
	}
	f := strings.Fields(out)
	if len(f) < 4 {
		return containerState{}, false, target.Infra(fmt.Errorf("unexpected container state %q on board %s", out, c.board.Name))
	}
	st := containerState{status: f[0], health: f[3], raw: strings.TrimSpace(out)}
	st.restarts, _ = strconv.Atoi(f[1])
	st.exitCode, _ = strconv.Atoi(f[2])
	return st, false, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
