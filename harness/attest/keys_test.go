package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/hilproject/hil/harness/promote"
)

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func writePEM(t *testing.T, dir, file, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writePub(t *testing.T, dir, file string, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, file, "PUBLIC KEY", der)
}

// Every key format --sign-key takes signs an envelope that the matching
// public key verifies.
func TestLoadSignerFormats(t *testing.T) {
	dir := t.TempDir()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	pkcs8 := func(k any) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sec1, _ := x509.MarshalECPrivateKey(ec)
	cosignKey, cosignPub := keyPair(t, dir, "s3cret")
	emptyDir := t.TempDir()
	emptyKey, emptyPub := keyPair(t, emptyDir, "")
	for _, c := range []struct {
		name, priv, pub, password string
	}{
		{"cosign key pair", cosignKey, cosignPub, "s3cret"},
		{"cosign key pair, empty password", emptyKey, emptyPub, ""},
		{"PKCS#8 ECDSA P-256", writePEM(t, dir, "ec.pem", "PRIVATE KEY", pkcs8(ec)), writePub(t, dir, "ec.pub", &ec.PublicKey), ""},
		{"PKCS#8 ECDSA P-384", writePEM(t, dir, "ec384.pem", "PRIVATE KEY", pkcs8(ec384)), writePub(t, dir, "ec384.pub", &ec384.PublicKey), ""},
		{"PKCS#8 RSA", writePEM(t, dir, "rsa.pem", "PRIVATE KEY", pkcs8(rk)), writePub(t, dir, "rsa.pub", &rk.PublicKey), ""},
		{"PKCS#8 Ed25519", writePEM(t, dir, "ed.pem", "PRIVATE KEY", pkcs8(edk)), writePub(t, dir, "ed.pub", edk.Public()), ""},
		{"SEC 1 EC", writePEM(t, dir, "sec1.pem", "EC PRIVATE KEY", sec1), writePub(t, dir, "sec1.pub", &ec.PublicKey), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustSigner(t, c.priv, c.password)
			tr, _, _ := Statements(pinnedFor(t), decisionWith([]promote.Outcome{{Platform: "linux/arm/v7", Target: "system", Scenario: "a", Verdict: promote.Pass}}, nil), Run{})
			e, err := Seal(context.Background(), tr, s)
			if err != nil || !e.Signed {
				t.Fatalf("Seal: %v", err)
			}
			st, err := Open(e.Raw, mustVerifier(t, c.pub))
			if err != nil {
				t.Fatalf("Open with the matching public key: %v", err)
			}
			if st.GetPredicateType() != TestResultPredicateType {
				t.Errorf("opened %s", st.GetPredicateType())
			}
			pub, err := s.PublicKeyPEM()
			want, _ := os.ReadFile(c.pub)
			if err != nil || strings.TrimSpace(string(pub)) != strings.TrimSpace(string(want)) {
				t.Errorf("PublicKeyPEM = %s, %v; want %s", pub, err, want)
			}
		})
	}
}

