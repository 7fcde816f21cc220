package promote

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/internal/testenv"
)

var (
	armv7 = v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastRegistry fails fast: tests stop the registry on purpose.
func fastRegistry(opts ...registry.Option) *Registry {
	return registry.New(append([]registry.Option{registry.WithRetries(1, 50*time.Millisecond)}, opts...)...)
}

func platformImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.MediaType(mutate.ConfigMediaType(img, types.OCIConfigJSON), types.OCIManifestSchema1)
}

// pushIndex pushes a fresh index with one random image per platform.
func pushIndex(t *testing.T, ref string, ps ...v1.Platform) v1.Hash {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, p := range ps {
		p := p
		adds = append(adds, mutate.IndexAddendum{Add: platformImage(t, p), Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	h, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func pushImage(t *testing.T, ref string, p v1.Platform) v1.Hash {
	t.Helper()
	img := platformImage(t, p)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// tagDigest reads a tag straight from the registry ("" when absent).
func tagDigest(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := currentDigest(context.Background(), registry.New(), r)
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	return d
}

// verdicts returns a TestFunc giving verdict v to every present platform,
// except those in override. It records what it was asked to test.
type recorder struct {
	mu     sync.Mutex
	pinned []Pinned
}

func (r *recorder) test(override map[string]Outcome) TestFunc {
	return func(ctx context.Context, p Pinned) (Result, error) {
		r.mu.Lock()
		r.pinned = append(r.pinned, p)
		r.mu.Unlock()
		res := Result{Targets: []string{"system"}, Started: time.Now(), Fixtures: map[string]string{"dhcp.pcap": "ab12"}}
		for _, pl := range p.Platforms {
			o := Outcome{Platform: pl.String(), Target: "system", Scenario: "dhcp", Verdict: Pass}
			if ov, ok := override[pl.String()]; ok {
				o = ov
			}
			res.Outcomes = append(res.Outcomes, o)
		}
		res.Finished = time.Now()
		return res, nil
	}
}

func TestPassPromotesExactDigestAndAttaches(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	cand := reg.Host + "/app:candidate"
	want := pushIndex(t, cand, armv7, amd64)

	var rec recorder
	var log bytes.Buffer
	att := &recAttester{}
	d, err := Gate(ctx, cand, "latest", rec.test(nil), WithRegistry(fastRegistry()), WithVersion("test-1"), WithAttester(att),
		WithLog(func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) }))
	if err != nil {
		t.Fatalf("Gate: %v\nregistry log: %s", err, reg.Log())
	}
	if !d.Promoted {
		t.Fatalf("not promoted: %s", d.Reason)
	}
	if len(rec.pinned) != 1 || rec.pinned[0].Digest.DigestStr() != want.String() {
		t.Fatalf("test func was given %+v, want one call with digest %s", rec.pinned, want)
	}
	if got := tagDigest(t, reg.Host+"/app:latest"); got != want.String() {
		t.Fatalf("latest = %q, want the tested digest %s", got, want)
	}
	if d.OldDigest != "" || d.NewDigest != want.String() {
		t.Errorf("decision old/new = %q/%q, want \"\"/%s", d.OldDigest, d.NewDigest, want)
	}
	// Every platform went along: the child manifests resolve through latest.
	idx, err := remote.Index(mustRef(t, reg.Host+"/app:latest"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Errorf("latest index lists %d manifests, want 2", len(im.Manifests))
	}
	// The attester was asked once, about the tested digest, with the
	// passing decision; where it stored the result is in the decision.
	if len(att.calls) != 1 || att.calls[0].pin.Digest.DigestStr() != want.String() || !att.calls[0].passed || att.calls[0].version != "test-1" {
		t.Fatalf("attester calls = %+v, want one about %s with a pass", att.calls, want)
	}
	if d.Attestation != att.where {
		t.Errorf("decision attestation %q, attester stored at %q", d.Attestation, att.where)
	}
}

// recAttester records what the gate asked it to attest.
type recAttester struct {
	mu    sync.Mutex
	calls []attestCall
	where string
	err   error
}

type attestCall struct {
	pin     Pinned
	passed  bool
	version string
}

func (a *recAttester) Attest(_ context.Context, pin Pinned, d *Decision) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, attestCall{pin, d.Passed, d.Version})
	if a.err != nil {
		return "", a.err
	}
	a.where = pin.Digest.Context().String() + "@sha256:" + strings.Repeat("ab", 32)
	return a.where, nil
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFailRefusesAndLeavesTag(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	old := pushIndex(t, reg.Host+"/app:latest", armv7)
	cand := pushIndex(t, reg.Host+"/app:candidate", armv7)

	var rec recorder
	att := &recAttester{}
	d, err := Gate(ctx, reg.Host+"/app:candidate", "latest", rec.test(map[string]Outcome{
		"linux/arm/v7": {Platform: "linux/arm/v7", Target: "system", Scenario: "dns-burst", Verdict: Fail,
			Reason: "expected 40 dns_query lines within 10s, saw 12"},
	}), WithRegistry(fastRegistry()), WithAttester(att))
	if err != nil {
		t.Fatalf("Gate: %v", err)
	}
	if d.Promoted {
		t.Fatal("a failing candidate was promoted")
	}
	for _, s := range []string{"dns-burst", "linux/arm/v7", "saw 12"} {
		if !strings.Contains(d.Reason, s) {
			t.Errorf("reason %q does not mention %q", d.Reason, s)
		}
	}
	if got := tagDigest(t, reg.Host+"/app:latest"); got != old.String() {
		t.Fatalf("latest moved to %s, want unchanged %s", got, old)
	}
	if d.OldDigest != old.String() || d.NewDigest != old.String() {
		t.Errorf("decision old/new = %s/%s, want both %s", d.OldDigest, d.NewDigest, old)
	}
	// The refusal is on record too.
	if len(att.calls) != 1 || att.calls[0].passed || att.calls[0].pin.Digest.DigestStr() != cand.String() {
		t.Errorf("attester calls = %+v; want one about the refused %s", att.calls, cand)
	}
}

func TestCandidateMovedMidGateRefuses(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	old := pushIndex(t, reg.Host+"/app:latest", armv7)
	cand := reg.Host + "/app:candidate"
	pushIndex(t, cand, armv7)

	var rec recorder
	pass := rec.test(nil)
	var newer v1.Hash
	d, err := Gate(ctx, cand, "latest", func(ctx context.Context, p Pinned) (Result, error) {
		newer = pushIndex(t, cand, armv7) // someone pushes while we test
		return pass(ctx, p)
	}, WithRegistry(fastRegistry()))
	if err != nil {
		t.Fatalf("Gate: %v", err)
	}
	if d.Promoted {
		t.Fatal("promoted although the candidate moved during the test")
	}
	if !strings.Contains(d.Reason, "moved") || !strings.Contains(d.Reason, newer.String()) {
		t.Errorf("reason %q should say the candidate moved to %s", d.Reason, newer)
	}
	if got := tagDigest(t, reg.Host+"/app:latest"); got != old.String() {
		t.Fatalf("latest moved to %s, want unchanged %s", got, old)
	}
}

func TestRegistryDownDuringWriteErrorsAndLeavesTag(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	old := pushIndex(t, reg.Host+"/app:latest", armv7)
	cand := reg.Host + "/app:candidate"
	pushIndex(t, cand, armv7)

	var rec recorder
	d, err := Gate(ctx, cand, "latest", rec.test(nil), WithRegistry(fastRegistry()), withBeforeWrite(reg.Stop))
	if err == nil {
		t.Fatalf("Gate succeeded with the registry down: %+v", d)
	}
	if d != nil && d.Promoted {
		t.Fatal("decision says promoted")
	}
	if !strings.Contains(err.Error(), "writing") {
		t.Errorf("error %q should say the write failed", err)
	}
	if err := reg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tagDigest(t, reg.Host+"/app:latest"); got != old.String() {
		t.Fatalf("after the registry came back latest is %s, want unchanged %s", got, old)
	}
}

func TestRegistryDownWhileTestingErrors(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	old := pushIndex(t, reg.Host+"/app:latest", armv7)
	cand := reg.Host + "/app:candidate"
	pushIndex(t, cand, armv7)

	var rec recorder
	pass := rec.test(nil)
	_, err := Gate(ctx, cand, "latest", func(ctx context.Context, p Pinned) (Result, error) {
		reg.Stop()
		return pass(ctx, p)
	}, WithRegistry(fastRegistry()))
	if err == nil {
		t.Fatal("Gate succeeded with the registry down")
	}
	if err := reg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tagDigest(t, reg.Host+"/app:latest"); got != old.String() {
		t.Fatalf("latest is %s, want unchanged %s", got, old)
	}
}

func TestMultiArchOnePlatformFailingRefusesAll(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	cand := reg.Host + "/app:candidate"
	pushIndex(t, cand, armv7, amd64)

	var rec recorder
	d, err := Gate(ctx, cand, "latest", rec.test(map[string]Outcome{
		"linux/amd64": {Platform: "linux/amd64", Target: "container", Scenario: "startup", Verdict: Fail, Reason: "exit 127"},
	}), WithRegistry(fastRegistry()), WithPlatforms(armv7, amd64))
	if err != nil {
		t.Fatalf("Gate: %v", err)
	}
	if d.Promoted {
		t.Fatal("promoted with one platform failing")
	}
	if !strings.Contains(d.Reason, "linux/amd64") {
		t.Errorf("reason %q should name the failing platform", d.Reason)
	}
	if got := tagDigest(t, reg.Host+"/app:latest"); got != "" {
		t.Fatalf("latest was created (%s): something partial was written", got)
	}
}

func TestMissingPlatformRefusesListingWhatIsThere(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	cand := reg.Host + "/app:candidate"
	pushImage(t, cand, amd64)

	called := false
	d, err := Gate(ctx, cand, "latest", func(context.Context, Pinned) (Result, error) {
		called = true
		return Result{}, nil
	}, WithRegistry(fastRegistry()))
	if err != nil {
		t.Fatalf("Gate: %v", err)
	}
	if d.Promoted || called {
		t.Fatalf("promoted=%v tested=%v for an image without linux/arm/v7", d.Promoted, called)
	}
	if !strings.Contains(d.Reason, "linux/arm/v7") || !strings.Contains(d.Reason, "it has linux/amd64") {
		t.Errorf("reason %q should name the missing platform and list what is there", d.Reason)
	}
	if tagDigest(t, reg.Host+"/app:latest") != "" {
		t.Fatal("latest was written")
	}
}

func TestInfraErrorsAreRetriedThenRefused(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	cand := reg.Host + "/app:candidate"
	want := pushIndex(t, cand, armv7)
	infra := map[string]Outcome{"linux/arm/v7": {Platform: "linux/arm/v7", Target: "system", Scenario: "dhcp", Verdict: InfraError, Reason: "qemu died"}}

	// Infra error once, then pass: promoted on the second attempt.
	var rec recorder
	calls := 0
	d, err := Gate(ctx, cand, "latest", func(ctx context.Context, p Pinned) (Result, error) {
		calls++
		if calls == 1 {
			return rec.test(infra)(ctx, p)
		}
		return rec.test(nil)(ctx, p)
	}, WithRegistry(fastRegistry()), WithRetries(2))
	if err != nil || !d.Promoted || d.Attempts != 2 {
		t.Fatalf("Gate = %+v, %v; want promoted on attempt 2", d, err)
	}
	if tagDigest(t, reg.Host+"/app:latest") != want.String() {
		t.Fatal("latest not at the tested digest")
	}

	// Infra errors every time: refused after 1+1 attempts, never promoted.
	pushIndex(t, cand, armv7)
	calls = 0
	d, err = Gate(ctx, cand, "latest", func(ctx context.Context, p Pinned) (Result, error) {
		calls++
		return rec.test(infra)(ctx, p)
	}, WithRegistry(fastRegistry()), WithRetries(1))
	if err != nil || d.Promoted || calls != 2 || !strings.Contains(d.Reason, "infra-error") {
		t.Fatalf("Gate = %+v, %v after %d calls; want refused after 2", d, err, calls)
	}
	if tagDigest(t, reg.Host+"/app:latest") != want.String() {
		t.Fatal("latest moved")
	}
}

func TestUnsupportedRefusesUnlessOptional(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	cand := reg.Host + "/app:candidate"
	pushIndex(t, cand, armv7)
	unsup := func(optional bool) TestFunc {
		return func(ctx context.Context, p Pinned) (Result, error) {
			return Result{Outcomes: []Outcome{
				{Platform: "linux/arm/v7", Target: "system", Scenario: "startup", Verdict: Pass},
				{Platform: "linux/arm/v7", Target: "user", Scenario: "capture", Verdict: Unsupported, Reason: "no SIOCETHTOOL", Optional: optional},
			}}, nil
		}
	}
	d, err := Gate(ctx, cand, "latest", unsup(false), WithRegistry(fastRegistry()), WithDryRun())
	if err != nil || d.Promoted || !strings.Contains(d.Reason, "unsupported") {
		t.Fatalf("required unsupported: %+v, %v; want refused", d, err)
	}
	d, err = Gate(ctx, cand, "latest", unsup(true), WithRegistry(fastRegistry()), WithDryRun())
	if err != nil || d.Promoted || !d.DryRun || !strings.Contains(d.Reason, "would move") {
		t.Fatalf("optional unsupported, dry run: %+v, %v; want would-promote", d, err)
	}
	if tagDigest(t, reg.Host+"/app:latest") != "" {
		t.Fatal("dry run wrote latest")
	}
}

func TestHtpasswdAuthNeverLeaksPassword(t *testing.T) {
	const user, pass = "ci-bot", "s3cret-Pa55-do-not-print"
	reg := testenv.Registry(t, testenv.WithHtpasswd(user, pass))
	ctx := testCtx(t)
	cfgDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, auth)
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)
	cand := reg.Host + "/app:candidate"
	want := pushIndex(t, cand, armv7)

	// Without credentials the registry refuses: the test really needs auth.
	noCreds := registry.New(registry.WithKeychain(authn.NewMultiKeychain()), registry.WithRetries(0, time.Millisecond))
	if _, err := Gate(ctx, cand, "latest", (&recorder{}).test(nil), WithRegistry(noCreds)); err == nil ||
		!strings.Contains(err.Error(), "401") && !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Fatalf("gate without credentials: %v; want an authentication error", err)
	}

	var log bytes.Buffer
	var rec recorder
	d, err := Gate(ctx, cand, "latest", rec.test(nil), WithRegistry(fastRegistry()),
		WithLog(func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) }))
	if err != nil || !d.Promoted {
		t.Fatalf("Gate with credentials: %+v, %v", d, err)
	}
	if got := tagDigest(t, reg.Host+"/app:latest"); got != want.String() {
		t.Fatalf("latest = %s, want %s", got, want)
	}
	decision, _ := json.Marshal(d)
	for what, b := range map[string][]byte{"log": log.Bytes(), "decision": decision} {
		for _, secret := range []string{pass, auth} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("the %s contains the password: %s", what, b)
			}
		}
	}
}

