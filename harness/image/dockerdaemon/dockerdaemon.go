// Package dockerdaemon lets harness/image read docker-daemon:NAME[:TAG]
// references from the Docker engine at $DOCKER_HOST (or the default
// socket). Import it for its side effect, as hil's CLI does:
//
//	import _ "github.com/hilproject/hil/harness/image/dockerdaemon"
//
// It is a package of its own so that the library's core links no Docker
// client: a program that tests images from OCI layouts, archives and
// registries does without it.
package dockerdaemon

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/moby/moby/client"

	"github.com/hilproject/hil/harness/image"
)

// Kind is the reference prefix this package serves.
const Kind = "docker-daemon"

func init() { image.RegisterEngine(Kind, Open) }

// Open reads the image called ref (NAME[:TAG]) from the Docker engine. The
// engine is asked first, with a short deadline, so a missing daemon is one
// clear error, not a hang. The image is saved once into a temp file
// instead of being held in memory.
func Open(ctx context.Context, ref string) (v1.Image, string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, "", fmt.Errorf("expected docker-daemon:NAME[:TAG]: %w", err)
	}
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, "", fmt.Errorf("making a Docker client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			host = "unix:///var/run/docker.sock"
		}
		return nil, "", fmt.Errorf("no Docker daemon answers at %s (expected a running engine; set DOCKER_HOST): %w", host, err)
	}
	img, err := daemon.Image(r, daemon.WithClient(c), daemon.WithContext(ctx), daemon.WithFileBufferedOpener())
	if err != nil {
		return nil, "", fmt.Errorf("the Docker daemon has no image %s: %w", r, err)
	}
	return img, r.String(), nil
}
