package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/internal/testenv"
)

func TestLockFileRoundTripAndErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "debs.lock")
	good := strings.Repeat("a", 64)
	os.WriteFile(p, []byte("# comment\nruntime-armhf libc6 2.36-9 armhf bookworm "+good+"\n\nruntime-amd64 libc6 2.36-9 amd64 bookworm "+good+"\n"), 0o644)
	lf, err := readLock(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(lf.entries["runtime-armhf"]) != 1 || lf.entries["runtime-armhf"][0].Package.Version != "2.36-9" {
		t.Fatalf("unexpected entries %+v", lf.entries)
	}
	if lf.covers(setByName("runtime-armhf")) {
		t.Error("a lock without libpcap0.8 must not cover runtime-armhf (its roots are libc6 and libpcap0.8)")
	}
	out := filepath.Join(dir, "out.lock")
	if err := lf.write(out); err != nil {
		t.Fatal(err)
	}
	again, err := readLock(out)
	if err != nil || len(again.entries["runtime-amd64"]) != 1 {
		t.Fatalf("re-reading a written lock: %v %+v", err, again)
	}

	for _, bad := range []string{
		"runtime-armhf libc6 2.36-9 armhf bookworm\n",
		"runtime-armhf libc6 2.36-9 armhf bookworm abc\n",
	} {
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := readLock(p); err == nil || !strings.Contains(err.Error(), "debs.lock:1") {
			t.Errorf("%q: expected an error naming the line, found %v", bad, err)
		}
	}
	if lf, err := readLock(filepath.Join(dir, "absent.lock")); err != nil || len(lf.entries) != 0 {
		t.Errorf("a missing lock is an empty one, found %v %v", lf, err)
	}
}

// Building the same platform image twice, in a process of its own, gives
// the digest `make images` recorded: the build is deterministic.
func TestAssembleIsDeterministic(t *testing.T) {
	testenv.RequireRoot(t)
	imagesDir := testenv.ImagesDir(t)
	repo := testenv.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lock, err := readLock(filepath.Join(repo, "images", "debs.lock"))
	if err != nil {
		t.Fatal(err)
	}
	res := &debResolver{lock: lock, strict: true, log: os.Stderr}
	pkgs, debs, err := res.fetch(ctx, setByName("runtime-amd64"))
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string]fetched{"runtime-amd64": {pkgs, debs}}
	bin := filepath.Join(imagesDir, "bin", "pcapwatch-linux-amd64")
	var digests []v1.Hash
	for range 2 {
		img, _, err := assemble(ctx, variants[0], "linux/amd64", sets, bin, map[string]v1.Layer{})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Fatalf("two assemblies of pcapwatch linux/amd64 differ: %s vs %s", digests[0], digests[1])
	}
	if fresh, _ := upToDate(imagesDir, ""); !fresh {
		t.Skipf("%s is stale (sources changed since make images); compared the two fresh builds only", imagesDir)
	}
	built, err := readManifest(filepath.Join(imagesDir, "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := built[0].Manifests["linux/amd64"]; got != digests[0].String() {
		t.Errorf("make images recorded pcapwatch linux/amd64 as %s, a rebuild gives %s", got, digests[0])
	}
}

var (
	builderOnce sync.Once
	builderPath string
	builderErr  error
)

// builder compiles this command once per test process.
func builder(t *testing.T) string {
	t.Helper()
	builderOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hil-imgbuild-")
		if err != nil {
			builderErr = err
			return
		}
		builderPath = filepath.Join(dir, "imgbuild")
		out, err := exec.Command("go", "build", "-o", builderPath, ".").CombinedOutput()
		if err != nil {
			builderErr = errors.New(string(out))
		}
	})
	if builderErr != nil {
		t.Fatalf("building images/build: %v", builderErr)
	}
	return builderPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builderPath != "" {
		os.RemoveAll(filepath.Dir(builderPath))
	}
	os.Exit(code)
}

func runBuilder(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, builder(t), args...)
	cmd.Dir = testenv.RepoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// A second build with nothing changed does nothing and says so.
func TestRebuildWithNothingChangedIsNoOp(t *testing.T) {
	imagesDir := testenv.ImagesDir(t)
	out, _, code := runBuilder(t, nil, "--out", imagesDir, "--check")
	if code == 3 {
		t.Fatalf("%s is stale (%s): run make images", imagesDir, strings.TrimSpace(out))
	}
	if code != 0 {
		t.Fatalf("--check exited %d: %s", code, out)
	}
	before, _ := os.ReadFile(filepath.Join(imagesDir, "images.json"))
	st, _ := os.Stat(filepath.Join(imagesDir, "pcapwatch", "index.json"))
	out, errOut, code := runBuilder(t, nil, "--out", imagesDir)
	if code != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("expected a no-op saying nothing to do, found exit %d:\n%s%s", code, out, errOut)
	}
	var built []*builtImage
	json.Unmarshal(before, &built)
	for _, b := range built {
		if !strings.Contains(out, b.Digest) {
			t.Errorf("the no-op's table lacks %s %s:\n%s", b.Name, b.Digest, out)
		}
	}
	after, _ := os.ReadFile(filepath.Join(imagesDir, "images.json"))
	st2, _ := os.Stat(filepath.Join(imagesDir, "pcapwatch", "index.json"))
	if !bytes.Equal(before, after) || !st.ModTime().Equal(st2.ModTime()) {
		t.Error("the no-op rewrote the outputs")
	}
}

