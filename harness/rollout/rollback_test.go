package rollout

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/internal/testenv"
)

// keyPair writes a P-256 key pair (PKCS#8 and PKIX PEM) and loads both.
func keyPair(t *testing.T) (*attest.Signer, *attest.Verifier) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := x509.MarshalPKCS8PrivateKey(k)
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	dir := t.TempDir()
	kp, pp := filepath.Join(dir, "key.pem"), filepath.Join(dir, "key.pub")
	os.WriteFile(kp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600)
	os.WriteFile(pp, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
	s, err := attest.LoadSigner(kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.LoadVerifier(pp)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// pushArm pushes a fresh linux/arm/v7 index to ref and returns its digest.
func pushArm(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = "linux", "arm", "v7"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	p := v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}}), types.OCIImageIndex)
	r, _ := name.ParseReference(ref)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	h, _ := idx.Digest()
	return h.String()
}

// gate runs the real gate on ref with a test that gives verdict, attested
// (signed with s, or unsigned when s is nil).
func gate(t *testing.T, ctx context.Context, reg *promote.Registry, ref, tag string, verdict promote.Verdict, s *attest.Signer) *promote.Decision {
	t.Helper()
	test := func(ctx context.Context, pin promote.Pinned) (promote.Result, error) {
		return promote.Result{Started: time.Now(), Finished: time.Now(), Outcomes: []promote.Outcome{
			{Scenario: "startup", Target: "system", Board: "virt", Platform: "linux/arm/v7", Verdict: verdict}}}, nil
	}
	var aopts []attest.Option
	if s != nil {
		aopts = append(aopts, attest.WithSigner(s))
	}
	d, err := promote.Gate(ctx, ref, tag, test, promote.WithRegistry(reg), promote.WithAttester(attest.NewAttester(aopts...)))
	if err != nil {
		t.Fatalf("gate %s: %v", ref, err)
	}
	return d
}

// A release history in a real registry: A and B were promoted (signed),
// C was refused, D was promoted unsigned. Rolling back from D goes to B
// with the key (D's own pass is not verified, C failed); rolling back from
// B then goes to A; a later release E that fails goes back to A, not to
// B (B passed later than A but is withdrawn by the rollback's record);
// from A there is nothing earlier: refused, nothing written. A rollback whose tag moved meanwhile refuses too.
func TestRollbackGoesToTheLastVerifiedPassAndNeverToAWithdrawnOne(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	host := testenv.Registry(t).Host
	reg := registry.New(registry.WithRetries(1, 50*time.Millisecond))
	signer, key := keyPair(t)
	repo := host + "/app"
	latest := repo + ":latest"
	tagRef, _ := name.NewTag(latest)
	current := func() string {
		d, err := promote.Current(ctx, reg, tagRef)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	a := pushArm(t, repo+":candidate")
	if d := gate(t, ctx, reg, repo+":candidate", "latest", promote.Pass, signer); !d.Promoted {
		t.Fatalf("gate A: %s", d.Reason)
	}
	b := pushArm(t, repo+":candidate")
	gate(t, ctx, reg, repo+":candidate", "latest", promote.Pass, signer)
	pushArm(t, repo+":candidate")
	if d := gate(t, ctx, reg, repo+":candidate", "latest", promote.Fail, signer); d.Promoted {
		t.Fatal("a failing candidate was promoted")
	}
	dd := pushArm(t, repo+":candidate")
	gate(t, ctx, reg, repo+":candidate", "latest", promote.Pass, nil)
	if got := current(); got != dd {
		t.Fatalf("latest is %s, want D %s", got, dd)
	}

	// A tag that moved since the window saw it fail is someone else's.
	r, err := Rollback(ctx, latest, WithRegistry(reg), WithKey(key), WithExpect(b))
	if err != nil || r.RolledBack || !strings.Contains(r.Reason, "moved meanwhile") || current() != dd {
		t.Fatalf("rollback expecting B while latest is D: %+v, %v", r, err)
	}

	r, err = Rollback(ctx, latest, WithRegistry(reg), WithKey(key), WithSigner(signer), WithReason("board pi-1: container restarted 2 times"))
	if err != nil || !r.RolledBack || r.To != b || r.From != dd {
		t.Fatalf("rollback from D: want to B %s, got %+v, %v", b, r, err)
	}
	if got := current(); got != b {
		t.Fatalf("latest is %s after the rollback, want B %s", got, b)
	}
	// The record is signed, on both digests, and says why.
	for _, dg := range []string{dd, b} {
		_, entries, err := attest.Inspect(ctx, reg, repo+"@"+dg, key)
		if err != nil {
			t.Fatal(err)
		}
		var ev *attest.RolloutEvent
		for _, e := range entries {
			if e.Rollout != nil {
				ev = e.Rollout
			}
		}
		if ev == nil || ev.Kind != attest.EventRollback || ev.From != dd || ev.To != b || !strings.Contains(ev.Reason, "pi-1") {
			t.Fatalf("no verified rollback record on %s: %+v", dg, ev)
		}
	}

	r, err = Rollback(ctx, latest, WithRegistry(reg), WithKey(key), WithSigner(signer))
	if err != nil || !r.RolledBack || r.To != a {
		t.Fatalf("rollback from B: want to A %s, got %+v, %v", a, r, err)
	}
	// E is released and fails in the field too: B passed later than A,
	// but B was withdrawn, so the way back is A.
	e := pushArm(t, repo+":candidate")
	gate(t, ctx, reg, repo+":candidate", "latest", promote.Pass, signer)
	r, err = Rollback(ctx, latest, WithRegistry(reg), WithKey(key), WithSigner(signer))
	if err != nil || !r.RolledBack || r.From != e || r.To != a {
		t.Fatalf("rollback from E: want to A %s (B %s is withdrawn), got %+v, %v", a, b, r, err)
	}
	r, err = Rollback(ctx, latest, WithRegistry(reg), WithKey(key), WithSigner(signer))
	if err != nil || r.RolledBack || current() != a || !strings.Contains(r.Reason, "no earlier digest") {
		t.Fatalf("rollback from A, the first release: want a refusal leaving A, got %+v, %v", r, err)
	}
	for _, c := range r.Considered {
		if c.Digest == b && !strings.Contains(c.Problem, "withdrawn") {
			t.Errorf("B is not reported withdrawn: %+v", c)
		}
	}
	// Nothing to roll back at all.
	r, err = Rollback(ctx, repo+":nothing", WithRegistry(reg))
	if err != nil || r.RolledBack || !strings.Contains(r.Reason, "does not exist") {
		t.Fatalf("rollback of a tag that does not exist: %+v, %v", r, err)
	}
}
