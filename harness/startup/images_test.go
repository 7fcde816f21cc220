package startup_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/startup"
	"github.com/hilproject/hil/internal/testenv"
)

// sampleRootFS opens a built sample image (make images) and flattens one
// platform through harness/image, as `hil check` does.
func sampleRootFS(t testing.TB, variant, platform string) (string, startup.Config) {
	t.Helper()
	ctx := context.Background()
	art, err := image.Open(ctx, "oci:"+filepath.Join(testenv.ImagesDir(t), variant))
	if err != nil {
		t.Fatal(err)
	}
	img, err := art.Image(platform)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := img.RootFS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return dir, startup.ConfigFor(platform, img.Config)
}

func checkSample(t *testing.T, variant, platform string) *startup.Report {
	t.Helper()
	dir, cfg := sampleRootFS(t, variant, platform)
	r, err := startup.Check(context.Background(), dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	r.Text(&b)
	t.Logf("%s %s:\n%s", variant, platform, b.String())
	return r
}

// onlyProblem asserts the report has exactly one problem, of kind, whose
// message matches re.
func onlyProblem(t *testing.T, r *startup.Report, kind startup.Kind, re string) startup.Problem {
	t.Helper()
	if len(r.Problems) != 1 {
		t.Fatalf("want exactly one %s problem, got %d: %v", kind, len(r.Problems), r.Problems)
	}
	p := r.Problems[0]
	if p.Kind != kind {
		t.Fatalf("want %s, got %s: %s", kind, p.Kind, p.Message)
	}
	if !regexp.MustCompile(re).MatchString(p.Message) {
		t.Errorf("message %q does not match %q", p.Message, re)
	}
	return p
}

func TestSampleImageStarts(t *testing.T) {
	for _, platform := range []string{"linux/arm/v7", "linux/amd64"} {
		t.Run(platform, func(t *testing.T) {
			r := checkSample(t, "pcapwatch", platform)
			if !r.OK() {
				t.Fatalf("the good image fails on %s: %v", platform, r.Problems)
			}
			if r.Static || r.Interpreter == nil {
				t.Fatalf("pcapwatch is dynamic with a loader; report says static=%v interpreter=%v", r.Static, r.Interpreter)
			}
			var pcap *startup.Object
			var walk func(o *startup.Object)
			walk = func(o *startup.Object) {
				for _, c := range o.Needed {
					if c.Name == "libpcap.so.0.8" && !c.Repeat {
						pcap = c
					}
					walk(c)
				}
			}
			walk(r.Program)
			if pcap == nil || pcap.Missing || pcap.RealPath == "" {
				t.Fatalf("libpcap.so.0.8 not resolved in the tree: %+v", pcap)
			}
		})
	}
}

func TestBrokenVariants(t *testing.T) {
	t.Run("no-libpcap", func(t *testing.T) {
		for _, platform := range []string{"linux/arm/v7", "linux/amd64"} {
			r := checkSample(t, "no-libpcap", platform)
			p := onlyProblem(t, r, startup.KindMissingLibrary, `^pcapwatch needs libpcap\.so\.0\.8 but the image does not have it`)
			if p.Object != "libpcap.so.0.8" || !strings.HasSuffix(p.NeededBy, "/pcapwatch") {
				t.Errorf("problem names %q needed by %q", p.Object, p.NeededBy)
			}
		}
	})
	t.Run("old-glibc", func(t *testing.T) {
		r := checkSample(t, "old-glibc", "linux/arm/v7")
		onlyProblem(t, r, startup.KindMissingVersion,
			`^pcapwatch needs GLIBC_2\.(3[2-9]|[4-9]\d) \(symbol \S+@GLIBC_2\.\d+\) but the image's libc\.so\.6 \(glibc 2\.31\) provides up to GLIBC_2\.3[01]$`)
	})
	t.Run("wrong-arch", func(t *testing.T) {
		r := checkSample(t, "wrong-arch", "linux/arm/v7")
		onlyProblem(t, r, startup.KindWrongArch, `pcapwatch cannot run on linux/arm/v7: it is AArch64 64-bit, the platform linux/arm/v7 needs ARM 32-bit EABI5 hard-float`)
	})
	t.Run("no-loader", func(t *testing.T) {
		r := checkSample(t, "no-loader", "linux/arm/v7")
		p := onlyProblem(t, r, startup.KindMissingLoader, `^pcapwatch needs the loader /lib/ld-linux-armhf\.so\.3 \(its PT_INTERP\) but the image does not have it`)
		if p.Object != "/lib/ld-linux-armhf.so.3" {
			t.Errorf("object = %q", p.Object)
		}
	})
}

// BenchmarkCheck times the check on the sample image's arm/v7 rootfs (the
// rootfs is flattened once, outside the timing).
func BenchmarkCheck(b *testing.B) {
	dir, cfg := sampleRootFS(b, "pcapwatch", "linux/arm/v7")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := startup.Check(ctx, dir, cfg)
		if err != nil || !r.OK() {
			b.Fatalf("check: %v %v", err, r)
		}
	}
}
