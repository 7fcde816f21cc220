package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"
)

// Open resolves ref (see the package doc for the forms) to a digest and
// returns the pinned artifact. Nothing is downloaded beyond manifests and
// configs; layers are read by RootFS/Flatten.
func Open(ctx context.Context, ref string, opts ...Option) (*Artifact, error) {
	o := makeOptions(opts)
	kind, rest := splitRef(ref)
	var a *Artifact
	var err error
	switch kind {
	case "oci":
		a, err = openLayout(ctx, ref, rest)
	case "docker-archive":
		a, err = openArchive(ctx, ref, rest)
	case "docker-daemon":
		a, err = openDaemon(ctx, ref, rest)
	case "registry":
		a, err = openRemote(ctx, ref, rest, o)
	default:
		err = fmt.Errorf("image %s: unknown source kind %q", ref, kind)
	}
	if err != nil {
		return nil, err
	}
	a.Ref, a.Kind, a.opts = ref, kind, o
	return a, nil
}

// splitRef finds the source kind. A bare path that exists is a layout dir
// (it has an oci-layout file) or an archive (a regular file).
func splitRef(ref string) (kind, rest string) {
	for _, k := range []string{"oci", "docker-archive", "docker-daemon", "registry"} {
		if strings.HasPrefix(ref, k+":") {
			return k, ref[len(k)+1:]
		}
	}
	if st, err := os.Stat(ref); err == nil {
		if st.IsDir() {
			return "oci", ref
		}
		return "docker-archive", ref
	}
	return "registry", ref
}

func openLayout(ctx context.Context, ref, rest string) (*Artifact, error) {
	dir, want := rest, ""
	if i := strings.LastIndex(rest, "@"); i >= 0 && strings.HasPrefix(rest[i+1:], "sha256:") {
		dir, want = rest[:i], rest[i+1:]
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return nil, fmt.Errorf("image %s: expected an OCI layout dir (with an oci-layout file) at %s: %w", ref, dir, err)
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("image %s: reading %s/index.json: %w", ref, dir, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("image %s: parsing %s/index.json: %w", ref, dir, err)
	}
	var pick *v1.Descriptor
	switch {
	case want != "":
		h, err := v1.NewHash(want)
		if err != nil {
			return nil, fmt.Errorf("image %s: digest %q: %w", ref, want, err)
		}
		for i := range im.Manifests {
			if im.Manifests[i].Digest == h {
				pick = &im.Manifests[i]
			}
		}
		if pick == nil {
			// A platform manifest's digest (as `hil image inspect --rootfs`
			// prints it) pins that one image of a nested index.
			if img := findNestedImage(top, im.Manifests, h); img != nil {
				plats, d, err := singlePlatform(img)
				if err != nil {
					return nil, fmt.Errorf("image %s: %w", ref, err)
				}
				return &Artifact{Digest: d, single: img, plats: plats}, nil
			}
			return nil, fmt.Errorf("image %s: index.json has no entry %s; it has %s", ref, h, describeDescs(im.Manifests))
		}
	case len(im.Manifests) == 1:
		pick = &im.Manifests[0]
	case len(im.Manifests) == 0:
		return nil, fmt.Errorf("image %s: %s/index.json lists no images", ref, dir)
	default:
		// Several entries: either index.json is itself the multi-platform
		// index (every entry an image with a platform), or it holds several
		// unrelated images and the user must pick one.
		for _, d := range im.Manifests {
			if !d.MediaType.IsImage() || d.Platform == nil {
				return nil, fmt.Errorf("image %s: %s/index.json holds %d images (%s); pick one with oci:%s@DIGEST", ref, dir, len(im.Manifests), describeDescs(im.Manifests), dir)
			}
		}
		h, err := top.Digest()
		if err != nil {
			return nil, fmt.Errorf("image %s: hashing index.json: %w", ref, err)
		}
		plats, err := platformsOfIndex(ctx, top)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		return &Artifact{Digest: h, index: top, plats: plats}, nil
	}
	switch {
	case pick.MediaType.IsIndex():
		idx, err := top.ImageIndex(pick.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: opening index %s: %w", ref, pick.Digest, err)
		}
		raw, err := idx.RawManifest()
		if err != nil {
			return nil, fmt.Errorf("image %s: reading index %s: %w", ref, pick.Digest, err)
		}
		if got := sha256Hex(raw); pick.Digest.Algorithm == "sha256" && got != pick.Digest.Hex {
			return nil, fmt.Errorf("image %s: index content is sha256:%s, expected %s (corrupt or tampered)", ref, got, pick.Digest)
		}
		plats, err := platformsOfIndex(ctx, idx)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		return &Artifact{Digest: pick.Digest, index: idx, plats: plats}, nil
	case pick.MediaType.IsImage():
		img, err := top.Image(pick.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: opening manifest %s: %w", ref, pick.Digest, err)
		}
		plats, d, err := singlePlatform(img)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		return &Artifact{Digest: d, single: img, plats: plats}, nil
	default:
		return nil, fmt.Errorf("image %s: entry %s has media type %s, expected an image or an index", ref, pick.Digest, pick.MediaType)
	}
}

func findNestedImage(top v1.ImageIndex, ds []v1.Descriptor, h v1.Hash) v1.Image {
	for _, d := range ds {
		if !d.MediaType.IsIndex() {
			continue
		}
		idx, err := top.ImageIndex(d.Digest)
		if err != nil {
			continue
		}
		im, err := idx.IndexManifest()
		if err != nil {
			continue
		}
		for _, c := range im.Manifests {
			if c.Digest == h && c.MediaType.IsImage() {
				if img, err := idx.Image(h); err == nil {
					return img
				}
			}
		}
	}
	return nil
}

func describeDescs(ds []v1.Descriptor) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Digest.String()
		if n := d.Annotations["org.opencontainers.image.ref.name"]; n != "" {
			s[i] += " (" + n + ")"
		}
		if d.Platform != nil {
			s[i] += " " + d.Platform.String()
		}
	}
	return strings.Join(s, ", ")
}

