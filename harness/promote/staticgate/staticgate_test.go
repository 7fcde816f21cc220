package staticgate_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/promote/staticgate"
	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/internal/testimage"
)

// The sample images through the gate with the static check: the good one is
// promoted to exactly its digest; every variant the static check can see is
// refused with its reason and latest stays where it was.
func TestSampleImagesThroughTheStaticGate(t *testing.T) {
	images := testenv.ImagesDir(t)
	reg := testenv.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	r := registry.New()
	repo := reg.Host + "/pcapwatch"
	cand, err := name.ParseReference(repo + ":candidate")
	if err != nil {
		t.Fatal(err)
	}
	latest := func() string {
		t.Helper()
		d, err := remote.Head(mustTag(t, repo+":latest"))
		if err != nil {
			t.Fatalf("reading latest: %v", err)
		}
		return d.Digest.String()
	}

	good, err := promote.PushLayout(ctx, r, filepath.Join(images, "pcapwatch"), cand)
	if err != nil {
		t.Fatal(err)
	}
	d, err := promote.Gate(ctx, cand.String(), "latest", staticgate.Test(), promote.WithRegistry(r))
	if err != nil || !d.Promoted {
		t.Fatalf("good image: %+v, %v", d, err)
	}
	if got := latest(); got != good.String() {
		t.Fatalf("latest = %s, want the tested digest %s", got, good)
	}

	for _, c := range []struct{ variant, reason string }{
		{"no-libpcap", "libpcap.so.0.8"},
		{"old-glibc", "GLIBC_2.34"},
		{"wrong-arch", "AArch64"},
		{"no-loader", "ld-linux-armhf.so.3"},
	} {
		t.Run(c.variant, func(t *testing.T) {
			if _, err := promote.PushLayout(ctx, r, filepath.Join(images, c.variant), cand); err != nil {
				t.Fatal(err)
			}
			d, err := promote.Gate(ctx, cand.String(), "latest", staticgate.Test(), promote.WithRegistry(r))
			if err != nil {
				t.Fatalf("Gate: %v", err)
			}
			if d.Promoted {
				t.Fatalf("%s was promoted", c.variant)
			}
			if !strings.Contains(d.Reason, c.reason) {
				t.Errorf("reason %q does not mention %q", d.Reason, c.reason)
			}
			if got := latest(); got != good.String() {
				t.Fatalf("latest moved to %s, want unchanged %s", got, good)
			}
		})
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// The test opens the pinned digest, never the tag: a broken image pushed
// over the candidate tag after pinning is not what gets checked (the check
// passes on the pinned good image), and the gate then refuses because the
// candidate moved.
func TestChecksThePinnedDigestNotTheTag(t *testing.T) {
	images := testenv.ImagesDir(t)
	reg := testenv.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := registry.New()
	cand, err := name.ParseReference(reg.Host + "/pcapwatch:candidate")
	if err != nil {
		t.Fatal(err)
	}
	good, err := promote.PushLayout(ctx, r, filepath.Join(images, "pcapwatch"), cand)
	if err != nil {
		t.Fatal(err)
	}
	check := staticgate.Test()
	d, err := promote.Gate(ctx, cand.String(), "latest", func(ctx context.Context, pin promote.Pinned) (promote.Result, error) {
		if _, err := promote.PushLayout(ctx, r, filepath.Join(images, "old-glibc"), cand); err != nil {
			return promote.Result{}, err
		}
		return check(ctx, pin)
	}, promote.WithRegistry(r))
	if err != nil {
		t.Fatalf("Gate: %v", err)
	}
	if d.Promoted || !strings.Contains(d.Reason, "moved") {
		t.Fatalf("decision %+v: want refused because the candidate moved", d)
	}
	if d.Tested != reg.Host+"/pcapwatch@"+good.String() {
		t.Errorf("tested %s, want the pinned %s", d.Tested, good)
	}
	for _, o := range d.Result.Outcomes {
		if o.Verdict != promote.Pass {
			t.Errorf("the check saw the image pushed after pinning: %s", o)
		}
	}
}

// A shell-form entrypoint: what the string runs is checked (its missing
// library refuses the gate), and what cannot be resolved statically is
// unsupported, never a pass; latest stays where it was.
func TestShellFormThroughTheStaticGate(t *testing.T) {
	reg := testenv.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := registry.New()
	cand, err := name.ParseReference(reg.Host + "/shellform:candidate")
	if err != nil {
		t.Fatal(err)
	}
	gate := func(layout string) *promote.Decision {
		t.Helper()
		if _, err := promote.PushLayout(ctx, r, layout, cand); err != nil {
			t.Fatal(err)
		}
		d, err := promote.Gate(ctx, cand.String(), "latest", staticgate.Test(), promote.WithRegistry(r))
		if err != nil {
			t.Fatalf("Gate: %v", err)
		}
		return d
	}

	good := gate(testimage.ShellImage(t, testimage.Spec{Entrypoint: []string{"/bin/sh", "-c", testimage.Program}, KeepLibgccS: true}))
	if !good.Promoted {
		t.Fatalf("the shell-form image with its library: %+v", good)
	}
	d := gate(testimage.ShellImage(t, testimage.Spec{Entrypoint: []string{"/bin/sh", "-c", testimage.Program}}))
	if d.Promoted || !strings.Contains(d.Reason, "libgcc_s.so.1") || !strings.Contains(d.Reason, "/opt/program") {
		t.Errorf("missing library: %+v", d)
	}
	d = gate(testimage.ShellImage(t, testimage.Spec{Entrypoint: []string{"/bin/sh", "-c", "exec $APP"}, KeepLibgccS: true}))
	if d.Promoted || len(d.Result.Outcomes) != 1 || d.Result.Outcomes[0].Verdict != promote.Unsupported || !strings.Contains(d.Reason, "not checked: $APP") {
		t.Errorf("unresolved: %+v", d)
	}
	head, err := remote.Head(mustTag(t, reg.Host+"/shellform:latest"))
	if err != nil {
		t.Fatal(err)
	}
	if head.Digest.String() != good.Tested[strings.LastIndex(good.Tested, "@")+1:] {
		t.Errorf("latest moved to %s, want the first promotion %s", head.Digest, good.Tested)
	}
}

// A fleet gated statically: each board's pull held to its instruction set.
// The sample index (with its armel build) passes a Pi Zero W and a Pi 3;
// the armhf-only image, which the Zero's engine pulls anyway (one
// manifest), is refused with the ISA reason naming the board; armv8-only
// passes the Pi 3 and is refused for the Pi 2.
func TestStaticGateBoards(t *testing.T) {
	images := testenv.ImagesDir(t)
	reg := testenv.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	r := registry.New()
	cand, err := name.ParseReference(reg.Host + "/fleet:candidate")
	if err != nil {
		t.Fatal(err)
	}
	boards := func(names ...string) promote.Option {
		bs, err := board.Builtin().LookupList(names...)
		if err != nil {
			t.Fatal(err)
		}
		return promote.WithBoards(bs...)
	}
	for _, c := range []struct {
		image    string
		boards   []string
		promoted bool
		reason   string
	}{
		{"pcapwatch", []string{"pi0w", "pi3b+"}, true, "every board (pi0w pulls linux/arm/v5, pi3b+ pulls linux/arm64) passed"},
		{"pcapwatch-armhf", []string{"pi0w", "pi3b+"}, false, "libc.so.6 needs ARMv7 (Thumb-2, VFPv3, NEON); a pi0w (Raspberry Pi Zero W) has ARMv6 (ARM1176JZF-S, VFPv2): the board kills it with SIGILL"},
		{"armv8-only", []string{"pi3b+"}, true, "every board (pi3b+ pulls linux/arm/v7) passed"},
		{"armv8-only", []string{"pi2"}, false, "pcapwatch needs ARMv8-A (Thumb-2, VFPv3-D16); a pi2 (Raspberry Pi 2 Model B) has ARMv7"},
	} {
		if _, err := promote.PushLayout(ctx, r, filepath.Join(images, c.image), cand); err != nil {
			t.Fatal(err)
		}
		d, err := promote.Gate(ctx, cand.String(), "latest", staticgate.Test(), promote.WithRegistry(r), promote.WithDryRun(), boards(c.boards...))
		if err != nil {
			t.Fatalf("%s: %v", c.image, err)
		}
		if d.Passed != c.promoted || !strings.Contains(d.Reason, c.reason) || !c.promoted && !strings.Contains(d.Reason, "static-check [static "+c.boards[0]+" linux/arm/v7]: fail: ") {
			t.Errorf("%s on %v: passed %v, reason %q; want %v and %q", c.image, c.boards, d.Passed, d.Reason, c.promoted, c.reason)
		}
	}
}
