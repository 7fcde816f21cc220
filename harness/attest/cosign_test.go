package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/hilproject/hil/internal/testenv"
)

// The acceptance test with the real cosign CLI (built from its Go module,
// cached by version), on Debian's docker-registry 2.8 (no referrers API)
// and go-containerregistry's registry (with it):
//   - a key pair made by "cosign generate-key-pair" signs the gate's
//     attestation through --sign-key's loader;
//   - cosign verify-attestation --key --type test-result accepts it (its
//     only non-default flag: --insecure-ignore-tlog, as hil does not
//     upload to a transparency log), and hil's Verify does too;
//   - cosign tree lists the .att tag and the envelopes; cosign download
//     attestation prints them;
//   - the wrong key, and a payload changed after signing, are rejected by
//     both cosign and Verify;
//   - a PKCS#8 key hil signs with verifies in cosign with its public key.
func TestCosignAcceptsGateAttestation(t *testing.T) {
	cosign := testenv.Cosign(t)
	for _, rk := range registryKinds {
		t.Run(rk.name, func(t *testing.T) {
			host := rk.start(t)
			ctx := testCtx(t)
			dir := t.TempDir()
			run := func(env []string, args ...string) (string, int) {
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				return testenv.CosignCmd(cctx, cosign, dir, env, args...)
			}
			pw := []string{"COSIGN_PASSWORD=team-secret"}
			if out, code := run(pw, "generate-key-pair"); code != 0 {
				t.Fatalf("cosign generate-key-pair: exit %d\n%s", code, out)
			}
			otherDir := filepath.Join(dir, "other")
			os.MkdirAll(otherDir, 0o700)
			if out, code := testenv.CosignCmd(ctx, cosign, otherDir, pw, "generate-key-pair"); code != 0 {
				t.Fatalf("cosign generate-key-pair (other): exit %d\n%s", code, out)
			}
			key, pub, otherPub := filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub"), filepath.Join(otherDir, "cosign.pub")

			t.Setenv(PasswordEnv, "team-secret")
			signer, err := LoadSigner(key, PasswordFromEnv)
			if err != nil {
				t.Fatalf("loading cosign's key: %v", err)
			}
			a := NewAttester(WithSigner(signer), WithRunURL("https://github.com/acme/pcapwatch/actions/runs/1"))
			cand := host + "/pcapwatch:candidate"
			good := pushArm(t, cand)
			gate(t, cand, passTest(false), a)
			img := host + "/pcapwatch@" + good.String()

			verify := func(pubKey, ref string) (string, int) {
				return run(nil, "verify-attestation", "--key", pubKey, "--type", TestResultPredicateType, "--insecure-ignore-tlog=true", ref)
			}
			out, code := verify(pub, img)
			if code != 0 {
				t.Fatalf("cosign verify-attestation: exit %d\n%s", code, out)
			}
			if !strings.Contains(out, `"payloadType":"application/vnd.in-toto+json"`) || !strings.Contains(out, "signatures were verified against the specified public key") {
				t.Errorf("cosign verify-attestation printed:\n%s", out)
			}
			if v, err := Verify(ctx, fastRegistry(), img, mustVerifier(t, pub), Requirements{}); err != nil || !v.OK() {
				t.Fatalf("hil Verify: %+v, %v", v, err)
			}

			out, code = run(nil, "tree", img)
			if code != 0 || !strings.Contains(out, "Attestations for an image tag: "+host+"/pcapwatch:sha256-"+good.Hex+".att") {
				t.Errorf("cosign tree: exit %d\n%s", code, out)
			}
			_, found, _ := findAll(t, img)
			for _, f := range found {
				if !strings.Contains(out, f.LayerDigest.String()) {
					t.Errorf("cosign tree does not list envelope %s:\n%s", f.LayerDigest, out)
				}
			}
			out, code = run(nil, "download", "attestation", "--predicate-type", TestResultPredicateType, img)
			if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, `"payloadType":"application/vnd.in-toto+json"`) {
				t.Errorf("cosign download attestation: exit %d\n%s", code, out)
			} else if st := payloadOf(t, out); !strings.Contains(st, TestResultPredicateType) || !strings.Contains(st, "dhcp/system/virt/linux/arm/v7") {
				t.Errorf("downloaded statement: %s", st)
			}

			// The wrong key.
			if out, code := verify(otherPub, img); code == 0 {
				t.Errorf("cosign accepted the attestation with another key:\n%s", out)
			}
			if v, err := Verify(ctx, fastRegistry(), img, mustVerifier(t, otherPub), Requirements{}); err != nil || v.OK() || !strings.Contains(v.Reason, "does not verify") {
				t.Errorf("hil Verify with another key: %+v, %v", v, err)
			}

			// A refused candidate whose FAILED was turned into PASSED after
			// signing.
			bad := host + "/pcapwatch:broken"
			badDigest := pushArm(t, bad)
			badRef := host + "/pcapwatch@" + badDigest.String()
			plain := NewAttester(WithSigner(signer))
			if d, err := promoteGate(t, bad, failTest, plain); err != nil || d.Promoted || d.Attestation == "" {
				t.Fatalf("failing gate: %+v, %v", d, err)
			}
			if out, code := verify(pub, badRef); code != 0 {
				t.Fatalf("cosign rejects the genuine FAILED attestation (it should accept the signature; the policy judges the result): exit %d\n%s", code, out)
			}
			// The example policy (examples/policy/hil-pass.rego, the rule of
			// the ClusterImagePolicy) admits the pass and refuses the FAIL.
			rego := filepath.Join(testenv.RepoRoot(t), "examples", "policy", "hil-pass.rego")
			policy := func(ref string) (string, int) {
				return run(nil, "verify-attestation", "--key", pub, "--type", TestResultPredicateType, "--insecure-ignore-tlog=true", "--policy", rego, ref)
			}
			if out, code := policy(img); code != 0 {
				t.Errorf("cosign with hil-pass.rego refused the passing digest: exit %d\n%s", code, out)
			}
			if out, code := policy(badRef); code == 0 || !strings.Contains(out, "policy") {
				t.Errorf("cosign with hil-pass.rego admitted the FAILED digest: exit %d\n%s", code, out)
			}
			rewriteAttestations(t, host, badRef)
			if out, code := verify(pub, badRef); code == 0 {
				t.Errorf("cosign accepted a tampered payload:\n%s", out)
			}
			if v, err := Verify(ctx, fastRegistry(), badRef, mustVerifier(t, pub), Requirements{}); err != nil || v.OK() || !strings.Contains(v.Reason, "does not verify") {
				t.Errorf("hil Verify of a tampered payload: %+v, %v", v, err)
			}

			// hil signs with a PKCS#8 key; cosign verifies with its public key.
			ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			der, _ := x509.MarshalPKCS8PrivateKey(ec)
			p8 := writePEM(t, dir, "team.pem", "PRIVATE KEY", der)
			p8pub := writePub(t, dir, "team.pub", &ec.PublicKey)
			third := host + "/pcapwatch:pkcs8"
			thirdDigest := pushArm(t, third)
			gate(t, third, passTest(false), NewAttester(WithSigner(mustSigner(t, p8, ""))))
			if out, code := verify(p8pub, host+"/pcapwatch@"+thirdDigest.String()); code != 0 {
				t.Errorf("cosign verify-attestation of a PKCS#8-signed attestation: exit %d\n%s", code, out)
			}
		})
	}
}

