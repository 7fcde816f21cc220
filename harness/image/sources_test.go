package image

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/internal/tamper"
	"github.com/hilproject/hil/internal/testenv"
)

// platformImage makes a small image for one platform whose /etc/platform
// names it, so a test can tell which manifest was flattened.
func testPlatformImage(t testing.TB, p v1.Platform) v1.Image {
	t.Helper()
	img := imageOf(t, layerOf(t, tarOf(t,
		file("etc/platform", p.String(), 0o644),
		file("opt/app", "#!/bin/sh\necho "+p.String()+"\n", 0o755),
	)))
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config.Entrypoint = []string{"/opt/app"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// insecure opens loopback registries over plain HTTP, as --insecure does.
var insecure = WithRegistry(registry.New(registry.WithInsecure()))

var (
	armv7 = v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
)

func testIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, p := range []v1.Platform{armv7, amd64} {
		p := p
		adds = append(adds, mutate.IndexAddendum{Add: testPlatformImage(t, p), Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

func mustDigest(t testing.TB, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func platformStrings(ps []v1.Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// checkTwoPlatforms asserts what every source of testIndex must give.
func checkTwoPlatforms(t *testing.T, a *Artifact, idx v1.ImageIndex) {
	t.Helper()
	if a.Digest != mustDigest(t, idx) {
		t.Errorf("Digest: expected the index digest %s, found %s", mustDigest(t, idx), a.Digest)
	}
	if got := platformStrings(a.Platforms()); got != "linux/arm/v7, linux/amd64" {
		t.Errorf("Platforms: expected linux/arm/v7, linux/amd64, found %s", got)
	}
	for _, want := range []string{"linux/arm/v7", "linux/arm", "linux/amd64"} {
		img, err := a.Image(want)
		if err != nil {
			t.Fatalf("Image(%s): %v", want, err)
		}
		if img.Digest != a.Digest || img.Config.Entrypoint[0] != "/opt/app" {
			t.Errorf("Image(%s): expected digest %s and entrypoint /opt/app, found %s %v", want, a.Digest, img.Digest, img.Config.Entrypoint)
		}
		dir, err := img.RootFS(ctxT(t))
		if err != nil {
			t.Fatalf("RootFS(%s): %v", want, err)
		}
		wantPlat := img.Platform.String()
		if got := readFile(t, filepath.Join(dir, "etc/platform")); got != wantPlat || (want == "linux/arm" && got != "linux/arm/v7") {
			t.Errorf("RootFS(%s): expected the %s rootfs, found %q", want, wantPlat, got)
		}
		if fi, _ := os.Stat(filepath.Join(dir, "opt/app")); fi.Mode().Perm() != 0o755 {
			t.Errorf("RootFS(%s): opt/app expected 0755, found %v", want, fi.Mode())
		}
	}
	_, err := a.Image("linux/arm64")
	wantErr := fmt.Sprintf("image %s has no linux/arm64 manifest; it has linux/arm/v7, linux/amd64", a.Ref)
	if err == nil || err.Error() != wantErr {
		t.Errorf("Image(linux/arm64): expected %q, found %v", wantErr, err)
	}
	if _, err := a.Image("linux/arm/v6"); err == nil {
		t.Error("Image(linux/arm/v6): expected no match for v7")
	}
	if _, err := a.Image(""); err == nil || !strings.Contains(err.Error(), "has 2 platforms") {
		t.Errorf(`Image(""): expected "say which one", found %v`, err)
	}
}

func TestOpenOCILayout(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	idx := testIndex(t)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"oci:" + dir, dir, "oci:" + dir + "@" + mustDigest(t, idx).String()} {
		t.Run(strings.ReplaceAll(ref, "/", "_"), func(t *testing.T) {
			a, err := Open(ctxT(t), ref)
			if err != nil {
				t.Fatalf("Open(%s): %v", ref, err)
			}
			if a.Kind != "oci" || a.Index() == nil {
				t.Errorf("expected an oci index artifact, found kind %q index %v", a.Kind, a.Index())
			}
			checkTwoPlatforms(t, a, idx)
		})
	}
	// A platform manifest digest pins that one image.
	armDigest := mustDigest(t, testPlatformImage(t, armv7))
	a, err := Open(ctxT(t), "oci:"+dir+"@"+armDigest.String())
	if err != nil || a.Digest != armDigest || platformStrings(a.Platforms()) != "linux/arm/v7" {
		t.Errorf("oci:DIR@<arm manifest>: expected the arm image %s alone, found %+v %v", armDigest, a, err)
	}
	_, err = Open(ctxT(t), "oci:"+dir+"@sha256:"+strings.Repeat("a", 64))
	if err == nil || !strings.Contains(err.Error(), "index.json has no entry") {
		t.Errorf("expected a missing-digest error, found %v", err)
	}
	_, err = Open(ctxT(t), "oci:"+t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "expected an OCI layout dir") {
		t.Errorf("expected a not-a-layout error, found %v", err)
	}
}

// A layout whose index.json is itself the platform index (layout.Write of
// the index) pins to the digest of index.json.
func TestOpenOCILayoutFlatIndex(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	idx := testIndex(t)
	dir := t.TempDir()
	if _, err := layout.Write(dir, idx); err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctxT(t), "oci:"+dir)
	if err != nil {
		t.Fatal(err)
	}
	checkTwoPlatforms(t, a, idx)
}

func TestOpenOCILayoutDetectsTampering(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	img := testPlatformImage(t, armv7)
	dir := t.TempDir()
	p, _ := layout.Write(dir, empty.Index)
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigName()
	blob := filepath.Join(dir, "blobs", "sha256", cfg.Hex)
	raw, _ := os.ReadFile(blob)
	os.WriteFile(blob, []byte(strings.Replace(string(raw), "/opt/app", "/opt/evil", 1)), 0o644)
	a, err := Open(ctxT(t), "oci:"+dir)
	if err == nil {
		_, err = a.Image("linux/arm/v7")
	}
	if err == nil || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("expected a tampered-config error, found %v", err)
	}
}

func TestOpenDockerArchive(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	arm, x86 := testPlatformImage(t, armv7), testPlatformImage(t, amd64)
	dir := t.TempDir()
	multi := filepath.Join(dir, "multi.tar")
	armTag, _ := name.NewTag("hil.local/app:arm-v7")
	x86Tag, _ := name.NewTag("hil.local/app:amd64")
	if err := tarball.MultiRefWriteToFile(multi, map[name.Reference]v1.Image{armTag: arm, x86Tag: x86}); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctxT(t), "docker-archive:"+multi)
	if err == nil || !strings.Contains(err.Error(), "holds 2 images") || !strings.Contains(err.Error(), "hil.local/app:arm-v7") || !strings.Contains(err.Error(), "hil.local/app:amd64") {
		t.Errorf("expected an error listing both tags, found %v", err)
	}
	_, err = Open(ctxT(t), "docker-archive:"+multi+":hil.local/app:riscv")
	if err == nil || !strings.Contains(err.Error(), "has no image tagged hil.local/app:riscv") {
		t.Errorf("expected a missing-tag error, found %v", err)
	}
	a, err := Open(ctxT(t), "docker-archive:"+multi+":hil.local/app:arm-v7")
	if err != nil {
		t.Fatalf("Open with tag: %v", err)
	}
	if a.Digest != mustDigest(t, arm) || platformStrings(a.Platforms()) != "linux/arm/v7" || a.Index() != nil {
		t.Errorf("expected the arm image %s, found %s %s", mustDigest(t, arm), a.Digest, platformStrings(a.Platforms()))
	}
	img, err := a.Image("")
	if err != nil {
		t.Fatal(err)
	}
	root, err := img.RootFS(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "etc/platform")); got != "linux/arm/v7" {
		t.Errorf("expected the arm rootfs, found %q", got)
	}
	if _, err := a.Image("linux/amd64"); err == nil || !strings.Contains(err.Error(), "it has linux/arm/v7") {
		t.Errorf("expected a wrong-platform error, found %v", err)
	}

	single := filepath.Join(dir, "single.tar")
	if err := tarball.WriteToFile(single, x86Tag, x86); err != nil {
		t.Fatal(err)
	}
	a, err = Open(ctxT(t), single) // bare path
	if err != nil || a.Kind != "docker-archive" || a.Digest != mustDigest(t, x86) {
		t.Fatalf("bare path: expected the amd64 archive, found %+v %v", a, err)
	}
}

func TestOpenSampleImage(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	images := testenv.ImagesDir(t)
	a, err := Open(ctxT(t), "oci:"+filepath.Join(images, "pcapwatch"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := a.Image("linux/arm/v7")
	if err != nil {
		t.Fatalf("expected a linux/arm/v7 manifest in the sample image: %v", err)
	}
	root, err := img.RootFS(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"opt/pcapwatch", "lib/ld-linux-armhf.so.3"} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: expected it in the arm/v7 rootfs: %v", p, err)
			continue
		}
		if p == "opt/pcapwatch" && fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s: expected it executable, found %v", p, fi.Mode())
		}
	}
	if _, err := a.Image("linux/amd64"); err != nil {
		t.Errorf("expected a linux/amd64 manifest too: %v", err)
	}

	// The same index pushed to a real registry pins to the same digest, and
	// its arm/v7 rootfs is the cached one (keyed by manifest digest).
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := testenv.Registry(t)
	pushIndex(t, reg.Host+"/hil/pcapwatch:test", a.Index())
	ra, err := Open(ctxT(t), reg.Host+"/hil/pcapwatch:test")
	if err != nil {
		t.Fatal(err)
	}
	if ra.Digest != a.Digest {
		t.Errorf("registry digest: expected the layout's %s, found %s", a.Digest, ra.Digest)
	}
	rimg, err := ra.Image("linux/arm")
	if err != nil {
		t.Fatal(err)
	}
	if rroot, err := rimg.RootFS(ctxT(t)); err != nil || rroot != root {
		t.Errorf("expected the cached rootfs %s, found %s (%v)", root, rroot, err)
	}

	// The docker-save tarball beside it holds one image per platform.
	tarPath := filepath.Join(images, "pcapwatch.tar")
	if _, err := Open(ctxT(t), "docker-archive:"+tarPath); err == nil || !strings.Contains(err.Error(), "pick one") {
		t.Errorf("expected the multi-image archive to ask for a tag, found %v", err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(tarPath) })
	if err != nil || len(m) == 0 || len(m[0].RepoTags) == 0 {
		t.Fatalf("reading %s: %v", tarPath, err)
	}
	for _, d := range m {
		ta, err := Open(ctxT(t), "docker-archive:"+tarPath+":"+d.RepoTags[0])
		if err != nil {
			t.Fatalf("Open(%s): %v", d.RepoTags[0], err)
		}
		if _, err := ta.Image(""); err != nil {
			t.Errorf("%s: %v", d.RepoTags[0], err)
		}
	}
}

// pushIndex pushes idx to ref on a test registry.
func pushIndex(t testing.TB, ref string, idx v1.ImageIndex, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx, append(opts, remote.WithContext(ctxT(t)))...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

func TestOpenRegistry(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // anonymous: no credentials of the host user
	reg := testenv.Registry(t)
	idx := testIndex(t)
	pushIndex(t, reg.Host+"/hil/app:1", idx)

	for _, ref := range []string{reg.Host + "/hil/app:1", "registry:" + reg.Host + "/hil/app@" + mustDigest(t, idx).String()} {
		a, err := Open(ctxT(t), ref, insecure)
		if err != nil {
			t.Fatalf("Open(%s): %v", ref, err)
		}
		if a.Kind != "registry" {
			t.Errorf("kind: expected registry, found %s", a.Kind)
		}
		if ref == reg.Host+"/hil/app:1" {
			// The tag moves after Open: what was opened stays what is read.
			pushIndex(t, reg.Host+"/hil/app:1", mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: testPlatformImage(t, amd64)}))
		}
		checkTwoPlatforms(t, a, idx)
	}
	_, err := Open(ctxT(t), reg.Host+"/hil/nothing:1", insecure)
	if err == nil || !strings.Contains(err.Error(), "no such repository or tag") {
		t.Errorf("expected a not-found error, found %v", err)
	}
}