// The build used exactly the locked packages, and a pinned version that
// vanished from the mirror fails under HIL_STRICT_LOCK=1, is substituted
// with a warning otherwise (and the lock is left alone), and --relock
// records the current version.
func TestLockIsHonoured(t *testing.T) {
	testenv.RequireRoot(t)
	imagesDir := testenv.ImagesDir(t)
	repo := testenv.RepoRoot(t)
	lockPath := filepath.Join(repo, "images", "debs.lock")
	lock, err := readLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	if fresh, _ := upToDate(imagesDir, ""); fresh {
		built, err := readManifest(filepath.Join(imagesDir, "images.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range built {
			for _, v := range variants {
				if v.Name != b.Name {
					continue
				}
				for _, plat := range v.Platforms {
					var want []string
					for _, e := range lock.entries[v.Runtime(plat)] {
						p := e.Package
						want = append(want, p.Name+" "+p.Version+" "+p.Arch+" "+p.SHA256)
					}
					if strings.Join(want, "\n") != strings.Join(b.Packages[plat], "\n") {
						t.Errorf("%s %s: built from\n%s\nbut the lock pins\n%s", b.Name, plat, strings.Join(b.Packages[plat], "\n"), strings.Join(want, "\n"))
					}
				}
			}
			for _, d := range debImages {
				if d.Name != b.Name {
					continue
				}
				for _, plat := range d.Platforms {
					var want []string
					for _, set := range []string{d.Runtime(plat), d.App(plat)} {
						for _, e := range lock.entries[set] {
							p := e.Package
							want = append(want, p.Name+" "+p.Version+" "+p.Arch+" "+p.SHA256)
						}
					}
					if strings.Join(want, "\n") != strings.Join(b.Packages[plat], "\n") {
						t.Errorf("%s %s: built from\n%s\nbut the lock pins\n%s", b.Name, plat, strings.Join(b.Packages[plat], "\n"), strings.Join(want, "\n"))
					}
				}
			}
		}
	}

	// A lock whose libcap2 (armhf) version has vanished.
	orig, _ := os.ReadFile(lockPath)
	var doctored []string
	for _, l := range strings.Split(string(orig), "\n") {
		f := strings.Fields(l)
		if len(f) == 6 && f[0] == "runtime-armhf" && f[1] == "libcap2" {
			l = strings.Replace(l, f[2], "9.9.9-hil-vanished", 1)
		}
		doctored = append(doctored, l)
	}
	tmpLock := filepath.Join(t.TempDir(), "debs.lock")
	os.WriteFile(tmpLock, []byte(strings.Join(doctored, "\n")), 0o644)

	_, errOut, code := runBuilder(t, []string{"HIL_STRICT_LOCK=1"}, "--lock", tmpLock, "--fetch-only")
	if code == 0 || !strings.Contains(errOut, "libcap2 9.9.9-hil-vanished") || !strings.Contains(errOut, "HIL_STRICT_LOCK") {
		t.Errorf("strict: expected a failure naming libcap2 9.9.9-hil-vanished, found exit %d: %s", code, errOut)
	}
	out, errOut, code := runBuilder(t, []string{"HIL_STRICT_LOCK="}, "--lock", tmpLock, "--fetch-only")
	if code != 0 || !strings.Contains(errOut, "warning") || !strings.Contains(errOut, "libcap2 9.9.9-hil-vanished") {
		t.Errorf("not strict: expected a warning and success, found exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "libcap2_") || strings.Contains(out, "9.9.9-hil-vanished") {
		t.Errorf("not strict: expected the current libcap2 to be used, found:\n%s", out)
	}
	if b, _ := os.ReadFile(tmpLock); !strings.Contains(string(b), "9.9.9-hil-vanished") {
		t.Error("a plain build must not rewrite the lock (only --relock does)")
	}

	_, errOut, code = runBuilder(t, nil, "--lock", tmpLock, "--relock", "--fetch-only")
	if code != 0 {
		t.Fatalf("--relock: exit %d: %s", code, errOut)
	}
	relocked, err := readLock(tmpLock)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range relocked.entries["runtime-armhf"] {
		if e.Package.Name == "libcap2" {
			found = true
			if e.Package.Version == "9.9.9-hil-vanished" || !strings.Contains(out, "libcap2_"+e.Package.Version+"_") {
				t.Errorf("--relock: expected libcap2 at the mirror's current version (as substituted above), found %s", e.Package.Version)
			}
		}
	}
	if !found {
		t.Error("--relock dropped libcap2 from runtime-armhf")
	}
}