func payloadOf(t *testing.T, envelopeJSON string) string {
	t.Helper()
	var env ssldsse.Envelope
	if err := json.Unmarshal([]byte(strings.TrimSpace(envelopeJSON)), &env); err != nil {
		t.Fatalf("not an envelope: %v\n%s", err, envelopeJSON)
	}
	p, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return string(p)
}

// rewriteAttestations replaces every envelope attached to ref, in the .att
// image and in new referrers, by its tampered copy (signature kept), and
// drops the genuine referrers, so that only tampered copies remain.
func rewriteAttestations(t *testing.T, host, ref string) {
	t.Helper()
	ctx := testCtx(t)
	subject, desc, found, err := Find(ctx, fastRegistry(), ref)
	if err != nil || len(found) == 0 {
		t.Fatalf("Find: %d, %v", len(found), err)
	}
	var envs []Envelope
	for _, f := range found {
		raw := f.Envelope
		if f.PredicateType == TestResultPredicateType {
			raw = tamper(t, raw)
		}
		envs = append(envs, Envelope{Raw: raw, PredicateType: f.PredicateType, Signed: true})
		for _, w := range f.Where {
			if d, err := name.NewDigest(w); err == nil {
				_ = remote.Delete(d)
			}
		}
	}
	// The referrers tag schema's index lists the deleted referrers: drop it
	// too (go-containerregistry rebuilds it with the next referrer).
	fallback := subject.Context().Tag(strings.Replace(subject.DigestStr(), ":", "-", 1))
	if d, err := remote.Head(fallback); err == nil {
		_ = remote.Delete(fallback.Context().Digest(d.Digest.String()))
	}
	tag, _ := AttestationTag(subject)
	attImg, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	attDigest, _ := attImg.Digest()
	// docker-registry deletes by digest (and the tags with it);
	// go-containerregistry's registry keeps the tag unless it is deleted too.
	_ = remote.Delete(tag)
	_ = remote.Delete(tag.Context().Digest(attDigest.String()))
	if _, err := remote.Image(tag); err == nil {
		t.Fatalf("the genuine %s is still there after deleting it", tag)
	}
	if _, err := Store(ctx, fastRegistry(), subject, desc, envs, Passed); err != nil {
		t.Fatal(err)
	}
	_, after, err := findAll(t, ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range after {
		if f.PredicateType == TestResultPredicateType && !strings.Contains(payloadOf(t, string(f.Envelope)), `"PASSED"`) {
			t.Fatalf("a genuine FAILED envelope is still attached at %v", f.Where)
		}
	}
}