func TestOpenRegistryWithDockerConfigCredentials(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	reg := testenv.Registry(t, testenv.WithHtpasswd("hil", "s3cret"))
	idx := testIndex(t)
	pushIndex(t, reg.Host+"/hil/private:1", idx, remote.WithAuth(&authn.Basic{Username: "hil", Password: "s3cret"}))

	_, err := Open(ctxT(t), reg.Host+"/hil/private:1")
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("anonymous: expected a refused-credentials error, found %v", err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("hil:s3cret"))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, auth)
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctxT(t), reg.Host+"/hil/private:1")
	if err != nil {
		t.Fatalf("with DOCKER_CONFIG credentials: %v", err)
	}
	checkTwoPlatforms(t, a, idx)
}

func TestOpenUnreachableRegistry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = Open(ctxT(t), host+"/hil/app:1", insecure)
	if err == nil || !strings.Contains(err.Error(), "registry unreachable") || !strings.Contains(err.Error(), host) {
		t.Fatalf("expected a clear unreachable error naming %s, found %v", host, err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("expected a quick failure, took %v", d)
	}
}

func TestOpenDaemonNotLinked(t *testing.T) {
	// The Docker engine source is a plug-in (harness/image/dockerdaemon,
	// tested there): without it the reference is not mistaken for a
	// registry's, and the error names the import.
	_, err := Open(ctxT(t), "docker-daemon:hil.local/app:1")
	if err == nil || !strings.Contains(err.Error(), `import _ "github.com/hilproject/hil/harness/image/dockerdaemon"`) {
		t.Fatalf("expected the missing import named, found %v", err)
	}
}

