package attest

import (
	"context"
	"crypto/elliptic"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/internal/testenv"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// registryKind is a real registry server on loopback: Debian's
// docker-registry 2.8 (no referrers API: go-containerregistry keeps the
// referrers tag schema) or go-containerregistry's own (with the API).
type registryKind struct {
	name         string
	referrersAPI bool
	start        func(t *testing.T) string // host:port
}

var registryKinds = []registryKind{
	{"docker-registry-2.8", false, func(t *testing.T) string { return testenv.Registry(t).Host }},
	{"ggcr-registry", true, func(t *testing.T) string {
		srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true)))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}},
}

func fastRegistry() *promote.Registry {
	return registry.New(registry.WithRetries(1, 50*time.Millisecond))
}

// pushArm pushes a fresh one-platform (linux/arm/v7) index and returns its
// digest.
func pushArm(t *testing.T, ref string) v1.Hash {
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
	img = mutate.MediaType(mutate.ConfigMediaType(img, types.OCIConfigJSON), types.OCIManifestSchema1)
	p := v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}}), types.OCIImageIndex)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	h, _ := idx.Digest()
	return h
}

// tags lists the repository's tags (nil when it has none).
func tags(t *testing.T, repo string) []string {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := remote.List(r)
	if err != nil {
		return nil
	}
	return ts
}

// keyPair writes a cosign-format key pair (encrypted with password, as
// cosign generate-key-pair writes it) into dir and returns the paths.
func keyPair(t *testing.T, dir, password string) (priv, pub string) {
	t.Helper()
	privPEM, pubPEM, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc([]byte(password)))
	if err != nil {
		t.Fatal(err)
	}
	priv, pub = filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
	if err := os.WriteFile(priv, privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func mustSigner(t *testing.T, path, password string) *Signer {
	t.Helper()
	s, err := LoadSigner(path, func() ([]byte, error) { return []byte(password), nil })
	if err != nil {
		t.Fatalf("LoadSigner(%s): %v", path, err)
	}
	return s
}

func mustVerifier(t *testing.T, path string) *Verifier {
	t.Helper()
	v, err := LoadVerifier(path)
	if err != nil {
		t.Fatalf("LoadVerifier(%s): %v", path, err)
	}
	return v
}

// passTest gives every required platform a pass on the system target,
// plus an optional unsupported capture on the user target when warn is
// set, and names its inputs.
func passTest(warn bool) promote.TestFunc {
	return func(ctx context.Context, p promote.Pinned) (promote.Result, error) {
		res := promote.Result{Targets: []string{"system"}, Started: time.Now(),
			Fixtures: map[string]string{"dhcp.pcap": strings.Repeat("ab", 32)},
			Configuration: []promote.Resource{
				{Name: "dhcp.yaml", Kind: "scenario", Digest: map[string]string{"sha256": strings.Repeat("cd", 32)}},
				{Name: "linux-image-6.1.0-50-armmp_6.1.176-1_armhf", Kind: "kernel", Digest: map[string]string{"sha256": strings.Repeat("ef", 32)}},
			}}
		for _, pl := range p.Required {
			res.Outcomes = append(res.Outcomes, promote.Outcome{Platform: pl.String(), Target: "system", Board: "virt", Scenario: "dhcp", Verdict: promote.Pass})
			if warn {
				res.Outcomes = append(res.Outcomes, promote.Outcome{Platform: pl.String(), Target: "user", Scenario: "capture", Verdict: promote.Unsupported, Optional: true, Reason: "no SIOCETHTOOL"})
			}
		}
		res.Finished = time.Now()
		return res, nil
	}
}

func failTest(ctx context.Context, p promote.Pinned) (promote.Result, error) {
	res := promote.Result{Targets: []string{"system"}, Started: time.Now(), Finished: time.Now()}
	for _, pl := range p.Required {
		res.Outcomes = append(res.Outcomes, promote.Outcome{Platform: pl.String(), Target: "system", Board: "virt", Scenario: "dns-burst", Verdict: promote.Fail, Reason: "saw 12 of 40"})
	}
	return res, nil
}

// gate runs the gate on cand with the attester and returns the decision.
func gate(t *testing.T, cand string, test promote.TestFunc, a *Attester) *promote.Decision {
	t.Helper()
	d, err := promote.Gate(testCtx(t), cand, "latest", test, promote.WithRegistry(fastRegistry()), promote.WithAttester(a), promote.WithVersion("v0.1.0+gtest"))
	if err != nil {
		t.Fatalf("Gate(%s): %v", cand, err)
	}
	if d.Attestation == "" {
		t.Fatalf("Gate(%s) attached nothing: %+v", cand, d)
	}
	return d
}