// openArchive opens a `docker save` tarball. A tag may follow the path
// after a colon (FILE:TAG, the tag itself may hold a colon); it is needed
// when the archive holds several images.
func openArchive(_ context.Context, ref, rest string) (*Artifact, error) {
	path, tag := rest, ""
	if _, err := os.Stat(rest); err != nil {
		found := false
		for i := 0; i < len(rest); i++ {
			if rest[i] != ':' {
				continue
			}
			if st, err := os.Stat(rest[:i]); err == nil && !st.IsDir() {
				path, tag, found = rest[:i], rest[i+1:], true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("image %s: expected a docker save tarball at %s: %w", ref, rest, err)
		}
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return nil, fmt.Errorf("image %s: reading manifest.json of %s (expected a docker save tarball): %w", ref, path, err)
	}
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	var t *name.Tag
	switch {
	case tag != "":
		parsed, err := name.NewTag(tag)
		if err != nil {
			return nil, fmt.Errorf("image %s: tag %q: %w", ref, tag, err)
		}
		found := false
		for _, rt := range tags {
			if p, err := name.NewTag(rt); err == nil && p.Name() == parsed.Name() {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("image %s: %s has no image tagged %s; it has %s", ref, path, tag, listOrNone(tags))
		}
		t = &parsed
	case len(m) == 0:
		return nil, fmt.Errorf("image %s: %s holds no images", ref, path)
	case len(m) > 1:
		return nil, fmt.Errorf("image %s: %s holds %d images; pick one with docker-archive:%s:TAG, tags: %s", ref, path, len(m), path, listOrNone(tags))
	}
	img, err := tarball.ImageFromPath(path, t)
	if err != nil {
		return nil, fmt.Errorf("image %s: opening the image in %s: %w", ref, path, err)
	}
	plats, d, err := singlePlatform(img)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	return &Artifact{Digest: d, single: img, plats: plats}, nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "no tags"
	}
	return strings.Join(s, ", ")
}

// openDaemon reads an image from the Docker engine at $DOCKER_HOST (or the
// default socket). The engine is asked first, with a short deadline, so a
// missing daemon is one clear error, not a hang.
func openDaemon(ctx context.Context, ref, rest string) (*Artifact, error) {
	r, err := name.ParseReference(rest)
	if err != nil {
		return nil, fmt.Errorf("image %s: expected docker-daemon:NAME[:TAG]: %w", ref, err)
	}
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("image %s: making a Docker client: %w", ref, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			host = "unix:///var/run/docker.sock"
		}
		return nil, fmt.Errorf("image %s: no Docker daemon answers at %s (expected a running engine; set DOCKER_HOST): %w", ref, host, err)
	}
	// The file-buffered opener saves the image once into a temp file
	// instead of holding it all in memory.
	img, err := daemon.Image(r, daemon.WithClient(c), daemon.WithContext(ctx), daemon.WithFileBufferedOpener())
	if err != nil {
		return nil, fmt.Errorf("image %s: the Docker daemon has no image %s: %w", ref, r, err)
	}
	plats, d, err := singlePlatform(img)
	if err != nil {
		return nil, fmt.Errorf("image %s: reading it from the Docker daemon: %w", ref, err)
	}
	return &Artifact{Digest: d, single: img, plats: plats}, nil
}

