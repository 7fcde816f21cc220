// Package registry is hil's one way to reach a container registry. Image
// sources (harness/image), the gate and its attestations
// (harness/promote) and the CLI all go through a Client, so they share one
// HTTP transport, one retry policy with backoff, one keychain, one user
// agent and one rule for plain HTTP:
//
//	Plain HTTP is used only for a registry on loopback (localhost,
//	127.0.0.0/8, ::1). WithInsecure (--insecure) for any other registry is
//	refused when the reference is parsed, before any network I/O, and the
//	transport itself refuses every plain-HTTP request to a host off
//	loopback, whatever asked for it (a reference parsed elsewhere, an
//	http:// token realm, go-containerregistry's plain-HTTP fallback for
//	private addresses).
//
// Build a Client with New and pass it along: image.WithRegistry for image
// sources, promote.WithRegistry for the gate. A nil *Client is a Client
// with the defaults.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// UserAgent is what hil calls itself in registry requests.
const UserAgent = "hil"

// Client is how hil reaches registries: credentials, plain HTTP (loopback
// only), the transport and retries. Build it with New; it is safe for
// concurrent use and never prints credentials (the keychain hands them
// straight to the transport).
type Client struct {
	keychain  authn.Keychain
	insecure  bool
	backoff   remote.Backoff
	transport http.RoundTripper
}

// Option configures a Client.
type Option func(*Client)

// WithKeychain sets where credentials come from. The default is
// authn.DefaultKeychain: the Docker config ($DOCKER_CONFIG/config.json, or
// ~/.docker/config.json) and the credential helpers it names.
func WithKeychain(k authn.Keychain) Option { return func(c *Client) { c.keychain = k } }

// WithInsecure allows plain HTTP, for loopback registries only: a
// reference to any other registry is then refused (see the package doc),
// because credentials and the image would cross the network unprotected.
func WithInsecure() Option { return func(c *Client) { c.insecure = true } }

// WithRetries sets how many times a request that failed with a 5xx, 408,
// 429 or a network timeout is retried, with exponential backoff from first
// (doubling each time, 10% jitter). The default is 3 retries from 250 ms.
func WithRetries(n int, first time.Duration) Option {
	return func(c *Client) {
		if n < 0 {
			n = 0
		}
		c.backoff = remote.Backoff{Duration: first, Factor: 2, Jitter: 0.1, Steps: n + 1}
	}
}

// WithTransport sets the HTTP transport requests go through (a proxy, a
// custom CA, a test's recorder). The plain-HTTP rule and the retries are
// applied on top of it.
func WithTransport(t http.RoundTripper) Option { return func(c *Client) { c.transport = t } }

// defaultTransport is shared by every Client without WithTransport, so
// connections to a registry are reused across the verbs of one process.
// Timeouts bound each phase: a registry that accepts the connection and
// then says nothing must not hang a gate.
var defaultTransport http.RoundTripper = &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   10 * time.Second,
	ResponseHeaderTimeout: 30 * time.Second,
	IdleConnTimeout:       90 * time.Second,
	MaxIdleConnsPerHost:   8,
	ForceAttemptHTTP2:     true,
}

