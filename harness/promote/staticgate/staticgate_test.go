package staticgate_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

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
