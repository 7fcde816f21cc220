package faultinject

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hilproject/hil/internal/hilproc"
	"github.com/hilproject/hil/internal/tamper"
)

// The sample's blobs, read from the built layouts when the suite starts
// (setBlobs): any change to the sample app moves them.
var (
	armIndex, armManifest, armConfig, armAppLayer, amdAppLayer string
	// old-glibc's arm/v7 runtime layer (bullseye) and the sample's (bookworm).
	oldRuntime, goodRuntime string
)

func setBlobs(t testing.TB, images string) {
	arm := tamper.BlobsOf(t, filepath.Join(images, "pcapwatch"), "linux/arm/v7")
	amd := tamper.BlobsOf(t, filepath.Join(images, "pcapwatch"), "linux/amd64")
	old := tamper.BlobsOf(t, filepath.Join(images, "old-glibc"), "linux/arm/v7")
	armIndex, armManifest, armConfig, armAppLayer, amdAppLayer = arm.Index, arm.Manifest, arm.Config, arm.Top(), amd.Top()
	oldRuntime, goodRuntime = old.Layers[0], arm.Layers[0]
}

// tampered is one tampered image: how to reach it, and the blob a refusal
// must name ("layer sha256:...").
type tampered struct {
	what string
	ref  string // oci:DIR, docker-archive:FILE:TAG or a registry reference
	blob string
}

// tamperedLayout is a copy of the sample layout with one kind of tampering.
func (s *suite) tamperedLayout(t testing.TB, kind string) tampered {
	t.Helper()
	l := tamper.CopyLayout(t, filepath.Join(s.images, "pcapwatch"))
	blob := ""
	edited := func(b []byte) []byte {
		return tamper.AddToLayer(t, b, tamper.File("etc/tampered", "", 0o644), "not in the image\n")
	}
	switch kind {
	case "layer content":
		l.Overwrite(armAppLayer, edited(l.Read(armAppLayer)))
		blob = "layer " + armAppLayer
	case "layer bigger than its descriptor":
		l.EditManifest("linux/arm/v7", func(m *v1.Manifest) { m.Layers[1].Size-- })
		blob = "layer " + armAppLayer
	case "layer smaller than its descriptor":
		l.EditManifest("linux/arm/v7", func(m *v1.Manifest) { m.Layers[1].Size++ })
		blob = "layer " + armAppLayer
	case "layer not the config's diff_id":
		d, size := l.Put(edited(l.Read(armAppLayer)))
		l.EditManifest("linux/arm/v7", func(m *v1.Manifest) { m.Layers[1].Digest, m.Layers[1].Size = d, size })
		blob = "layer " + d.String()
	case "config":
		l.Overwrite(armConfig, bytes.Replace(l.Read(armConfig), []byte("/opt/pcapwatch"), []byte("/opt/pcapwatcH"), 1))
		blob = "config " + armConfig
	case "manifest":
		l.Overwrite(armManifest, bytes.Replace(l.Read(armManifest), []byte(`"schemaVersion":2`), []byte(`"schemaVersion": 2`), 1))
		blob = "manifest " + armManifest
	case "index":
		l.Overwrite(armIndex, append(l.Read(armIndex), ' '))
		blob = "index " + armIndex
	default:
		t.Fatalf("no layout tampering %q", kind)
	}
	return tampered{what: "oci layout: " + kind, ref: "oci:" + l.Dir, blob: blob}
}

var layoutKinds = []string{"layer content", "layer bigger than its descriptor", "layer smaller than its descriptor",
	"layer not the config's diff_id", "config", "manifest", "index"}

// A docker-save archive has no manifest or index blob of its own: its
// manifest.json names the config by digest and the layer files (named by
// digest too, or not); the config's diff_ids pin the layers. Its kinds:
var archiveKinds = []string{"layer content", "layer bigger (bytes appended)", "layer smaller (truncated)",
	"layer not the config's diff_id", "config", "manifest.json names another layer"}

