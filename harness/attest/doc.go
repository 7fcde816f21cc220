// Package attest makes hil's gate results verifiable by the supply-chain
// tools teams already run (cosign, Kyverno, sigstore's policy-controller)
// and by "hil attest verify".
//
// A gate's result becomes two in-toto Statement v1 documents about the
// tested digest:
//
//   - the standard test-result predicate
//     (https://in-toto.io/attestation/test-result/v0.1): result PASSED,
//     WARNED or FAILED; configuration, the inputs by digest (scenario
//     files, fixtures, kernel package, guest init, emulator version, board
//     profiles, hil itself); url, the CI run; and passedTests, warnedTests,
//     failedTests named scenario/target/board/platform. It is built and
//     parsed with in-toto's own Go types (github.com/in-toto/attestation).
//   - hil's detail predicate (https://hil.dev/test-detail/v1): every
//     verdict with its reason, attempts, the runner's step results.
//
// Each statement is wrapped in a DSSE envelope (payload type
// application/vnd.in-toto+json), signed with the user's key through
// sigstore's signature and dsse packages, or left unsigned (an envelope
// with no signature, which no verifier accepts). The envelopes are stored
// twice, the way the tools look for them:
//
//   - as an OCI 1.1 referrer of the digest (artifactType
//     application/vnd.in-toto+json, one layer per envelope); registries
//     without the referrers API get the referrers tag schema (tag
//     sha256-<hex>) through go-containerregistry;
//   - in cosign's tag layout: layers of media type
//     application/vnd.dsse.envelope.v1+json with a predicateType
//     annotation, appended to the image at tag sha256-<hex>.att, where
//     cosign tree, cosign download attestation and cosign
//     verify-attestation look by default.
//
// Verify answers "did this digest pass, signed by our key (on these
// boards)?" the way a policy engine would.
package attest