func TestInsecureOnlyForLoopback(t *testing.T) {
	r := registry.New(registry.WithInsecure())
	if _, err := r.ParseReference("registry.example.com/app:1"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("--insecure for a remote registry: %v; want a refusal", err)
	}
	if _, err := ResolveTag(r, mustRef(t, "127.0.0.1:5000/app:c"), "10.0.0.7:5000/app:latest"); err == nil {
		t.Error("--insecure for a non-loopback tag accepted")
	}
	for _, ok := range []string{"127.0.0.1:5000/app:1", "localhost:5000/app:1", "[::1]:5000/app:1"} {
		if _, err := r.ParseReference(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if _, err := registry.New().ParseReference("registry.example.com/app:1"); err != nil {
		t.Errorf("without --insecure: %v", err)
	}
}

func TestBadInputErrors(t *testing.T) {
	ctx := testCtx(t)
	for _, c := range []struct{ ref, tag string }{
		{"", "latest"}, {"UPPER/Case:x", "latest"}, {"127.0.0.1:1/app:c", ""}, {"127.0.0.1:1/app:c", "bad tag!"},
	} {
		if _, err := Gate(ctx, c.ref, c.tag, (&recorder{}).test(nil), WithRegistry(fastRegistry())); err == nil {
			t.Errorf("Gate(%q, %q) succeeded", c.ref, c.tag)
		}
	}
	if _, err := ParsePlatforms("linux"); err == nil {
		t.Error("ParsePlatforms(linux) accepted")
	}
	if ps, err := ParsePlatforms("linux/arm/v7, linux/amd64"); err != nil || len(ps) != 2 {
		t.Errorf("ParsePlatforms = %v, %v", ps, err)
	}
}

// A registry (or the proxy in front of it) that answers 503 now and then
// must not fail the gate: requests are retried with backoff.
func TestRetriesTransient5xx(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	n := 0
	host, failed := reg.FlakyProxy(t, func(*http.Request) bool { n++; return n%7 == 0 })
	want := pushIndex(t, reg.Host+"/app:candidate", armv7)

	r := registry.New(registry.WithRetries(3, 10*time.Millisecond))
	d, err := Gate(ctx, host+"/app:candidate", "latest", (&recorder{}).test(nil), WithRegistry(r))
	if err != nil || !d.Promoted {
		t.Fatalf("Gate through a flaky proxy: %+v, %v", d, err)
	}
	if failed() == 0 {
		t.Fatal("the proxy never failed a request: the test tests nothing")
	}
	if got := tagDigest(t, reg.Host+"/app:latest"); got != want.String() {
		t.Fatalf("latest = %s, want %s", got, want)
	}

	// Without retries the same proxy makes the gate fail with an error.
	_, err = Gate(ctx, host+"/app:candidate", "latest", (&recorder{}).test(nil), WithRegistry(registry.New(registry.WithRetries(0, time.Millisecond))))
	if err == nil {
		t.Fatal("no error without retries although every 7th request fails")
	}
}

// Promoting into another repository copies blobs and child manifests by
// digest: the tag there has the tested digest and every platform resolves.
func TestPromoteIntoAnotherRepository(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	cand := reg.Host + "/ci/app:candidate"
	want := pushIndex(t, cand, armv7, amd64)
	d, err := Gate(ctx, cand, reg.Host+"/fleet/app:stable", (&recorder{}).test(nil), WithRegistry(fastRegistry()))
	if err != nil || !d.Promoted {
		t.Fatalf("Gate: %+v, %v", d, err)
	}
	if got := tagDigest(t, reg.Host+"/fleet/app:stable"); got != want.String() {
		t.Fatalf("fleet/app:stable = %s, want %s", got, want)
	}
	for _, p := range []v1.Platform{armv7, amd64} {
		img, err := remote.Image(mustRef(t, reg.Host+"/fleet/app:stable"), remote.WithPlatform(p))
		if err != nil {
			t.Fatalf("%s through the promoted tag: %v", p, err)
		}
		if _, err := img.ConfigFile(); err != nil {
			t.Fatalf("%s config in the other repository: %v", p, err)
		}
	}
}

func TestJudge(t *testing.T) {
	armAny := v1.Platform{OS: "linux", Architecture: "arm"}
	pass := func(p string) Outcome { return Outcome{Platform: p, Target: "system", Scenario: "s", Verdict: Pass} }
	for _, c := range []struct {
		name     string
		outcomes []Outcome
		required []v1.Platform
		bad      int
	}{
		{"all pass", []Outcome{pass("linux/arm/v7")}, []v1.Platform{armv7}, 0},
		{"variant-less requirement", []Outcome{pass("linux/arm/v7")}, []v1.Platform{armAny}, 0},
		{"nothing ran", nil, []v1.Platform{armv7}, 1},
		{"only another platform ran", []Outcome{pass("linux/amd64")}, []v1.Platform{armv7}, 1},
		{"one of two platforms missing", []Outcome{pass("linux/arm/v7")}, []v1.Platform{armv7, amd64}, 1},
		{"fail next to pass", []Outcome{pass("linux/arm/v7"), {Platform: "linux/arm/v7", Scenario: "t", Verdict: Fail}}, []v1.Platform{armv7}, 1},
		{"optional unsupported", []Outcome{pass("linux/arm/v7"), {Platform: "linux/arm/v7", Verdict: Unsupported, Optional: true}}, []v1.Platform{armv7}, 0},
		{"unknown verdict", []Outcome{pass("linux/arm/v7"), {Platform: "linux/arm/v7", Verdict: "maybe"}}, []v1.Platform{armv7}, 1},
		{"optional does not excuse a fail", []Outcome{pass("linux/arm/v7"), {Platform: "linux/arm/v7", Verdict: Fail, Optional: true}}, []v1.Platform{armv7}, 1},
	} {
		if bad := judge(Result{Outcomes: c.outcomes}, c.required, nil); len(bad) != c.bad {
			t.Errorf("%s: %d refusing outcomes %v, want %d", c.name, len(bad), bad, c.bad)
		}
	}
}

func TestWithoutAttestationAttachesNothing(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	cand := reg.Host + "/app:candidate"
	want := pushIndex(t, cand, armv7)
	att := &recAttester{}
	d, err := Gate(ctx, cand, "latest", (&recorder{}).test(nil), WithRegistry(fastRegistry()), WithAttester(att), WithoutAttestation())
	if err != nil || !d.Promoted || d.Attestation != "" {
		t.Fatalf("Gate: %+v, %v", d, err)
	}
	if tagDigest(t, reg.Host+"/app:latest") != want.String() {
		t.Fatal("latest not promoted")
	}
	if len(att.calls) != 0 {
		t.Fatalf("attester called %d times after WithoutAttestation", len(att.calls))
	}
	// A dry run attests nothing either.
	if _, err := Gate(ctx, cand, "latest", (&recorder{}).test(nil), WithRegistry(fastRegistry()), WithAttester(att), WithDryRun()); err != nil || len(att.calls) != 0 {
		t.Fatalf("dry run: %v, %d attester calls", err, len(att.calls))
	}
}

// A pass whose result cannot be recorded is not promoted (a fleet policy
// would refuse the digest anyway); a refusal that cannot be recorded is
// still a refusal.
func TestAttesterFailure(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := testCtx(t)
	old := pushIndex(t, reg.Host+"/app:latest", armv7)
	cand := reg.Host + "/app:candidate"
	pushIndex(t, cand, armv7)
	att := &recAttester{err: errors.New("registry refused the artifact")}
	d, err := Gate(ctx, cand, "latest", (&recorder{}).test(nil), WithRegistry(fastRegistry()), WithAttester(att))
	if err == nil || !strings.Contains(err.Error(), "registry refused the artifact") || !strings.Contains(err.Error(), "tag was not touched") || d.Promoted {
		t.Fatalf("Gate = %+v, %v; want an error saying the tag was not touched", d, err)
	}
	if got := tagDigest(t, reg.Host+"/app:latest"); got != old.String() {
		t.Fatalf("latest moved to %s", got)
	}
	var log bytes.Buffer
	d, err = Gate(ctx, cand, "latest", (&recorder{}).test(map[string]Outcome{"linux/arm/v7": {Platform: "linux/arm/v7", Target: "system", Scenario: "dhcp", Verdict: Fail}}),
		WithRegistry(fastRegistry()), WithAttester(att), WithLog(func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) }))
	if err != nil || d.Promoted || !strings.Contains(log.String(), "could not attach the refusal") {
		t.Fatalf("refusal with a failing attester: %+v, %v, log %q", d, err, log.String())
	}
}

// BenchmarkGateOverhead is what the gate itself costs per promotion against
// a real docker-registry on loopback (pin, platform check, attestation,
// re-resolve, tag write, read-back), with a test that passes at once.
func BenchmarkGateOverhead(b *testing.B) {
	reg := testenv.Registry(b)
	ctx := context.Background()
	cand := reg.Host + "/app:candidate"
	pushIndexB(b, cand)
	pass := (&recorder{}).test(nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := Gate(ctx, cand, "latest", pass, WithRegistry(fastRegistry()))
		if err != nil || !d.Promoted {
			b.Fatalf("Gate: %+v, %v", d, err)
		}
	}
}

func pushIndexB(b *testing.B, ref string) {
	b.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		b.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = armv7.OS, armv7.Architecture, armv7.Variant
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		b.Fatal(err)
	}
	p := armv7
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}}), types.OCIImageIndex)
	r, err := name.ParseReference(ref)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		b.Fatal(err)
	}
}