// registryBackoff retries 5xx, 429 and timeouts a few times: a registry
// in CI restarting for a second should not fail a gate run.
var registryBackoff = remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 4}

func remoteOptions(ctx context.Context, o options) []remote.Option {
	tr := o.transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   8,
			ForceAttemptHTTP2:     true,
		}
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain),
		remote.WithTransport(tr),
		remote.WithRetryBackoff(registryBackoff),
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout),
		remote.WithUserAgent("hil"),
	}
}

func openRemote(ctx context.Context, ref, rest string, o options) (*Artifact, error) {
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(rest, nopts...)
	if err != nil {
		return nil, fmt.Errorf("image %s: expected a registry reference HOST/REPO:TAG or HOST/REPO@sha256:..., or oci:DIR, docker-archive:FILE, docker-daemon:NAME: %w", ref, err)
	}
	ropts := remoteOptions(ctx, o)
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("image %s: resolving it at registry %s: %w", ref, r.Context().RegistryStr(), explainRemote(err))
	}
	// From here on everything is fetched by digest.
	pinned := r.Context().Digest(desc.Digest.String())
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("image %s: reading index %s: %w", ref, pinned, explainRemote(err))
		}
		plats, err := platformsOfIndex(ctx, idx)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, explainRemote(err))
		}
		return &Artifact{Digest: desc.Digest, index: idx, plats: plats}, nil
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("image %s: reading manifest %s: %w", ref, pinned, explainRemote(err))
		}
		plats, _, err := singlePlatform(img)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, explainRemote(err))
		}
		plats[0].digest = desc.Digest
		return &Artifact{Digest: desc.Digest, single: img, plats: plats}, nil
	default:
		return nil, fmt.Errorf("image %s: %s has media type %s, expected an image or an index", ref, pinned, desc.MediaType)
	}
}

// explainRemote adds the likely cause to the errors users hit most.
func explainRemote(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w (the registry refused the credentials: expected a matching entry in $DOCKER_CONFIG/config.json, e.g. after `docker login`)", err)
		case http.StatusNotFound:
			return fmt.Errorf("%w (no such repository or tag)", err)
		}
	}
	var nerr *net.OpError
	if errors.As(err, &nerr) {
		return fmt.Errorf("%w (registry unreachable)", err)
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("%w (a plain-HTTP registry: use --insecure / image.WithInsecure for loopback registries)", err)
	}
	return err
}
