package attest

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hilproject/hil/harness/promote"
)

// A gate's attestation, on a registry with the referrers API and one
// without: stored in cosign's .att image and as a referrer (through the
// referrers tag schema where the API is missing), found in both places as
// the same envelopes, verified with the key; a refused candidate carries a
// FAILED result that does not verify as a pass; boards are checked.
func TestGateAttestationOnBothRegistries(t *testing.T) {
	for _, rk := range registryKinds {
		t.Run(rk.name, func(t *testing.T) {
			host := rk.start(t)
			ctx := testCtx(t)
			dir := t.TempDir()
			priv, pub := keyPair(t, dir, "pw")
			a := NewAttester(WithSigner(mustSigner(t, priv, "pw")), WithRunURL("https://ci.example/runs/7"))
			key := mustVerifier(t, pub)

			cand := host + "/pcapwatch:candidate"
			good := pushArm(t, cand)
			d := gate(t, cand, passTest(false), a)
			if !d.Promoted {
				t.Fatalf("not promoted: %s", d.Reason)
			}
			attTag := "sha256-" + good.Hex + AttestationTagSuffix
			ts := strings.Join(tags(t, host+"/pcapwatch"), " ")
			if !strings.Contains(ts, attTag) {
				t.Errorf("tags %s lack cosign's %s", ts, attTag)
			}
			if fallback := strings.Contains(" "+ts+" ", " sha256-"+good.Hex+" "); fallback == rk.referrersAPI {
				t.Errorf("referrers tag schema tag present=%v on a registry with referrers API=%v (tags %s)", fallback, rk.referrersAPI, ts)
			}

			subject, found, err := findAll(t, host+"/pcapwatch:latest")
			if err != nil {
				t.Fatal(err)
			}
			if subject.DigestStr() != good.String() || len(found) != 2 {
				t.Fatalf("Find(latest) = %s with %d envelopes; want %s with 2", subject, len(found), good)
			}
			for _, f := range found {
				if len(f.Where) != 2 || !strings.HasSuffix(f.Where[0], attTag) || f.Where[1] != d.Attestation {
					t.Errorf("envelope %s found at %v; want the .att tag and the referrer %s", f.LayerDigest, f.Where, d.Attestation)
				}
			}

			v, err := Verify(ctx, fastRegistry(), host+"/pcapwatch:latest", key, Requirements{Boards: []string{"virt"}})
			if err != nil || !v.OK() {
				t.Fatalf("Verify: %+v, %v", v, err)
			}
			if tr := v.Accepted.TestResult; tr.GetResult() != Passed || tr.GetUrl() != "https://ci.example/runs/7" || len(tr.GetConfiguration()) < 3 {
				t.Errorf("accepted %v", tr)
			}
			v, err = Verify(ctx, fastRegistry(), host+"/pcapwatch:latest", key, Requirements{Boards: []string{"virt", "pi3b+"}})
			if err != nil || v.OK() || !strings.Contains(v.Reason, "no passed test on board pi3b+") || !strings.Contains(v.Reason, "tested boards: virt") {
				t.Errorf("Verify requiring pi3b+: %+v, %v", v, err)
			}

			// Gating the same digest again appends (cosign keeps every
			// attestation); identical envelopes would not be added twice.
			gate(t, cand, passTest(true), a)
			img, err := remote.Image(mustTag(t, host+"/pcapwatch:"+attTag))
			if err != nil {
				t.Fatal(err)
			}
			if ls, _ := img.Layers(); len(ls) != 4 {
				t.Errorf(".att image has %d layers after two gates, want 4", len(ls))
			}
			// The newest is WARNED: PASSED-only accepts the older PASSED one.
			if v, err := Verify(ctx, fastRegistry(), cand, key, Requirements{Result: Warned}); err != nil || !v.OK() || v.Accepted.TestResult.GetResult() != Warned {
				t.Errorf("Verify WARNED: %+v, %v", v, err)
			}

			bad := host + "/pcapwatch:broken"
			badDigest := pushArm(t, bad)
			d, err = promoteGate(t, bad, failTest, a)
			if err != nil || d.Promoted {
				t.Fatalf("failing gate: %+v, %v", d, err)
			}
			v, err = Verify(ctx, fastRegistry(), host+"/pcapwatch@"+badDigest.String(), key, Requirements{})
			if err != nil || v.OK() || !strings.Contains(v.Reason, "result FAILED") || !strings.Contains(v.Reason, "dns-burst/system/virt/linux/arm/v7") {
				t.Errorf("Verify of the refused digest: %+v, %v", v, err)
			}
		})
	}
}

