package registry_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/internal/testenv"
)

// recorder is a transport that sends nothing: it records what would have
// gone out and fails it. A test with it can never reach the network.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return nil, errors.New("recorder: nothing is sent in this test")
}

func (r *recorder) urls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, q := range r.reqs {
		out = append(out, q.URL.String())
	}
	return out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// offLoopback are registries --insecure must never be used for.
var offLoopback = []string{
	"192.0.2.1:5000", // TEST-NET-1
	"10.0.0.7:5000",  // private, but not this machine
	"registry.example.com",
	"[2001:db8::1]:5000",
	"localhost.example.com:5000", // a name, not loopback, whatever it resolves to
	"127.0.0.1.nip.io:5000",
}

func wantPlainHTTPRefusal(t *testing.T, what string, err error, host string) {
	t.Helper()
	var perr *registry.PlainHTTPError
	if !errors.As(err, &perr) || perr.Registry != host {
		t.Errorf("%s: expected the plain-HTTP refusal for %s, found %v", what, host, err)
		return
	}
	for _, s := range []string{"--insecure", host, "expected a loopback registry", "not on loopback", "HTTPS"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: the refusal lacks %q: %v", what, s, err)
		}
	}
}

// Every way into a registry that image sources and the gate have goes
// through the Client, which refuses --insecure off loopback before a
// single request.
func TestInsecureOffLoopbackIsRefusedBeforeAnyRequest(t *testing.T) {
	for _, host := range offLoopback {
		rec := &recorder{}
		c := registry.New(registry.WithInsecure(), registry.WithTransport(rec), registry.WithRetries(0, time.Millisecond))
		ref := host + "/hil/app:1"
		_, err := c.ParseReference(ref)
		wantPlainHTTPRefusal(t, "ParseReference", err, host)
		_, err = c.ParseTag(ref)
		wantPlainHTTPRefusal(t, "ParseTag", err, host)
		_, err = image.Open(ctxT(t), ref, image.WithRegistry(c))
		wantPlainHTTPRefusal(t, "image.Open", err, host)
		_, err = image.Open(ctxT(t), "registry:"+ref, image.WithRegistry(c))
		wantPlainHTTPRefusal(t, "image.Open registry:", err, host)
		_, err = promote.Gate(ctxT(t), ref, "latest", func(context.Context, promote.Pinned) (promote.Result, error) {
			t.Fatal("the gate tested a refused reference")
			return promote.Result{}, nil
		}, promote.WithRegistry(c))
		wantPlainHTTPRefusal(t, "promote.Gate", err, host)
		_, err = promote.ResolveTag(c, mustParse(t, "127.0.0.1:5000/hil/app:1"), ref)
		wantPlainHTTPRefusal(t, "promote.ResolveTag", err, host)
		_, _, _, err = attest.Find(ctxT(t), c, ref)
		wantPlainHTTPRefusal(t, "attest.Find", err, host)
		if got := rec.urls(); len(got) > 0 {
			t.Errorf("%s: expected no request before the refusal, found %v", host, got)
		}
	}
}

func mustParse(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Loopback registries are not refused: the requests go out (to the
// recorder), in plain HTTP too, with hil's user agent.
func TestInsecureOnLoopbackIsAllowed(t *testing.T) {
	for _, host := range []string{"127.0.0.1:5000", "127.3.2.1:5000", "localhost:5000", "[::1]:5000"} {
		rec := &recorder{}
		c := registry.New(registry.WithInsecure(), registry.WithTransport(rec), registry.WithRetries(0, time.Millisecond))
		_, err := image.Open(ctxT(t), host+"/hil/app:1", image.WithRegistry(c))
		var perr *registry.PlainHTTPError
		if err == nil || errors.As(err, &perr) {
			t.Errorf("%s: expected the recorder's failure, found %v", host, err)
		}
		plain := false
		for _, q := range rec.reqs {
			plain = plain || q.URL.Scheme == "http"
			if ua := q.Header.Get("User-Agent"); !strings.HasPrefix(ua, registry.UserAgent) {
				t.Errorf("%s: expected user agent %s..., found %q", host, registry.UserAgent, ua)
			}
		}
		if !plain {
			t.Errorf("%s: expected a plain-HTTP request to the loopback registry, found %v", host, rec.urls())
		}
	}
}

// The transport refuses plain HTTP off loopback whatever asked for it:
// go-containerregistry falls back to plain HTTP for private addresses by
// itself (no --insecure); hil's transport stops that fallback.
func TestTransportRefusesPlainHTTPOffLoopback(t *testing.T) {
	rec := &recorder{}
	c := registry.New(registry.WithTransport(rec), registry.WithRetries(0, time.Millisecond))
	ref, err := c.ParseReference("10.0.0.7:5000/hil/app:1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(ref, c.Remote(ctxT(t))...)
	var perr *registry.PlainHTTPError
	if !errors.As(err, &perr) || perr.Request == "" || !strings.Contains(err.Error(), "http://10.0.0.7:5000/v2/") {
		t.Fatalf("expected the transport to refuse plain HTTP to 10.0.0.7:5000, found %v", err)
	}
	for _, u := range rec.urls() {
		if !strings.HasPrefix(u, "https://") {
			t.Errorf("a plain-HTTP request got through to the transport: %s", u)
		}
	}
	if len(rec.urls()) == 0 {
		t.Error("expected the HTTPS attempt to reach the transport")
	}
}

// A nil Client is the default one, so library callers that leave it out
// (promote.Pinned without a Registry) still get the rule.
func TestNilClientIsTheDefault(t *testing.T) {
	var c *registry.Client
	if _, err := c.ParseReference("registry.example.com/app:1"); err != nil {
		t.Errorf("nil Client: %v", err)
	}
	if len(c.Remote(ctxT(t))) == 0 {
		t.Error("nil Client: no remote options")
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST:5000": true, "127.0.0.1": true, "127.255.0.9:80": true, "[::1]:5000": true, "::1": true,
		"192.0.2.1:5000": false, "10.0.0.1": false, "localhost.example.com": false, "0.0.0.0:5000": false, "[::]:5000": false, "": false,
	} {
		if got := registry.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// A registry whose stored index was overwritten serves other bytes under
// the digest it names (Docker-Content-Digest). go-containerregistry takes
// the hash of what came for a tag; the Client refuses, naming the index,
// instead of pinning bytes the registry itself does not know by that hash.
func TestTamperedManifestByTagIsRefusedNamingIt(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := testenv.Registry(t)
	c := registry.New(registry.WithInsecure())
	idx, err := random.Index(64, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := c.ParseReference(reg.Host + "/hil/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, c.Remote(ctxT(t))...); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	if _, err := remote.Get(ref, c.Remote(ctxT(t))...); err != nil {
		t.Fatalf("the genuine index: %v", err)
	}
	p := reg.BlobPath(d.String())
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(b, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = remote.Get(ref, c.Remote(ctxT(t))...)
	if err == nil {
		t.Fatalf("the registry served other bytes than it names %s by, and they were taken", d)
	}
	for _, s := range []string{"index " + d.String(), reg.Host + "/hil/app", "Docker-Content-Digest", "expected", "found sha256:"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the refusal lacks %q: %v", s, err)
		}
	}
}
