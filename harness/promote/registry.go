package promote

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hilproject/hil/harness/image"
)

// Registry is how hil reaches registries: credentials, plain HTTP and
// retries. The zero value is not useful; build it with NewRegistry.
type Registry struct {
	keychain authn.Keychain
	insecure bool
	backoff  remote.Backoff
	// transport lets tests and callers wrap the HTTP transport (proxies,
	// custom CAs); nil means http.DefaultTransport.
	transport http.RoundTripper
}

// RegistryOption configures a Registry.
type RegistryOption func(*Registry)

// WithKeychain sets where credentials come from. The default is
// authn.DefaultKeychain: the Docker config ($DOCKER_CONFIG/config.json)
// and the credential helpers it names.
func WithKeychain(k authn.Keychain) RegistryOption {
	return func(r *Registry) { r.keychain = k }
}

// WithInsecure allows plain HTTP. It is honoured only for loopback
// registries: a reference to any other registry is refused, because
// credentials and the image would cross the network unprotected.
func WithInsecure() RegistryOption {
	return func(r *Registry) { r.insecure = true }
}

// WithRegistryRetries sets how many times a request that failed with a 5xx,
// 408, 429 or a network timeout is retried, with exponential backoff from
// first (doubling each time).
func WithRegistryRetries(n int, first time.Duration) RegistryOption {
	return func(r *Registry) {
		if n < 0 {
			n = 0
		}
		r.backoff = remote.Backoff{Duration: first, Factor: 2, Jitter: 0.1, Steps: n + 1}
	}
}

// WithTransport sets the HTTP transport requests go through.
func WithTransport(t http.RoundTripper) RegistryOption {
	return func(r *Registry) { r.transport = t }
}

// NewRegistry returns registry access with the Docker keychain and three
// retries starting at 250 ms.
func NewRegistry(opts ...RegistryOption) *Registry {
	r := &Registry{
		keychain: authn.DefaultKeychain,
		backoff:  remote.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 4},
	}
	for _, o := range opts {
		o(r)
	}
	return r
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

// ParseReference parses s, refusing --insecure for registries that are not
// on loopback.
func (r *Registry) ParseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s, r.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", s, err)
	}
	if err := r.checkInsecure(ref.Context().Registry); err != nil {
		return nil, err
	}
	return ref, nil
}

func (r *Registry) nameOptions() []name.Option {
	if r.insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (r *Registry) checkInsecure(reg name.Registry) error {
	if !r.insecure {
		return nil
	}
	if !IsLoopback(reg.RegistryStr()) {
		return fmt.Errorf("--insecure (plain HTTP) is allowed only for loopback registries, but %s is not on loopback: use HTTPS for it", reg.RegistryStr())
	}
	return nil
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

// Remote returns the go-containerregistry options for one call made under
// ctx: credentials from the keychain, retries with backoff, the transport.
// The options never print credentials; the keychain hands them straight to
// the transport.
func (r *Registry) Remote(ctx context.Context) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(r.keychain),
		remote.WithRetryBackoff(r.backoff),
		remote.WithRetryStatusCodes(retryStatusCodes...),
		remote.WithUserAgent("hil"),
	}
	if r.transport != nil {
		opts = append(opts, remote.WithTransport(r.transport))
	}
	return opts
}

// Keychain is where credentials come from, for callers that open the pinned
// image with another library (harness/image).
func (r *Registry) Keychain() authn.Keychain { return r.keychain }

// Insecure reports whether plain HTTP was allowed (loopback only).
func (r *Registry) Insecure() bool { return r.insecure }

// Transport is the HTTP transport set with WithTransport (nil for the
// default).
func (r *Registry) Transport() http.RoundTripper { return r.transport }

// ImageOptions are the harness/image options that open an image through
// this registry access: its credentials, plain HTTP when allowed, its
// transport. A nil Registry gives none.
func (r *Registry) ImageOptions() []image.Option {
	if r == nil {
		return nil
	}
	opts := []image.Option{image.WithKeychain(r.keychain)}
	if r.insecure {
		opts = append(opts, image.WithInsecure())
	}
	if r.transport != nil {
		opts = append(opts, image.WithTransport(r.transport))
	}
	return opts
}
