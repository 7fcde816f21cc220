package startup_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/startup"
)

// The Rust sample's image (binary and libpcap's closure copied onto a
// libc6-only Debian base) can start on both platforms.
func TestRustSampleImageStarts(t *testing.T) {
	for _, platform := range []string{"linux/arm/v7", "linux/amd64"} {
		t.Run(platform, func(t *testing.T) {
			r := checkSample(t, "pcapwatch-rs", platform)
			if !r.OK() {
				t.Fatalf("pcapwatch-rs fails on %s: %v", platform, r.Problems)
			}
		})
	}
}

// rs-no-deps copied only libpcap.so.0.8 into /lib: the check names the
// missing libdbus-1.so.3 and the chain that needs it.
func TestRustNoDepsNamesTheChain(t *testing.T) {
	for _, platform := range []string{"linux/arm/v7", "linux/amd64"} {
		t.Run(platform, func(t *testing.T) {
			r := checkSample(t, "rs-no-deps", platform)
			p := onlyProblem(t, r, startup.KindMissingLibrary,
				`^libpcap\.so\.0\.8 needs libdbus-1\.so\.3 but the image does not have it .*; chain: /usr/local/bin/pcapwatch-rs → /lib/libpcap\.so\.0\.8 → libdbus-1\.so\.3$`)
			if want := []string{"/usr/local/bin/pcapwatch-rs", "/lib/libpcap.so.0.8", "libdbus-1.so.3"}; !slices.Equal(p.Chain, want) {
				t.Errorf("chain: expected %q, found %q", want, p.Chain)
			}
			if p.Object != "libdbus-1.so.3" || p.NeededBy != "/lib/libpcap.so.0.8" {
				t.Errorf("problem names %q needed by %q", p.Object, p.NeededBy)
			}
		})
	}
}

// The image's own ld.so agrees: under qemu-user it stops at the same
// library.
func TestRustNoDepsMatchesRealLoader(t *testing.T) {
	dir, cfg := sampleRootFS(t, "rs-no-deps", "linux/arm/v7")
	_, stderr := realLoaderListOf(t, dir, strings.TrimPrefix(cfg.Entrypoint[0], "/"))
	if !strings.Contains(stderr, "libdbus-1.so.3: cannot open shared object file") {
		t.Fatalf("ld.so did not fail on libdbus-1.so.3: %s", stderr)
	}
	r, err := startup.Check(context.Background(), dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || r.Problems[0].Object != "libdbus-1.so.3" {
		t.Errorf("check problems %v, ld.so says %s", r.Problems, stderr)
	}
}