// tamperedArchive is a copy of the sample's docker-save archive with one
// kind of tampering.
func (s *suite) tamperedArchive(t testing.TB, kind string) tampered {
	t.Helper()
	src := filepath.Join(s.images, "pcapwatch.tar")
	dst := filepath.Join(t.TempDir(), "pcapwatch.tar")
	layerFile := strings.TrimPrefix(armAppLayer, "sha256:") + ".tar.gz"
	edit := func(entry string, f func([]byte) []byte) {
		tamper.RewriteArchive(t, src, dst, func(n string, b []byte) []byte {
			if n == entry {
				return f(b)
			}
			return b
		})
	}
	edited := func(b []byte) []byte {
		return tamper.AddToLayer(t, b, tamper.File("etc/tampered", "", 0o644), "not in the image\n")
	}
	blob := "layer " + armAppLayer
	switch kind {
	case "layer content":
		edit(layerFile, edited)
	case "layer bigger (bytes appended)":
		edit(layerFile, func(b []byte) []byte { return append(append([]byte(nil), b...), make([]byte, 512)...) })
	case "layer smaller (truncated)":
		edit(layerFile, func(b []byte) []byte { return b[:len(b)-100] })
	case "layer not the config's diff_id":
		// Named as the Docker engine names them (no digest in the name):
		// only the config's diff_id pins the content.
		edit(layerFile, edited)
		tamper.RenameArchiveEntry(t, dst, layerFile, "layer1/layer.tar.gz")
		blob = "diff_id"
	case "config":
		edit(armConfig, func(b []byte) []byte { return bytes.Replace(b, []byte("/opt/pcapwatch"), []byte("/opt/pcapwatcH"), 1) })
		blob = "config " + armConfig
	case "manifest.json names another layer":
		// The amd64 image's app layer in place of the arm/v7 one: every
		// file is what its name says, the config's diff_id is not met.
		amd := strings.TrimPrefix(amdAppLayer, "sha256:") + ".tar.gz"
		edit("manifest.json", func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"hil.local/pcapwatch:arm-v7"`))
			return append(b[:i:i], bytes.Replace(b[i:], []byte(layerFile), []byte(amd), 1)...)
		})
		blob = "diff_id"
	default:
		t.Fatalf("no archive tampering %q", kind)
	}
	return tampered{what: "docker archive: " + kind, ref: "docker-archive:" + dst + ":hil.local/pcapwatch:arm-v7", blob: blob}
}

// refused checks that a hil verb refused the tampered image naming the
// blob: a non-zero exit, the blob in its output or its results. It
// returns the row of what went wrong.
func (s *suite) refused(t testing.TB, tm tampered, verb string, p *hilproc.Proc, rep string) row {
	t.Helper()
	r := row{injected: 1, leftovers: leftovers(t, p)}
	out := p.Out()
	if rep != "" {
		if _, err := os.Stat(filepath.Join(rep, "results.json")); err == nil {
			for _, res := range results(t, rep) {
				out += "\n" + res.Reason
				if res.Verdict == "pass" {
					r.wrongPass++
					t.Errorf("%s: hil %s: the case passed", tm.what, verb)
				}
			}
		}
	}
	if p.Code() == 0 {
		r.wrongPass++
		t.Errorf("%s: hil %s exit 0 on tampered bytes:\n%s", tm.what, verb, out)
	} else if !strings.Contains(out, tm.blob) || !strings.Contains(out, "expected") {
		t.Errorf("%s: hil %s refused (exit %d) without naming %q:\n%s", tm.what, verb, p.Code(), tm.blob, out)
	}
	return r
}

// imageFaults: tampered blobs of every kind in a layout, an archive and a
// registry, through check, run and gate; then the cache-poisoning sequence.
func (s *suite) imageFaults(t *testing.T) {
	startup := filepath.Join(s.root, "scenarios", "startup.yaml")
	var cases []tampered
	for _, k := range layoutKinds {
		cases = append(cases, s.tamperedLayout(t, k))
	}
	for _, k := range archiveKinds {
		cases = append(cases, s.tamperedArchive(t, k))
	}
	for _, tm := range cases {
		kind := strings.SplitN(tm.what, ":", 2)[0]
		t.Run(strings.ReplaceAll(tm.what, " ", "_"), func(t *testing.T) {
			// A fresh rootfs cache each time: with the genuine rootfs cached
			// (bound to the config's diff_ids), hil never reads the layer
			// blobs, tampered or not.
			env := []string{"HIL_CACHE=" + hilproc.FreshRootfsCache(t)}
			start := time.Now()
			p := s.hilDone(t, 2*time.Minute, env, "check", tm.ref, "--platform", "linux/arm/v7")
			r := s.refused(t, tm, "check", p, "")
			r.took = time.Since(start)
			s.tally.add("tampered blob, "+kind+", hil check", r)
			start, rep := time.Now(), t.TempDir()
			p = s.hilDone(t, 2*time.Minute, env, "run", "--image", tm.ref, "--retries", "0", "--report", rep, startup)
			r = s.refused(t, tm, "run", p, rep)
			r.took = time.Since(start)
			s.tally.add("tampered blob, "+kind+", hil run", r)
		})
	}
	t.Run("registry", s.tamperedRegistry)
	t.Run("cache_poisoning", s.cachePoisoning)
}

// registryKinds are the tamperings of a registry's content: blobs
// overwritten in its storage, or manifests whose descriptors lie pushed
// as they are (the registry checks a blob's digest, not what a manifest
// says of it).
var registryKinds = []string{"layer content", "layer bigger than its descriptor", "layer smaller than its descriptor",
	"layer not the config's diff_id", "config", "manifest", "index"}

// tamperedRegistry gates each tampering of the sample in a real registry
// through hil gate: refused naming the blob, the tag unchanged, no
// attestation saying PASSED.
func (s *suite) tamperedRegistry(t *testing.T) {
	start := time.Now()
	for i, kind := range registryKinds {
		t.Run(strings.ReplaceAll(kind, " ", "_"), func(t *testing.T) {
			repo := fmt.Sprintf("%s/fi/tampered-%d", s.reg.Host, i)
			genuine := s.push(t, filepath.Join(s.images, "pcapwatch"), repo+":candidate")
			before := s.push(t, filepath.Join(s.images, "pcapwatch-rs"), repo+":latest")
			tm := tampered{what: "registry: " + kind, ref: repo + ":candidate"}
			overwrite := func(digest string, f func([]byte) []byte) {
				p := s.reg.BlobPath(digest)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatalf("the registry does not store %s where expected: %v", digest, err)
				}
				// Blobs are shared by every repository of the registry: put
				// the genuine bytes back after this case.
				t.Cleanup(func() { os.WriteFile(p, b, 0o644) })
				if err := os.WriteFile(p, f(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			edited := func(b []byte) []byte {
				return tamper.AddToLayer(t, b, tamper.File("etc/tampered", "", 0o644), "not in the image\n")
			}
			pushLayout := func(edit func(l *tamper.Layout)) {
				l := tamper.CopyLayout(t, filepath.Join(s.images, "pcapwatch"))
				edit(l)
				s.pushRaw(t, l, repo+":candidate")
			}
			switch kind {
			case "layer content":
				overwrite(armAppLayer, edited)
				tm.blob = "layer " + armAppLayer
			case "layer bigger than its descriptor":
				pushLayout(func(l *tamper.Layout) { l.EditManifest("linux/arm/v7", func(m *v1.Manifest) { m.Layers[1].Size-- }) })
				tm.blob = "layer " + armAppLayer
			case "layer smaller than its descriptor":
				pushLayout(func(l *tamper.Layout) { l.EditManifest("linux/arm/v7", func(m *v1.Manifest) { m.Layers[1].Size++ }) })
				tm.blob = "layer " + armAppLayer
			case "layer not the config's diff_id":
				pushLayout(func(l *tamper.Layout) {
					d, size := l.Put(edited(l.Read(armAppLayer)))
					l.EditManifest("linux/arm/v7", func(m *v1.Manifest) { m.Layers[1].Digest, m.Layers[1].Size = d, size })
					tm.blob = "layer " + d.String()
				})
			case "config":
				overwrite(armConfig, func(b []byte) []byte { return bytes.Replace(b, []byte("/opt/pcapwatch"), []byte("/opt/pcapwatcH"), 1) })
				tm.blob = "config " + armConfig
			case "manifest":
				overwrite(armManifest, func(b []byte) []byte { return append(b, ' ') })
				tm.blob = "manifest " + armManifest
			case "index":
				// Fetched by tag, nothing but the registry's
				// Docker-Content-Digest header names the index.
				overwrite(armIndex, func(b []byte) []byte { return append(b, ' ') })
				tm.blob = "index " + armIndex
			}
			rep := t.TempDir()
			env := []string{"HIL_CACHE=" + hilproc.FreshRootfsCache(t)}
			p := s.hilDone(t, 3*time.Minute, env, "gate", "--insecure", "--image", tm.ref, "--scenarios", filepath.Join(s.root, "scenarios"),
				"--promote", "latest", "--target", "system", "--report", rep)
			r := s.refused(t, tm, "gate", p, rep)
			cand := s.digest(t, repo+":candidate")
			if after := s.digest(t, repo+":latest"); after != before || strings.Contains(p.Out(), "PROMOTED") {
				r.wrongPromotion++
				t.Errorf("%s: latest %s -> %s after the gate:\n%s", tm.what, before, after, p.Out())
			}
			for _, d := range []string{genuine, cand} {
				if n := s.passedAttestations(t, repo+"@"+d); n > 0 {
					r.wrongPromotion++
					t.Errorf("%s: %d attestation(s) of %s say PASSED", tm.what, n, d)
				}
			}
			s.tally.add("tampered blob, registry, hil gate", r)
		})
	}
	s.tally.add("tampered blob, registry, hil gate", row{took: time.Since(start)})
}

// pushRaw pushes the layout's image index to ref as its bytes are, with
// go-containerregistry (hil's own push verifies what it reads, and would
// refuse a descriptor that lies): what a compromised CI would push.
func (s *suite) pushRaw(t testing.TB, l *tamper.Layout, ref string) {
	t.Helper()
	p, err := layout.FromPath(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := top.ImageIndex(l.TopIndex().Digest)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing the tampered index to %s: %v", ref, err)
	}
}

// cachePoisoning is issue 12's sequence: a copy of old-glibc whose runtime
// layer was swapped for the good image's (new glibc) under the old name,
// checked and run first; then the genuine old-glibc from a real registry
// through hil gate with the same cache: refused for its glibc, never
// promoted, whatever the tampered copy left.
func (s *suite) cachePoisoning(t *testing.T) {
	start := time.Now()
	cache := hilproc.FreshRootfsCache(t)
	env := []string{"HIL_CACHE=" + cache}
	l := tamper.CopyLayout(t, filepath.Join(s.images, "old-glibc"))
	good, err := os.ReadFile(tamper.BlobPath(filepath.Join(s.images, "pcapwatch"), goodRuntime))
	if err != nil {
		t.Fatal(err)
	}
	l.Overwrite(oldRuntime, good)
	tm := tampered{what: "cache poisoning: old-glibc with the good runtime layer", ref: "oci:" + l.Dir, blob: "layer " + oldRuntime}
	r := s.refused(t, tm, "check", s.hilDone(t, 2*time.Minute, env, "check", tm.ref, "--platform", "linux/arm/v7"), "")
	rep := t.TempDir()
	r2 := s.refused(t, tm, "run", s.hilDone(t, 2*time.Minute, env, "run", "--image", tm.ref, "--retries", "0", "--report", rep,
		filepath.Join(s.root, "scenarios", "startup.yaml")), rep)
	r.injected, r.wrongPass, r.leftovers = 1, r.wrongPass+r2.wrongPass, r.leftovers+r2.leftovers
	if left := hilproc.RootFSLeftovers(cache); len(left) > 0 {
		r.leftovers += len(left)
		t.Errorf("the refused flattens left %v", left)
	}

	repo := s.reg.Host + "/fi/old-glibc"
	cand := s.push(t, filepath.Join(s.images, "old-glibc"), repo+":candidate")
	before := s.push(t, filepath.Join(s.images, "pcapwatch"), repo+":latest")
	p := s.hilDone(t, 3*time.Minute, env, "gate", "--insecure", "--image", repo+":candidate", "--scenarios", filepath.Join(s.root, "scenarios"),
		"--promote", "latest", "--target", "system", "--report", t.TempDir())
	r.leftovers += leftovers(t, p)
	after := s.digest(t, repo+":latest")
	if p.Code() != 1 || !strings.Contains(p.Out(), "GLIBC_2.34") || after != before {
		r.wrongPromotion++
		t.Errorf("gate of the genuine old-glibc after the tampered copy: exit %d, latest %s -> %s; want refused for GLIBC_2.34, latest unchanged\n%s", p.Code(), before, after, p.Out())
	}
	if n := s.passedAttestations(t, repo+"@"+cand); n > 0 {
		r.wrongPromotion++
		t.Errorf("%d attestation(s) of old-glibc say PASSED", n)
	}
	r.took = time.Since(start)
	s.tally.add("cache poisoning: tampered layout, then the genuine old-glibc gated", r)
}
