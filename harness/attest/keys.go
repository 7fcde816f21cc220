package attest

import (
	"bytes"
	"crypto"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// PasswordEnv is where the password of an encrypted cosign key comes
// from, as with cosign itself.
const PasswordEnv = "COSIGN_PASSWORD"

// Signer signs statements with the user's private key.
type Signer struct {
	sv signature.SignerVerifier
	// Ref is the key as the user named it (for messages).
	Ref string
}

// Verifier checks signatures with the team's public key.
type Verifier struct {
	v   signature.Verifier
	Ref string
}

// PassFunc returns the password of an encrypted key.
type PassFunc func() ([]byte, error)

// PasswordFromEnv reads COSIGN_PASSWORD. An unset variable is an error (a
// CI job has no terminal to ask on); an empty one is the empty password
// cosign generate-key-pair accepts.
func PasswordFromEnv() ([]byte, error) {
	p, ok := os.LookupEnv(PasswordEnv)
	if !ok {
		return nil, fmt.Errorf("the key is encrypted: set %s to its password (as for cosign)", PasswordEnv)
	}
	return []byte(p), nil
}

// kmsSchemes are the key references sigstore's KMS providers take. Each
// one signs through its cloud service over the network and brings that
// cloud's SDK, so hil does not link them: a CI that keeps its key in a
// KMS signs with cosign instead (see README).
var kmsSchemes = []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://", "k8s://", "pkcs11:", "gitlab://", "env://"}

func refuseKMS(ref string) error {
	for _, s := range kmsSchemes {
		if strings.HasPrefix(ref, s) {
			return fmt.Errorf("key %s: %s keys are not supported by hil (sigstore's KMS providers sign over the network through the cloud's SDK); give a cosign key pair file (cosign generate-key-pair) or a PKCS#8 PEM key, or sign with cosign attest", ref, strings.TrimRight(s, ":/"))
		}
	}
	return nil
}

// LoadSigner loads a private key file: a cosign key pair's private half
// (PEM "ENCRYPTED SIGSTORE PRIVATE KEY", or the older "ENCRYPTED COSIGN
// PRIVATE KEY", decrypted with pass), or an unencrypted PEM key (PKCS#8
// "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"). ECDSA, RSA and
// Ed25519 keys work; signatures use SHA-256, as cosign's do by default.
// Parsing and decryption are sigstore's (cryptoutils), the same code
// cosign uses.
func LoadSigner(path string, pass PassFunc) (*Signer, error) {
	if err := refuseKMS(path); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the signing key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("signing key %s is not PEM: want a cosign key pair file (cosign.key) or a PKCS#8 PEM private key", path)
	}
	switch block.Type {
	case "PUBLIC KEY":
		return nil, fmt.Errorf("signing key %s is a public key; --sign-key wants the private key (cosign.key), --key of \"hil attest verify\" the public one", path)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("signing key %s is an encrypted PKCS#8 key (openssl's format), which hil cannot decrypt: export it unencrypted, or import it with cosign import-key-pair", path)
	}
	pf := cryptoutils.PassFunc(func(bool) ([]byte, error) { return pass() })
	if pass == nil {
		pf = func(bool) ([]byte, error) { return nil, errors.New("no password given") }
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(raw, pf)
	if err != nil {
		if strings.Contains(block.Type, "ENCRYPTED") {
			return nil, fmt.Errorf("decrypting signing key %s (wrong %s?): %w", path, PasswordEnv, err)
		}
		return nil, fmt.Errorf("parsing signing key %s (%s): %w", path, block.Type, err)
	}
	sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return &Signer{sv: sv, Ref: path}, nil
}

// PublicKeyPEM is the signer's public key, PEM-encoded (what goes into
// cosign.pub and the policies).
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	pub, err := s.sv.PublicKey()
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

// LoadVerifier loads a public key file (PEM "PUBLIC KEY", as cosign.pub).
func LoadVerifier(path string) (*Verifier, error) {
	if err := refuseKMS(path); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the public key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("public key %s is not PEM: want the public key of the signing pair (cosign.pub)", path)
	}
	if strings.Contains(block.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("%s is a private key (%s); give the public key (cosign.pub): the private one stays with whoever signs", path, block.Type)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(bytes.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing public key %s: %w", path, err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return &Verifier{v: v, Ref: path}, nil
}
