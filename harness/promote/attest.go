package promote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// StatementType is the in-toto Statement v1 type.
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateType names hil's test-result predicate.
	PredicateType = "https://hil.dev/test-result/v1"
	// ArtifactType is the OCI artifactType of the referrer hil attaches.
	ArtifactType = "application/vnd.in-toto+json"
	// maxStatementBytes bounds what "attest show" reads from a registry.
	maxStatementBytes = 16 << 20
)

// Statement is an in-toto Statement v1 carrying hil's test result.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject names the tested artifact.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate is what hil found about the subject.
type Predicate struct {
	// Result is "pass" when every required platform passed, else "fail".
	Result    string `json:"result"`
	Reason    string `json:"reason"`
	Candidate string `json:"candidate"`
	// Platforms are the required platforms; PlatformsPresent all those the
	// artifact holds.
	Platforms        []string          `json:"platforms"`
	PlatformsPresent []string          `json:"platformsPresent,omitempty"`
	Targets          []string          `json:"targets,omitempty"`
	Scenarios        []string          `json:"scenarios,omitempty"`
	Outcomes         []Outcome         `json:"outcomes"`
	Fixtures         map[string]string `json:"fixtures,omitempty"`
	Attempts         int               `json:"attempts,omitempty"`
	HIL              HILInfo           `json:"hil"`
	Started          time.Time         `json:"startedOn"`
	Finished         time.Time         `json:"finishedOn"`
	Report           json.RawMessage   `json:"report,omitempty"`
}

// HILInfo identifies the tester.
type HILInfo struct {
	Version string `json:"version"`
}

func statementFor(pin Pinned, d *Decision, version string) Statement {
	result := "pass"
	if len(d.Failures) > 0 {
		result = "fail"
	}
	var scen []string
	seen := map[string]bool{}
	for _, o := range d.Result.Outcomes {
		if !seen[o.Scenario] {
			seen[o.Scenario] = true
			scen = append(scen, o.Scenario)
		}
	}
	var required []string
	for _, p := range pin.Required {
		required = append(required, p.String())
	}
	reason := d.Reason
	if result == "pass" {
		reason = "every required platform passed"
	}
	return Statement{
		Type: StatementType,
		Subject: []Subject{{
			Name:   pin.Digest.Context().Name(),
			Digest: map[string]string{pin.Descriptor.Digest.Algorithm: pin.Descriptor.Digest.Hex},
		}},
		PredicateType: PredicateType,
		Predicate: Predicate{
			Result:           result,
			Reason:           reason,
			Candidate:        pin.Ref,
			Platforms:        required,
			PlatformsPresent: d.Platforms,
			Targets:          d.Result.Targets,
			Scenarios:        scen,
			Outcomes:         d.Result.Outcomes,
			Fixtures:         d.Result.Fixtures,
			Attempts:         d.Attempts,
			HIL:              HILInfo{Version: version},
			Started:          d.Result.Started,
			Finished:         d.Result.Finished,
			Report:           d.Result.Report,
		},
	}
}

// rawManifest is a Taggable made of exact bytes.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// Attach pushes st as an OCI artifact whose subject is pin.Digest and
// returns the artifact's repo@digest. Registries with the referrers API
// index it themselves; for the others (Debian's docker-registry 2.8) the
// referrers tag schema (tag sha256-<hex>) is kept up to date.
func Attach(ctx context.Context, reg *Registry, pin Pinned, st Statement) (name.Digest, error) {
	repo := pin.Digest.Context()
	payload, err := json.Marshal(st)
	if err != nil {
		return name.Digest{}, fmt.Errorf("encoding the statement: %w", err)
	}
	body := static.NewLayer(payload, types.MediaType(ArtifactType))
	empty := static.NewLayer([]byte("{}"), types.OCIEmptyJSON)
	for _, l := range []v1.Layer{empty, body} {
		if err := remote.WriteLayer(repo, l, reg.Remote(ctx)...); err != nil {
			return name.Digest{}, fmt.Errorf("uploading the attestation to %s: %w", repo, err)
		}
	}
	bodyDesc, err := describe(body)
	if err != nil {
		return name.Digest{}, err
	}
	emptyDesc, err := describe(empty)
	if err != nil {
		return name.Digest{}, err
	}
	subject := pin.Descriptor
	subject.Platform, subject.Annotations, subject.URLs, subject.Data = nil, nil, nil, nil
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        emptyDesc,
		Layers:        []v1.Descriptor{bodyDesc},
		Subject:       &subject,
		Annotations: map[string]string{
			"org.opencontainers.image.created": time.Now().UTC().Format(time.RFC3339Nano),
			"dev.hil.result":                   st.Predicate.Result,
		},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return name.Digest{}, fmt.Errorf("encoding the attestation manifest: %w", err)
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return name.Digest{}, err
	}
	at := repo.Digest(h.String())
	if err := remote.Put(at, rawManifest{raw, types.OCIManifestSchema1}, reg.Remote(ctx)...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing the attestation manifest to %s: %w", repo, err)
	}
	return at, nil
}

