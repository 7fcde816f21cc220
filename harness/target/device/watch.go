package device

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// WatchReport is what Watch found on a board after a promotion.
type WatchReport struct {
	Board          string   `json:"board"`
	Ref            string   `json:"ref"`
	PromotedDigest string   `json:"promoted_digest"`
	Container      string   `json:"container,omitempty"`
	RunningDigests []string `json:"running_digests,omitempty"`
	Window         string   `json:"window"`
	Restarts       int      `json:"restarts"`
	LastState      string   `json:"last_state,omitempty"`
	Problems       []string `json:"problems,omitempty"`
}

// OK reports whether the board runs the promoted digest and stayed healthy.
func (r *WatchReport) OK() bool { return len(r.Problems) == 0 }

// Watch checks, after Watchtower pulled a promoted tag, that the container
// running ref on the board runs exactly the digest ref resolves to in the
// registry now, and that it stays running (no restarts, not unhealthy)
// for window. Registry options (auth, insecure) are passed through.
func Watch(ctx context.Context, board Board, ref string, window time.Duration, registryOpts ...remote.Option) (*WatchReport, error) {
	tag, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: expected a registry reference like host/repo:tag: %w", ref, err)
	}
	desc, err := remote.Head(tag, append([]remote.Option{remote.WithContext(ctx)}, registryOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("resolving %s in its registry: %w", ref, err)
	}
	rep := &WatchReport{Board: board.Name, Ref: ref, PromotedDigest: desc.Digest.String(), Window: window.String()}

	c, err := dial(ctx, board, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.close()
	ps, err := c.run(ctx, nil, "docker ps --no-trunc --format '{{.ID}} {{.Image}}'")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(strings.TrimSpace(ps), "\n") {
		id, img, _ := strings.Cut(line, " ")
		if img == ref || img == tag.Name() || (tag.Identifier() == "latest" && img == tag.Context().Name()) {
			rep.Container = id
			break
		}
	}
	if rep.Container == "" {
		rep.Problems = append(rep.Problems, fmt.Sprintf("no running container of %s on board %s", ref, board.Name))
		return rep, nil
	}
	digests, err := c.run(ctx, nil, "docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' $(docker inspect --format '{{.Image}}' "+rep.Container+")")
	if err != nil {
		return nil, err
	}
	match := false
	for _, d := range strings.Fields(digests) {
		_, dg, _ := strings.Cut(d, "@")
		rep.RunningDigests = append(rep.RunningDigests, dg)
		match = match || dg == rep.PromotedDigest
	}
	if !match {
		rep.Problems = append(rep.Problems, fmt.Sprintf("board %s runs %s as %v, but %s is %s now (Watchtower has not pulled it, or something else was deployed)",
			board.Name, ref, rep.RunningDigests, ref, rep.PromotedDigest))
		return rep, nil
	}

	// balena-style health window: it must keep running, unrestarted and
	// not unhealthy, for the whole window.
	startRestarts := -1
	deadline := time.Now().Add(window)
	for {
		st, err := c.run(ctx, nil, "docker inspect --format '{{.State.Status}} {{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "+rep.Container)
		if err != nil {
			return nil, err
		}
		f := strings.Fields(st)
		if len(f) < 2 {
			return nil, fmt.Errorf("unexpected container state %q on board %s", st, board.Name)
		}
		restarts, _ := strconv.Atoi(f[1])
		if startRestarts < 0 {
			startRestarts = restarts
		}
		rep.Restarts = restarts - startRestarts
		rep.LastState = strings.TrimSpace(st)
		switch {
		case f[0] != "running":
			rep.Problems = append(rep.Problems, fmt.Sprintf("container %.12s is %s", rep.Container, f[0]))
		case rep.Restarts > 0:
			rep.Problems = append(rep.Problems, fmt.Sprintf("container %.12s restarted %d times during the window", rep.Container, rep.Restarts))
		case len(f) > 2 && f[2] == "unhealthy":
			rep.Problems = append(rep.Problems, fmt.Sprintf("container %.12s is unhealthy", rep.Container))
		}
		if len(rep.Problems) > 0 || !time.Now().Before(deadline) {
			return rep, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(2*time.Second, time.Until(deadline)+time.Millisecond)):
		}
	}
}
