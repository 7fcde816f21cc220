package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/internal/debian"
	"github.com/hilproject/hil/internal/testenv"
)

// lockedSets fetches the named deb sets as images/debs.lock pins them.
func lockedSets(t *testing.T, ctx context.Context, names ...string) map[string]fetched {
	t.Helper()
	lock, err := readLock(filepath.Join(testenv.RepoRoot(t), "images", "debs.lock"))
	if err != nil {
		t.Fatal(err)
	}
	res := &debResolver{lock: lock, strict: true, log: os.Stderr}
	sets := map[string]fetched{}
	for _, n := range names {
		pkgs, debs, err := res.fetch(ctx, setByName(n))
		if err != nil {
			t.Fatal(err)
		}
		sets[n] = fetched{pkgs, debs}
	}
	return sets
}

// pcapwatch-rs compiled from scratch (an empty cache) is byte for byte
// the binary `make images` recorded, and assembling its image twice gives
// the recorded digest: the Rust build is reproducible too.
func TestRustBuildIsReproducible(t *testing.T) {
	imagesDir := testenv.ImagesDir(t)
	repo := testenv.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sets := lockedSets(t, ctx, "runtime-amd64", "runtime-amd64-cc")
	t.Setenv("HIL_CACHE", t.TempDir())
	bin, err := compileRust(ctx, repo, filepath.Join(t.TempDir(), "pcapwatch-rs-linux-amd64"), "linux/amd64", "", sets, "")
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := upToDate(imagesDir, "")
	if err != nil {
		t.Fatal(err)
	}
	var digests []v1.Hash
	for range 2 {
		img, _, err := assembleRust(ctx, rustVariants[0], "linux/amd64", sets, bin)
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
		t.Fatalf("two assemblies of pcapwatch-rs linux/amd64 differ: %s vs %s", digests[0], digests[1])
	}
	if !fresh {
		t.Skipf("%s is stale (sources changed since make images); compared the two fresh builds only", imagesDir)
	}
	want, err := os.ReadFile(filepath.Join(imagesDir, "bin", "pcapwatch-rs-linux-amd64"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(bin)
	if !bytes.Equal(got, want) {
		t.Errorf("a compile with an empty cache differs from the recorded bin/pcapwatch-rs-linux-amd64")
	}
	built, err := readManifest(filepath.Join(imagesDir, "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range built {
		if b.Name == "pcapwatch-rs" && b.Manifests["linux/amd64"] != digests[0].String() {
			t.Errorf("make images recorded pcapwatch-rs linux/amd64 as %s, a rebuild gives %s", b.Manifests["linux/amd64"], digests[0])
		}
	}
}

// Each Rust image holds exactly the locked base packages plus the locked
// packages its copied libraries came from.
func TestRustImagesUseTheLock(t *testing.T) {
	imagesDir := testenv.ImagesDir(t)
	if fresh, _ := upToDate(imagesDir, ""); !fresh {
		t.Skipf("%s is stale: run make images", imagesDir)
	}
	lock, err := readLock(filepath.Join(testenv.RepoRoot(t), "images", "debs.lock"))
	if err != nil {
		t.Fatal(err)
	}
	line := func(p debian.Package) string { return p.Name + " " + p.Version + " " + p.Arch + " " + p.SHA256 }
	built, err := readManifest(filepath.Join(imagesDir, "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, b := range built {
		for _, v := range rustVariants {
			if v.Name != b.Name {
				continue
			}
			seen++
			for _, plat := range v.Platforms {
				rt := rustTargets[plat]
				locked := map[string]bool{}
				var base []string
				for _, e := range lock.entries[rt.Base] {
					base = append(base, line(e.Package))
				}
				for _, e := range lock.entries[rt.Libs] {
					locked[line(e.Package)] = true
				}
				got := b.Packages[plat]
				if len(got) < len(base)+1 || strings.Join(got[:len(base)], "\n") != strings.Join(base, "\n") {
					t.Errorf("%s %s: expected the locked base %v first, found %v", b.Name, plat, base, got)
					continue
				}
				libs := got[len(base):]
				if !strings.Contains("\n"+strings.Join(libs, "\n"), "\nlibpcap0.8 ") {
					t.Errorf("%s %s: expected libpcap0.8 among the copied packages, found %v", b.Name, plat, libs)
				}
				if v.OnlyLibpcap != (len(libs) == 1) {
					t.Errorf("%s %s: copied from %v", b.Name, plat, libs)
				}
				for _, l := range libs {
					if !locked[l] {
						t.Errorf("%s %s: %q is not what images/debs.lock pins in %s", b.Name, plat, l, rt.Libs)
					}
				}
			}
		}
	}
	if seen != len(rustVariants) {
		t.Errorf("images.json has %d of the %d Rust images", seen, len(rustVariants))
	}
}

// A standard library from another rustc build is refused before rustc
// runs, naming both versions.
func TestRustStdMustMatchTheCompiler(t *testing.T) {
	sets := map[string]fetched{"rust-std-armhf": {pkgs: []debian.Package{{Name: "libstd-rust-dev", Version: "1.0.0+hil-other", Arch: "armhf"}}}}
	_, err := rustStd(context.Background(), testenv.RepoRoot(t), rustTargets["linux/arm/v7"], sets)
	if err == nil || !strings.Contains(err.Error(), "1.0.0+hil-other") || !strings.Contains(err.Error(), "Debian's rustc is") {
		t.Fatalf("expected a refusal naming the pinned and the installed version, found %v", err)
	}
}

// The app's own unit tests (#[cfg(test)] in images/pcapwatch-rs: name
// decoding, Go's JSON and net.IP text forms, Go's integer flags) run
// under Debian's rustc.
func TestPcapwatchRsUnitTests(t *testing.T) {
	testenv.RequireCommand(t, rustc, "rustc")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	main := filepath.Join(testenv.RepoRoot(t), "images", "pcapwatch-rs", "main.rs")
	if out, err := exec.CommandContext(ctx, rustc, "--edition", "2021", "--test", "-o", filepath.Join(dir, "t"), main).CombinedOutput(); err != nil {
		t.Fatalf("rustc --test: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "t")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test result: ok") {
		t.Fatalf("pcapwatch-rs unit tests: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
