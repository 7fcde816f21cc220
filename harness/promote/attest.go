package promote

import "context"

// Attester records a gate's result about the tested digest where others
// can find and check it. harness/attest is hil's: an in-toto test-result
// statement in a DSSE envelope, stored as an OCI referrer and in cosign's
// tag layout. The gate calls it once the test ran (not on a dry run),
// before it writes the tag; for a pass an error stops the promotion, for
// a refusal it is only logged.
type Attester interface {
	// Attest stores what d says about pin.Digest and returns where it
	// went (repo@sha256:... of what it wrote), for the decision.
	Attest(ctx context.Context, pin Pinned, d *Decision) (string, error)
}

// Resource is one input a test ran with, named without local paths and
// pinned by digest: a scenario file, a fixture, the kernel package, the
// guest init, the emulator, a board profile. Attestations list them as
// the test's configuration.
type Resource struct {
	// Name is portable: a path relative to the scenario directory, a
	// Debian package name, a program name; never a path on this host.
	Name string `json:"name"`
	// Kind says what it is: scenario, fixture, kernel, init, emulator,
	// board, hil.
	Kind string `json:"kind,omitempty"`
	// Digest maps an algorithm (sha256) to the hex digest.
	Digest map[string]string `json:"digest,omitempty"`
	// URI says where it can be fetched, when it can.
	URI string `json:"uri,omitempty"`
	// Annotations carry what has no digest, e.g. the emulator's version.
	Annotations map[string]string `json:"annotations,omitempty"`
}