// The archive a real engine's `docker save` writes (plain tar layers, the
// form the docker-daemon source reads too) opens, and is checked against
// the config's diff_ids.
func TestOpenEngineSavedArchive(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	testenv.RequireCommand(t, "/usr/sbin/dockerd", "docker.io")
	host := testenv.Dockerd(t)
	img := testPlatformImage(t, armv7)
	tag, _ := name.NewTag("hil.local/app:1")
	archive := filepath.Join(t.TempDir(), "app.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("docker CLI not found (Debian package docker.io): %v", err)
	}
	if out, err := exec.CommandContext(ctxT(t), docker, "-H", host, "load", "-i", archive).CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v: %s", err, out)
	}

	// The same archive with a file added to its layer is refused.
	saved := filepath.Join(t.TempDir(), "saved.tar")
	if out, err := exec.CommandContext(ctxT(t), docker, "-H", host, "save", "-o", saved, "hil.local/app:1").CombinedOutput(); err != nil {
		t.Fatalf("docker save: %v: %s", err, out)
	}
	if _, err := Open(ctxT(t), "docker-archive:"+saved); err != nil {
		t.Fatalf("the engine's own archive: %v", err)
	}
	tampered := filepath.Join(t.TempDir(), "tampered.tar")
	n := 0
	tamper.RewriteArchive(t, saved, tampered, func(name string, b []byte) []byte {
		if !strings.HasSuffix(name, "layer.tar") && !strings.HasPrefix(name, "blobs/") || !bytes.Contains(b, []byte("etc/platform")) {
			return b
		}
		n++
		return appendToTar(t, b, file("etc/tampered", "x\n", 0o644))
	})
	if n != 1 {
		t.Fatalf("expected one layer tar in the engine's archive, found %d", n)
	}
	// A fresh cache: the genuine rootfs of these diff_ids is cached above,
	// and would rightly be used without reading the tampered bytes at all.
	t.Setenv("HIL_CACHE", t.TempDir())
	ta, err := Open(ctxT(t), "docker-archive:"+tampered)
	if err == nil {
		var ti *Image
		if ti, err = ta.Image(""); err == nil {
			_, err = ti.RootFS(ctxT(t))
		}
	}
	var ie *IntegrityError
	if !errors.As(err, &ie) || ie.Kind != "layer" || !strings.Contains(err.Error(), "diff_id") {
		t.Fatalf("expected the tampered layer of the engine's archive refused against its diff_id, found %v", err)
	}
}

// A registry that answers 503 for a moment (restarting behind a load
// balancer) must not fail the open: the fault is injected by a proxy in
// front of the real registry, since a real one cannot be made to do it.
func TestOpenRegistryRetriesServerErrors(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := testenv.Registry(t)
	idx := testIndex(t)
	pushIndex(t, reg.Host+"/hil/app:1", idx)

	// The first two manifest requests get a 503, as from a registry that
	// is restarting.
	seen := 0
	host, failures := reg.FlakyProxy(t, func(r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/manifests/") || seen >= 2 {
			return false
		}
		seen++
		return true
	})

	a, err := Open(ctxT(t), host+"/hil/app:1", insecure)
	if err != nil {
		t.Fatalf("expected the open to survive two 503s, found %v", err)
	}
	if failures() != 2 || a.Digest != mustDigest(t, idx) {
		t.Errorf("expected 2 injected failures and digest %s, found %d and %s", mustDigest(t, idx), failures(), a.Digest)
	}
}