func TestLoadSignerErrors(t *testing.T) {
	dir := t.TempDir()
	priv, pub := keyPair(t, dir, "right")
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	openssl := writePEM(t, dir, "enc.pem", "ENCRYPTED PRIVATE KEY", der)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a key\n"), 0o600)
	broken := writePEM(t, dir, "broken.pem", "PRIVATE KEY", []byte("nope"))
	pw := func(p string) PassFunc { return func() ([]byte, error) { return []byte(p), nil } }
	t.Setenv(PasswordEnv, "")
	os.Unsetenv(PasswordEnv)
	for _, c := range []struct {
		name, path string
		pass       PassFunc
		want       string
	}{
		{"missing file", filepath.Join(dir, "nope.key"), pw(""), "no such file"},
		{"not PEM", garbage, pw(""), "not PEM"},
		{"a public key", pub, pw(""), "is a public key"},
		{"wrong password", priv, pw("wrong"), "wrong COSIGN_PASSWORD"},
		{"COSIGN_PASSWORD unset", priv, PasswordFromEnv, "set COSIGN_PASSWORD"},
		{"openssl-encrypted PKCS#8", openssl, pw(""), "cannot decrypt"},
		{"broken DER", broken, pw(""), "parsing signing key"},
		{"AWS KMS", "awskms:///arn:aws:kms:eu-west-1:1:key/abc", pw(""), "not supported"},
		{"Vault", "hashivault://hil", pw(""), "not supported"},
	} {
		if _, err := LoadSigner(c.path, c.pass); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error mentioning %q", c.name, err, c.want)
		}
	}
	if _, err := LoadVerifier(priv); err == nil || !strings.Contains(err.Error(), "is a private key") {
		t.Errorf("LoadVerifier(private key): %v", err)
	}
	if _, err := LoadVerifier(garbage); err == nil || !strings.Contains(err.Error(), "not PEM") {
		t.Errorf("LoadVerifier(garbage): %v", err)
	}
	if _, err := LoadVerifier(filepath.Join(dir, "none.pub")); err == nil {
		t.Error("LoadVerifier(missing) succeeded")
	}
	if _, err := LoadVerifier("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("LoadVerifier(KMS): %v", err)
	}
}

// A signature holds only for its key and its exact payload; an envelope
// without signature is reported as unsigned, never accepted.
func TestSealOpen(t *testing.T) {
	dir := t.TempDir()
	priv, pub := keyPair(t, dir, "pw")
	other := t.TempDir()
	_, otherPub := keyPair(t, other, "pw")
	tr, _, _ := Statements(pinnedFor(t), decisionWith([]promote.Outcome{{Platform: "linux/arm/v7", Target: "system", Scenario: "a", Verdict: promote.Fail}}, []promote.Outcome{{Platform: "linux/arm/v7", Target: "system", Scenario: "a", Verdict: promote.Fail}}), Run{})
	e, err := Seal(context.Background(), tr, mustSigner(t, priv, "pw"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(e.Raw, mustVerifier(t, pub)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := Open(e.Raw, mustVerifier(t, otherPub)); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("Open with another key: %v", err)
	}
	tampered := tamper(t, e.Raw)
	if _, err := Open(tampered, mustVerifier(t, pub)); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("Open of a tampered payload: %v", err)
	}
	u, err := Seal(context.Background(), tr, nil)
	if err != nil || u.Signed || isSigned(u.Raw) {
		t.Fatalf("unsigned Seal: %+v, %v", u, err)
	}
	if _, err := Open(u.Raw, mustVerifier(t, pub)); !errors.Is(err, ErrUnsigned) {
		t.Errorf("Open of an unsigned envelope: %v", err)
	}
	if st, err := Open(u.Raw, nil); err != nil || st.GetPredicateType() != TestResultPredicateType {
		t.Errorf("reading an unsigned envelope without a key: %v", err)
	}
	var env ssldsse.Envelope
	json.Unmarshal(e.Raw, &env)
	env.PayloadType = "text/plain"
	wrongType, _ := json.Marshal(env)
	if _, err := Open(wrongType, mustVerifier(t, pub)); err == nil || !strings.Contains(err.Error(), "payload type") {
		t.Errorf("Open of another payload type: %v", err)
	}
}

// tamper turns FAILED into PASSED inside a signed envelope, keeping the
// signature: what someone would do to get a failing image admitted.
func tamper(t *testing.T, raw []byte) []byte {
	t.Helper()
	var env ssldsse.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	p, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(p), `"FAILED"`, `"PASSED"`, 1)
	if changed == string(p) {
		t.Fatalf("nothing to tamper with in %s", p)
	}
	env.Payload = base64.StdEncoding.EncodeToString([]byte(changed))
	out, _ := json.Marshal(env)
	return out
}
