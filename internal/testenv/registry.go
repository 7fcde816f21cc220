package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const registryBin = "/usr/bin/docker-registry"

// RegistryServer is a real registry server (Debian's docker-registry, the CNCF
// distribution) listening on loopback, with its storage in a temp dir.
type RegistryServer struct {
	// Host is "127.0.0.1:PORT", ready for references like Host+"/app:tag".
	Host string

	dir    string
	config string
	cmd    *exec.Cmd
	waitCh chan error
	log    *bytes.Buffer
	user   string
	pass   string
}

// RegistryOption configures Registry.
type RegistryOption func(*RegistryServer)

// WithHtpasswd makes the registry require HTTP basic auth with one user.
func WithHtpasswd(user, pass string) RegistryOption {
	return func(r *RegistryServer) { r.user, r.pass = user, pass }
}

// StartRegistry starts a registry server and waits until it answers. Stop
// it with Stop; Restart brings it back on the same port with the same
// storage (for "registry down during the write" tests).
func StartRegistry(ctx context.Context, dir string, opts ...RegistryOption) (*RegistryServer, error) {
	if _, err := os.Stat(registryBin); err != nil {
		return nil, fmt.Errorf("%s not found (Debian package docker-registry): run `make deps`", registryBin)
	}
	r := &RegistryServer{dir: dir}
	for _, o := range opts {
		o(r)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r.Host = fmt.Sprintf("127.0.0.1:%d", port)
	auth := ""
	if r.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(r.pass), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("hashing the registry password: %w", err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(r.user+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: hil-test\n    path: %s\n", htpasswd)
	}
	r.config = filepath.Join(dir, "config.yml")
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, filepath.Join(dir, "storage"), r.Host, auth)
	if err := os.WriteFile(r.config, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return r, r.start(ctx)
}

func (r *RegistryServer) start(ctx context.Context) error {
	r.log = &bytes.Buffer{}
	r.cmd = exec.Command(registryBin, "serve", r.config)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.SysProcAttr = serviceProcAttr()
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("starting docker-registry: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- r.cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("docker-registry exited at start (%v): %s", err, r.log.String())
		case <-ctx.Done():
			r.waitCh = exited
			r.Stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
			r.waitCh = exited
			return nil
		}
	}
	r.waitCh = exited
	r.Stop()
	return fmt.Errorf("docker-registry did not answer on %s within 15s: %s", r.Host, r.log.String())
}

// Stop kills the registry server (its storage stays).
func (r *RegistryServer) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	if r.waitCh != nil {
		<-r.waitCh
		r.waitCh = nil
	}
	r.cmd = nil
}

// Restart starts a stopped registry again on the same address and storage.
func (r *RegistryServer) Restart(ctx context.Context) error {
	r.Stop()
	return r.start(ctx)
}

// BlobPath is the file where the registry stores the blob with digest d
// (sha256:HEX): tests overwrite it to make the registry serve bytes that
// are not what their digest names, as a compromised registry would.
func (r *RegistryServer) BlobPath(d string) string {
	hx := strings.TrimPrefix(d, "sha256:")
	if len(hx) < 2 {
		return ""
	}
	return filepath.Join(r.dir, "storage", "docker", "registry", "v2", "blobs", "sha256", hx[:2], hx, "data")
}

// Log returns what the registry printed (for test failure messages).
func (r *RegistryServer) Log() string { return r.log.String() }

// Registry starts a registry server for the test and stops it at cleanup.
func Registry(t testing.TB, opts ...RegistryOption) *RegistryServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := StartRegistry(ctx, t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("starting a registry: %v", err)
	}
	t.Cleanup(r.Stop)
	return r
}

// FlakyProxy puts an HTTP proxy in front of the registry that answers 503
// to every request fail says yes to, and passes the rest through: a real
// registry cannot be made to fail on demand. It returns the proxy's
// host:port and a count of the requests it failed.
func (r *RegistryServer) FlakyProxy(t testing.TB, fail func(*http.Request) bool) (host string, failed func() int) {
	t.Helper()
	upstream, err := url.Parse("http://" + r.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		f := fail(req)
		if f {
			n++
		}
		mu.Unlock()
		if f {
			http.Error(w, "injected failure", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}