// The attestation of one digest copied onto another (same signature, same
// key) does not make the other pass: the statement's subject must match.
func TestVerifyRefusesAnotherDigestsAttestation(t *testing.T) {
	host := registryKinds[0].start(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	priv, pub := keyPair(t, dir, "pw")
	a := NewAttester(WithSigner(mustSigner(t, priv, "pw")))
	good := host + "/pcapwatch:good"
	pushArm(t, good)
	gate(t, good, passTest(false), a)
	_, found, err := findAll(t, good)
	if err != nil || len(found) == 0 {
		t.Fatal(err)
	}
	other := host + "/pcapwatch:other"
	otherDigest := pushArm(t, other)
	od, err := name.NewDigest(host + "/pcapwatch@" + otherDigest.String())
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(od)
	if err != nil {
		t.Fatal(err)
	}
	var envs []Envelope
	for _, f := range found {
		envs = append(envs, Envelope{Raw: f.Envelope, PredicateType: f.PredicateType, Signed: true})
	}
	if _, err := Store(ctx, fastRegistry(), od, *desc, envs, Passed); err != nil {
		t.Fatal(err)
	}
	v, err := Verify(ctx, fastRegistry(), od.String(), mustVerifier(t, pub), Requirements{})
	if err != nil || v.OK() || !strings.Contains(v.Reason, "copied from another image") {
		t.Fatalf("Verify of a copied attestation: %+v, %v", v, err)
	}
}

func TestVerifyBadInput(t *testing.T) {
	host := registryKinds[0].start(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	priv, pub := keyPair(t, dir, "pw")
	key := mustVerifier(t, pub)
	bare := host + "/pcapwatch:bare"
	pushArm(t, bare)
	before := tags(t, host+"/pcapwatch")

	v, err := Verify(ctx, fastRegistry(), bare, key, Requirements{})
	if err != nil || v.OK() || !strings.Contains(v.Reason, "no test-result attestation") || !strings.Contains(v.Reason, ".att") {
		t.Errorf("Verify without attestation: %+v, %v", v, err)
	}
	if _, err := Verify(ctx, fastRegistry(), bare, key, Requirements{Result: "FAILED"}); err == nil {
		t.Error("Verify accepted FAILED as a required result")
	}
	if _, err := Verify(ctx, fastRegistry(), bare, nil, Requirements{}); err == nil {
		t.Error("Verify without a key succeeded")
	}
	if _, err := Verify(ctx, fastRegistry(), "127.0.0.1:1/pcapwatch:latest", key, Requirements{}); err == nil || !strings.Contains(err.Error(), "resolving") {
		t.Errorf("Verify against an unreachable registry: %v", err)
	}
	if _, err := Verify(ctx, fastRegistry(), "Not A Ref", key, Requirements{}); err == nil {
		t.Error("Verify of a bad reference succeeded")
	}
	// Verifying writes nothing.
	if after := tags(t, host+"/pcapwatch"); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("tags before %v, after verifying %v", before, after)
	}
	// An unsigned attestation is found, and refused as unsigned.
	gate(t, bare, passTest(false), NewAttester())
	v, err = Verify(ctx, fastRegistry(), bare, key, Requirements{})
	if err != nil || v.OK() || !strings.Contains(v.Reason, "not signed") {
		t.Errorf("Verify of an unsigned attestation: %+v, %v", v, err)
	}
	_ = priv
}

func findAll(t *testing.T, ref string) (name.Digest, []Found, error) {
	t.Helper()
	subject, _, found, err := Find(testCtx(t), fastRegistry(), ref)
	return subject, found, err
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func promoteGate(t *testing.T, cand string, test promote.TestFunc, a *Attester) (*promote.Decision, error) {
	t.Helper()
	return promote.Gate(testCtx(t), cand, "latest", test, promote.WithRegistry(fastRegistry()), promote.WithAttester(a))
}