// New returns registry access with the Docker keychain, the shared
// transport and 3 retries from 250 ms.
func New(opts ...Option) *Client {
	c := &Client{
		keychain: authn.DefaultKeychain,
		backoff:  remote.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 4},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

var defaultClient = New()

func (c *Client) orDefault() *Client {
	if c == nil {
		return defaultClient
	}
	return c
}

// retryStatusCodes are the answers worth asking again: the registry or a
// proxy in front of it was busy or broken for a moment.
var retryStatusCodes = []int{
	http.StatusRequestTimeout,
	http.StatusTooManyRequests,
	http.StatusInternalServerError,
	http.StatusBadGateway,
	http.StatusServiceUnavailable,
	http.StatusGatewayTimeout,
}

// ParseReference parses a registry reference (HOST/REPO:TAG or
// HOST/REPO@sha256:...). With WithInsecure it refuses a registry that is
// not on loopback, before anything is sent.
func (c *Client) ParseReference(s string) (name.Reference, error) {
	c = c.orDefault()
	ref, err := name.ParseReference(s, c.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: expected HOST/REPO:TAG or HOST/REPO@sha256:...: %w", s, err)
	}
	if err := c.check(ref.Context().Registry); err != nil {
		return nil, err
	}
	return ref, nil
}

// ParseTag parses a full tag reference (HOST/REPO:TAG, strictly: the tag
// must be given) under the same rule as ParseReference.
func (c *Client) ParseTag(s string) (name.Tag, error) {
	c = c.orDefault()
	t, err := name.NewTag(s, append(c.nameOptions(), name.StrictValidation)...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("parsing tag %q: expected a tag name like latest or HOST/REPO:TAG: %w", s, err)
	}
	if err := c.check(t.Context().Registry); err != nil {
		return name.Tag{}, err
	}
	return t, nil
}

func (c *Client) nameOptions() []name.Option {
	if c.insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// PlainHTTPError is the refusal of plain HTTP to a registry that is not on
// loopback.
type PlainHTTPError struct {
	// Registry is the host[:port] that was refused.
	Registry string
	// Request is set when the transport refused a request (rather than
	// the reference being refused when it was parsed).
	Request string
}

func (e *PlainHTTPError) Error() string {
	if e.Request != "" {
		return fmt.Sprintf("refusing plain HTTP request %s: hil talks plain HTTP only to loopback registries (localhost, 127.0.0.0/8, ::1), and %s is not on loopback; serve it over HTTPS", e.Request, e.Registry)
	}
	return fmt.Sprintf("--insecure (plain HTTP) refused for registry %s: expected a loopback registry (localhost, 127.0.0.0/8, ::1), found %s, which is not on loopback; serve it over HTTPS and drop --insecure", e.Registry, e.Registry)
}

// check applies the plain-HTTP rule to a parsed reference's registry: with
// WithInsecure, a registry off loopback is refused.
func (c *Client) check(reg name.Registry) error {
	if !c.orDefault().insecure || IsLoopback(reg.RegistryStr()) {
		return nil
	}
	return &PlainHTTPError{Registry: reg.RegistryStr()}
}

// IsLoopback reports whether a registry host[:port] is on this machine's
// loopback interface: localhost, 127.0.0.0/8 or ::1. It does not resolve
// other names, so a name that merely resolves to loopback does not count.
func IsLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// plainHTTPGuard is the transport's own enforcement of the rule: it sits
// under go-containerregistry's retry and auth layers, so it sees every
// request hil makes to a registry or its token server.
type plainHTTPGuard struct{ next http.RoundTripper }

func (g plainHTTPGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !IsLoopback(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &PlainHTTPError{Registry: req.URL.Host, Request: req.Method + " " + req.URL.Redacted()}
	}
	resp, err := g.next.RoundTrip(req)
	if err == nil && req.Method == http.MethodGet && resp.StatusCode == http.StatusOK {
		checkClaimedDigest(req, resp)
	}
	return resp, err
}

// manifestPath is a manifest request: /v2/NAME/manifests/TAG-OR-DIGEST.
//
// Compiled on first use, not at package init, which every hil process pays for.
var manifestPath = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`) })

// checkClaimedDigest makes the body of a manifest fetched by tag fail at
// its end when its bytes do not hash to the digest the registry names them
// by (Docker-Content-Digest). go-containerregistry checks only what it
// fetches by digest (and hil checks that against the descriptors); by tag
// it takes the hash of whatever came, so a registry whose stored index or
// manifest was overwritten went unnoticed until the next request by that
// hash found no such manifest. Schema 1 manifests are left alone: their
// digest leaves out the signature.
func checkClaimedDigest(req *http.Request, resp *http.Response) {
	m := manifestPath().FindStringSubmatch(req.URL.Path)
	claimed, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	mt := types.MediaType(strings.TrimSpace(strings.Split(resp.Header.Get("Content-Type"), ";")[0]))
	if m == nil || strings.Contains(m[2], ":") || err != nil || claimed.Algorithm != "sha256" || mt == types.DockerManifestSchema1Signed || mt == types.DockerManifestSchema1 {
		return
	}
	kind := "manifest"
	if mt.IsIndex() {
		kind = "index"
	}
	resp.Body = &claimedBody{ReadCloser: resp.Body, h: sha256.New(), claimed: claimed,
		what: fmt.Sprintf("%s %s from registry %s/%s (%s)", kind, claimed, req.URL.Host, m[1], m[2])}
}

// claimedBody hashes a manifest response as it is read and ends it with an
// error when the bytes are not the ones the registry named.
type claimedBody struct {
	io.ReadCloser
	h       hash.Hash
	claimed v1.Hash
	what    string
}

func (b *claimedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(b.h.Sum(nil)); got != b.claimed.Hex {
			return n, fmt.Errorf("%s: expected content %s as the registry names it (Docker-Content-Digest), found sha256:%s: the registry's copy is corrupt or was tampered with, so hil refuses to use it", b.what, b.claimed, got)
		}
	}
	return n, err
}

// Remote returns the go-containerregistry options for calls made under
// ctx: credentials from the keychain, the guarded transport, retries with
// backoff, hil's user agent.
func (c *Client) Remote(ctx context.Context) []remote.Option {
	c = c.orDefault()
	tr := c.transport
	if tr == nil {
		tr = defaultTransport
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithTransport(plainHTTPGuard{tr}),
		remote.WithRetryBackoff(c.backoff),
		remote.WithRetryStatusCodes(retryStatusCodes...),
		remote.WithUserAgent(UserAgent),
	}
}

// Explain adds the likely cause and what to do to the registry errors
// users hit most (refused credentials, a missing repository or tag, an
// unreachable registry, a plain-HTTP registry); other errors pass through.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	var perr *PlainHTTPError
	if errors.As(err, &perr) {
		return err
	}
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
		return fmt.Errorf("%w (a plain-HTTP registry: hil talks plain HTTP only to loopback registries, with --insecure / registry.WithInsecure)", err)
	}
	return err
}
