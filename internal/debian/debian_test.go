package debian

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func requireApt(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: this package drives Debian's apt", tool)
		}
	}
}

func TestParseDeps(t *testing.T) {
	got := parseDeps("libc6 (>= 2.33), libdbus-1-3 (>= 1.9.14) | dbus:any, debconf (>= 0.5) | debconf-2.0")
	want := [][]string{{"libc6"}, {"libdbus-1-3", "dbus"}, {"debconf", "debconf-2.0"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseDeps: expected %v, found %v", want, got)
	}
	if parseDeps("  ") != nil {
		t.Fatal("empty Depends should give no groups")
	}
}

func TestHostMirrors(t *testing.T) {
	etc := t.TempDir()
	os.MkdirAll(filepath.Join(etc, "sources.list.d"), 0o755)
	os.WriteFile(filepath.Join(etc, "sources.list.d", "debian.sources"), []byte(`Types: deb
# a comment
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`), 0o644)
	os.WriteFile(filepath.Join(etc, "sources.list.d", "vendor.sources"), []byte(`Types: deb
URIs: https://vendor.example/apt
Suites: stable
Components: main
Signed-By: /usr/share/keyrings/vendor.gpg
`), 0o644)
	m, err := hostMirrors(etc)
	if err != nil {
		t.Fatal(err)
	}
	if m.archive != "http://mirror.example/debian" || m.security != "http://mirror.example/debian-security" {
		t.Fatalf("deb822: expected archive/security mirrors from debian.sources, found %+v", m)
	}

	one := t.TempDir()
	os.WriteFile(filepath.Join(one, "sources.list"), []byte(`# old style
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://one.example/debian bookworm main
deb http://one.example/debian-security bookworm-security main
`), 0o644)
	m, err = hostMirrors(one)
	if err != nil {
		t.Fatal(err)
	}
	if m.archive != "http://one.example/debian" || m.security != "http://one.example/debian-security" {
		t.Fatalf("sources.list: unexpected mirrors %+v", m)
	}

	ubuntu := t.TempDir()
	os.WriteFile(filepath.Join(ubuntu, "sources.list"), []byte("deb http://archive.ubuntu.com/ubuntu jammy main\n"), 0o644)
	if m, err := hostMirrors(ubuntu); err == nil {
		t.Fatalf("an Ubuntu host: expected no Debian mirror, found %+v", m)
	}

	if _, err := hostMirrors(t.TempDir()); err == nil || !strings.Contains(err.Error(), "HIL_DEBIAN_MIRROR") {
		t.Fatalf("empty /etc/apt: expected a clear error, found %v", err)
	}
}

func TestSourceValidate(t *testing.T) {
	for _, s := range []Source{{}, {Suite: "bookworm"}, {Suite: "../x", Arch: "armhf"}, {Suite: "a b", Arch: "armhf"}} {
		if _, err := s.Resolve(context.Background(), "libc6"); err == nil {
			t.Errorf("%+v: expected an error", s)
		}
	}
}

// The real thing: a private apt tree for bookworm/armhf against the host's
// mirror, a closure, a download with sha256 check, the cache and dpkg-deb.
func TestBookwormArmhfRealArchive(t *testing.T) {
	requireApt(t)
	if os.Getuid() != 0 {
		t.Skip("apt-get update/download need root (they drop to the _apt user)")
	}
	t.Setenv("HIL_CACHE", cacheForTests(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src := Source{Suite: "bookworm", Arch: "armhf", Log: testWriter{t}}

	clo, err := src.Closure(ctx, "libpcap0.8")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]Package{}
	for _, p := range clo {
		names[p.Name] = p
		if p.Version == "" || p.SHA256 == "" || p.Filename == "" {
			t.Errorf("incomplete record %+v", p)
		}
		if p.Arch != "armhf" && p.Arch != "all" {
			t.Errorf("%s: expected armhf or all, found %s", p.Name, p.Arch)
		}
	}
	for _, want := range []string{"libpcap0.8", "libc6", "libgcc-s1", "libdbus-1-3"} {
		if _, ok := names[want]; !ok {
			t.Errorf("closure of libpcap0.8 lacks %s; found %v", want, clo)
		}
	}

	res, err := src.Resolve(ctx, "libcap2")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Name != "libcap2" {
		t.Fatalf("Resolve(libcap2): %v", res)
	}
	// A purely virtual name resolves to a real provider.
	virt, err := src.Resolve(ctx, "debconf-2.0")
	if err != nil || (virt[0].Name != "debconf" && virt[0].Name != "cdebconf") {
		t.Fatalf("Resolve(debconf-2.0): expected a provider (debconf or cdebconf), found %v %v", virt, err)
	}
	if _, err := src.Resolve(ctx, "no-such-package-hil"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Resolve of a missing package: expected ErrNotFound, found %v", err)
	}

	deb, err := src.Fetch(ctx, res[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := checkSHA256(deb, res[0].SHA256); err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(deb)
	again, err := src.Fetch(ctx, res[0])
	if err != nil || again != deb {
		t.Fatalf("second Fetch: %v %s", err, again)
	}
	if st2, _ := os.Stat(again); !st2.ModTime().Equal(st1.ModTime()) {
		t.Error("second Fetch downloaded again instead of using the cache")
	}

	root := t.TempDir()
	if err := Extract(ctx, deb, root); err != nil {
		t.Fatal(err)
	}
	// bookworm's packages still ship /lib (the usr-merge is done by
	// base-files symlinks on an installed system).
	libs, _ := filepath.Glob(filepath.Join(root, "*lib/arm-linux-gnueabihf/libcap.so.2*"))
	more, _ := filepath.Glob(filepath.Join(root, "usr/lib/arm-linux-gnueabihf/libcap.so.2*"))
	if len(libs)+len(more) == 0 {
		t.Fatalf("libcap2 extracted without lib/arm-linux-gnueabihf/libcap.so.2*")
	}

	bad := res[0]
	bad.SHA256 = strings.Repeat("0", 64)
	os.Remove(deb)
	if _, err := src.Fetch(ctx, bad); err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("Fetch with a wrong sha256: expected a mismatch error, found %v", err)
	}
	gone := res[0]
	gone.Version = "0.0.0-hil-vanished"
	if _, err := src.Fetch(ctx, gone); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Fetch of a vanished version: expected ErrNotFound, found %v", err)
	}
}

// cacheForTests shares one apt tree between test runs (the lists are ~25 MB)
// unless HIL_CACHE is set by the caller.
func cacheForTests(t *testing.T) string {
	if d := os.Getenv("HIL_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return t.TempDir()
	}
	return filepath.Join(d, "hil")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