func describe(l v1.Layer) (v1.Descriptor, error) {
	h, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	sz, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: sz}, nil
}

// Attestation is one test result found attached to a digest.
type Attestation struct {
	// Digest is the referrer artifact, repo@sha256:...
	Digest    name.Digest
	Created   string
	Statement Statement
	// Raw is the statement exactly as stored.
	Raw []byte
}

// Find returns the hil test results attached to what ref points at (a tag
// is resolved to its digest first), oldest first. It asks the referrers API
// and falls back to the referrers tag schema when the registry lacks it.
func Find(ctx context.Context, reg *Registry, ref string) (name.Digest, []Attestation, error) {
	r, err := reg.ParseReference(ref)
	if err != nil {
		return name.Digest{}, nil, err
	}
	desc, err := remote.Head(r, reg.Remote(ctx)...)
	if err != nil {
		return name.Digest{}, nil, fmt.Errorf("resolving %s: %w", ref, err)
	}
	subject := r.Context().Digest(desc.Digest.String())
	// No server-side artifactType filter: some registries (go-containerregistry's
	// own) report the config media type as artifactType instead of the
	// manifest's, so the list is filtered here and each manifest is checked.
	idx, err := remote.Referrers(subject, reg.Remote(ctx)...)
	if err != nil {
		return subject, nil, fmt.Errorf("listing what refers to %s: %w", subject, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return subject, nil, fmt.Errorf("reading the referrers of %s: %w", subject, err)
	}
	var out []Attestation
	for _, m := range im.Manifests {
		if m.ArtifactType != "" && m.ArtifactType != ArtifactType && m.ArtifactType != string(types.OCIEmptyJSON) {
			continue // a signature, an SBOM, ...: not ours
		}
		a, err := fetchAttestation(ctx, reg, subject, r.Context().Digest(m.Digest.String()))
		if err != nil {
			return subject, out, err
		}
		if a != nil {
			out = append(out, *a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created < out[j].Created })
	return subject, out, nil
}

func fetchAttestation(ctx context.Context, reg *Registry, subject, at name.Digest) (*Attestation, error) {
	desc, err := remote.Get(at, reg.Remote(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("fetching attestation %s: %w", at, err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, fmt.Errorf("decoding attestation manifest %s: %w", at, err)
	}
	// A referrer list is only an index; trust the artifact's own subject.
	if m.Subject == nil || m.Subject.Digest.String() != subject.DigestStr() {
		return nil, nil
	}
	for _, l := range m.Layers {
		if l.MediaType != types.MediaType(ArtifactType) {
			continue
		}
		if l.Size > maxStatementBytes {
			return nil, fmt.Errorf("attestation %s holds a %d-byte statement, more than the %d bytes hil reads", at, l.Size, maxStatementBytes)
		}
		layer, err := remote.Layer(at.Context().Digest(l.Digest.String()), reg.Remote(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("fetching statement of %s: %w", at, err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			return nil, fmt.Errorf("fetching statement of %s: %w", at, err)
		}
		raw, err := io.ReadAll(io.LimitReader(rc, maxStatementBytes+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("reading statement of %s: %w", at, err)
		}
		if h, _, _ := v1.SHA256(bytes.NewReader(raw)); h != l.Digest {
			return nil, fmt.Errorf("statement of %s hashes to %s, expected %s", at, h, l.Digest)
		}
		var st Statement
		if err := json.Unmarshal(raw, &st); err != nil {
			return nil, fmt.Errorf("decoding statement of %s: %w", at, err)
		}
		if st.PredicateType != PredicateType {
			return nil, nil
		}
		return &Attestation{Digest: at, Created: m.Annotations["org.opencontainers.image.created"], Statement: st, Raw: raw}, nil
	}
	return nil, nil
}
