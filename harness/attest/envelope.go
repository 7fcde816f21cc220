package attest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	intoto "github.com/in-toto/attestation/go/v1"
	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
)

// Envelope is one statement in its DSSE envelope, as stored.
type Envelope struct {
	// Raw is the envelope's JSON, exactly as stored (and signed over).
	Raw []byte
	// PredicateType is the statement's, for the predicateType annotation
	// cosign and the policy engines filter on.
	PredicateType string
	// Signed is false for an envelope without signatures.
	Signed bool
}

// Seal wraps the statement in a DSSE envelope signed with s, or, when s is
// nil, in an envelope without any signature (which every verifier
// rejects: "unsigned").
func Seal(ctx context.Context, st *intoto.Statement, s *Signer) (Envelope, error) {
	payload, err := Marshal(st)
	if err != nil {
		return Envelope{}, err
	}
	e := Envelope{PredicateType: st.GetPredicateType(), Signed: s != nil}
	if s == nil {
		e.Raw, err = json.Marshal(ssldsse.Envelope{
			PayloadType: PayloadType,
			Payload:     base64.StdEncoding.EncodeToString(payload),
			Signatures:  []ssldsse.Signature{},
		})
		return e, err
	}
	e.Raw, err = sigdsse.WrapSigner(s.sv, PayloadType).SignMessage(bytes.NewReader(payload), sigopts.WithContext(ctx))
	if err != nil {
		return Envelope{}, fmt.Errorf("signing the %s statement with %s: %w", st.GetPredicateType(), s.Ref, err)
	}
	return e, nil
}

// ErrUnsigned is Open's error for an envelope without signatures.
var ErrUnsigned = errors.New("the attestation is not signed")

// Open checks the envelope's signature with v and returns the statement it
// carries, parsed and validated with in-toto's types. Nothing of the
// payload is read before the signature holds. With a nil v the signature
// is not checked (for "attest show" without --key).
func Open(raw []byte, v *Verifier) (*intoto.Statement, error) {
	var env ssldsse.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("DSSE payload type is %q, want %s", env.PayloadType, PayloadType)
	}
	var payload []byte
	if v == nil {
		p, err := env.DecodeB64Payload()
		if err != nil {
			return nil, fmt.Errorf("decoding the DSSE payload: %w", err)
		}
		payload = p
	} else {
		if len(env.Signatures) == 0 {
			return nil, ErrUnsigned
		}
		wv := sigdsse.WrapVerifier(v.v, sigdsse.WithExpectedPayloadType(PayloadType), sigdsse.WithDecodedPayload(&payload))
		if err := wv.VerifySignature(bytes.NewReader(raw), nil); err != nil {
			return nil, fmt.Errorf("the signature does not verify with %s (signed by another key, or the payload was changed after signing): %w", v.Ref, err)
		}
	}
	return ParseStatement(payload)
}

// isSigned reports whether the envelope carries at least one signature.
func isSigned(raw []byte) bool {
	var env ssldsse.Envelope
	return json.Unmarshal(raw, &env) == nil && len(env.Signatures) > 0
}
