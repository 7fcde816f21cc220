package attest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	intoto "github.com/in-toto/attestation/go/v1"

	"github.com/hilproject/hil/harness/promote"
)

// Attester is the gate's promote.Attester: it builds the test-result and
// detail statements, seals them (signed with the key, or unsigned) and
// stores them on the tested digest.
type Attester struct {
	signer *Signer
	run    Run
}

// Option configures an Attester.
type Option func(*Attester)

// WithSigner signs the statements; without it they are stored unsigned.
func WithSigner(s *Signer) Option { return func(a *Attester) { a.signer = s } }

// WithRunURL sets the predicate's url (the CI run).
func WithRunURL(u string) Option { return func(a *Attester) { a.run.URL = u } }

// WithTool names the tester (hil, its version and digest) as the first
// configuration entry.
func WithTool(r promote.Resource) Option { return func(a *Attester) { a.run.Tool = &r } }

// NewAttester returns an Attester.
func NewAttester(opts ...Option) *Attester {
	a := &Attester{}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Signed reports whether the Attester signs.
func (a *Attester) Signed() bool { return a.signer != nil }

// Attest implements promote.Attester.
func (a *Attester) Attest(ctx context.Context, pin promote.Pinned, d *promote.Decision) (string, error) {
	if pin.Registry == nil {
		return "", fmt.Errorf("attesting %s: no registry access", pin.Digest)
	}
	tr, det, err := Statements(pin, d, a.run)
	if err != nil {
		return "", err
	}
	var envs []Envelope
	for _, st := range []*intoto.Statement{tr, det} {
		e, err := Seal(ctx, st, a.signer)
		if err != nil {
			return "", err
		}
		envs = append(envs, e)
	}
	result, _, _, _ := Tally(d)
	at, err := Store(ctx, pin.Registry, pin.Digest, pin.Descriptor, envs, result)
	if err != nil {
		return "", err
	}
	return at.String(), nil
}

// RunURLFromEnv is the URL of the CI run hil runs in, when it can tell:
// GitHub Actions' GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/
// GITHUB_RUN_ID (with /attempts/N past the first attempt).
func RunURLFromEnv() string {
	server, repo, id := os.Getenv("GITHUB_SERVER_URL"), os.Getenv("GITHUB_REPOSITORY"), os.Getenv("GITHUB_RUN_ID")
	if server == "" || repo == "" || id == "" {
		return ""
	}
	u := strings.TrimRight(server, "/") + "/" + repo + "/actions/runs/" + id
	if a := os.Getenv("GITHUB_RUN_ATTEMPT"); a != "" && a != "1" {
		u += "/attempts/" + a
	}
	return u
}

// ExecutableResource describes the running program (name, version, the
// sha256 of its binary) as a configuration entry.
func ExecutableResource(name, version string) (promote.Resource, error) {
	r := promote.Resource{Name: name, Kind: "hil", Annotations: map[string]string{"version": version}}
	exe, err := os.Executable()
	if err != nil {
		return r, fmt.Errorf("locating the running binary: %w", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		return r, fmt.Errorf("hashing the running binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return r, fmt.Errorf("hashing the running binary: %w", err)
	}
	r.Digest = map[string]string{"sha256": hex.EncodeToString(h.Sum(nil))}
	return r, nil
}
