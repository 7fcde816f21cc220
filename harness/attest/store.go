package attest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hilproject/hil/harness/promote"
)

const (
	// EnvelopeMediaType is the layer media type of a DSSE envelope, as
	// cosign writes attestations.
	EnvelopeMediaType = "application/vnd.dsse.envelope.v1+json"
	// PredicateTypeAnnotation is the layer annotation cosign sets to the
	// statement's predicate type.
	PredicateTypeAnnotation = "predicateType"
	// cosignSignatureAnnotation is set on every cosign layer; an
	// attestation's signature is inside the envelope, so it is empty.
	cosignSignatureAnnotation = "dev.cosignproject.cosign/signature"
	createdAnnotation         = "org.opencontainers.image.created"
	resultAnnotation          = "dev.hil.result"
	// AttestationTagSuffix is cosign's: attestations of sha256:<hex> live
	// at tag sha256-<hex>.att.
	AttestationTagSuffix = ".att"
	// maxEnvelopeBytes bounds what is read of one envelope.
	maxEnvelopeBytes = 16 << 20
	// maxAttLayers is cosign's limit on the layers of a .att image.
	maxAttLayers = 1000
)

// AttestationTag is the tag cosign keeps the attestations of digest at.
func AttestationTag(digest name.Digest) (name.Tag, error) {
	h, err := v1.NewHash(digest.DigestStr())
	if err != nil {
		return name.Tag{}, fmt.Errorf("reading digest %s: %w", digest, err)
	}
	return digest.Context().Tag(h.Algorithm + "-" + h.Hex + AttestationTagSuffix), nil
}

// Store writes the envelopes about subject (whose manifest descriptor is
// desc) where the tools look: one OCI 1.1 referrer holding all of them,
// and appended to cosign's sha256-<hex>.att image. It returns the
// referrer's repo@digest.
func Store(ctx context.Context, reg *promote.Registry, subject name.Digest, desc v1.Descriptor, envs []Envelope, result string) (name.Digest, error) {
	if len(envs) == 0 {
		return name.Digest{}, errors.New("no attestation to store")
	}
	created := time.Now().UTC().Format(time.RFC3339Nano)
	var adds []mutate.Addendum
	for _, e := range envs {
		l := static.NewLayer(e.Raw, EnvelopeMediaType)
		ann := map[string]string{
			PredicateTypeAnnotation:   e.PredicateType,
			cosignSignatureAnnotation: "",
			createdAnnotation:         created,
		}
		adds = append(adds, mutate.Addendum{Layer: l, Annotations: ann})
	}
	at, err := writeReferrer(ctx, reg, subject, desc, adds, created, result)
	if err != nil {
		return name.Digest{}, err
	}
	if err := appendToAttTag(ctx, reg, subject, adds); err != nil {
		return at, err
	}
	return at, nil
}

// writeReferrer pushes an OCI 1.1 artifact (artifactType
// application/vnd.in-toto+json, as cosign's own referrer mode writes
// attestations) whose subject is the tested manifest. go-containerregistry
// keeps the referrers tag schema (tag sha256-<hex>) up to date on
// registries without the referrers API.
func writeReferrer(ctx context.Context, reg *promote.Registry, subject name.Digest, desc v1.Descriptor, adds []mutate.Addendum, created, result string) (name.Digest, error) {
	repo := subject.Context()
	emptyCfg := static.NewLayer([]byte("{}"), types.OCIEmptyJSON)
	var descs []v1.Descriptor
	for _, a := range append([]mutate.Addendum{{Layer: emptyCfg}}, adds...) {
		if err := remote.WriteLayer(repo, a.Layer, reg.Remote(ctx)...); err != nil {
			return name.Digest{}, fmt.Errorf("uploading the attestation to %s: %w", repo, err)
		}
		d, err := partial(a.Layer)
		if err != nil {
			return name.Digest{}, err
		}
		d.Annotations = a.Annotations
		descs = append(descs, d)
	}
	sub := v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  PayloadType,
		Config:        descs[0],
		Layers:        descs[1:],
		Subject:       &sub,
		Annotations:   map[string]string{createdAnnotation: created, resultAnnotation: result},
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

// appendToAttTag adds the envelopes as layers to the image at cosign's
// attestation tag, creating it (an OCI image with an empty config, as
// cosign's) when absent. Envelopes already there are not added again.
// Like cosign, it reads then writes the tag: two writers at the same
// moment can lose one of the two appends.
func appendToAttTag(ctx context.Context, reg *promote.Registry, subject name.Digest, adds []mutate.Addendum) error {
	tag, err := AttestationTag(subject)
	if err != nil {
		return err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	have := map[v1.Hash]bool{}
	img, err := remote.Image(tag, reg.Remote(ctx)...)
	switch {
	case err == nil:
		m, err := img.Manifest()
		if err != nil {
			return fmt.Errorf("reading %s: %w", tag, err)
		}
		if len(m.Layers)+len(adds) > maxAttLayers {
			return fmt.Errorf("%s already holds %d attestations; cosign reads at most %d", tag, len(m.Layers), maxAttLayers)
		}
		for _, l := range m.Layers {
			have[l.Digest] = true
		}
		base = img
	case isNotFound(err):
	default:
		return fmt.Errorf("reading %s: %w", tag, err)
	}
	var fresh []mutate.Addendum
	for _, a := range adds {
		h, err := a.Layer.Digest()
		if err != nil {
			return err
		}
		if !have[h] {
			fresh = append(fresh, a)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	out, err := mutate.Append(base, fresh...)
	if err != nil {
		return fmt.Errorf("adding the attestation to %s: %w", tag, err)
	}
	if err := remote.Write(tag, out, reg.Remote(ctx)...); err != nil {
		return fmt.Errorf("writing %s: %w", tag, err)
	}
	return nil
}

// Found is one envelope found attached to a digest.
type Found struct {
	Envelope []byte
	// LayerDigest is the envelope's digest; the same envelope found in
	// both places is listed once.
	LayerDigest v1.Hash
	// PredicateType is the layer's annotation (not signed: trust the
	// statement's own once it is verified).
	PredicateType string
	// Created is when hil stored it (annotation, not signed).
	Created string
	// Where lists the places it was found: repo@sha256:... of a referrer,
	// repo:sha256-<hex>.att.
	Where []string
}

// Find resolves ref to a digest and returns every DSSE envelope attached
// to it, in cosign's tag layout and as OCI referrers (through the
// referrers API, or the referrers tag schema where the registry lacks
// it), oldest first. A registry that cannot be reached, or a ref that
// does not resolve, is an error; nothing attached is an empty list.
func Find(ctx context.Context, reg *promote.Registry, ref string) (name.Digest, v1.Descriptor, []Found, error) {
	r, err := reg.ParseReference(ref)
	if err != nil {
		return name.Digest{}, v1.Descriptor{}, nil, err
	}
	desc, err := remote.Head(r, reg.Remote(ctx)...)
	if err != nil {
		return name.Digest{}, v1.Descriptor{}, nil, fmt.Errorf("resolving %s: %w", ref, err)
	}
	subject := r.Context().Digest(desc.Digest.String())
	var out []Found
	index := map[v1.Hash]int{}
	add := func(f Found) {
		if i, ok := index[f.LayerDigest]; ok {
			out[i].Where = append(out[i].Where, f.Where...)
			if out[i].Created == "" {
				out[i].Created = f.Created
			}
			return
		}
		index[f.LayerDigest] = len(out)
		out = append(out, f)
	}

	tag, err := AttestationTag(subject)
	if err != nil {
		return subject, *desc, nil, err
	}
	img, err := remote.Image(tag, reg.Remote(ctx)...)
	switch {
	case err == nil:
		m, err := img.Manifest()
		if err != nil {
			return subject, *desc, nil, fmt.Errorf("reading %s: %w", tag, err)
		}
		fs, err := readEnvelopes(ctx, reg, tag.Context(), m.Layers, "", tag.String())
		if err != nil {
			return subject, *desc, nil, err
		}
		for _, f := range fs {
			add(f)
		}
	case isNotFound(err):
	default:
		return subject, *desc, nil, fmt.Errorf("reading %s: %w", tag, err)
	}

	// No server-side artifactType filter: some registries report the
	// config media type as artifactType instead of the manifest's, so the
	// list is filtered here and each manifest checked.
	idx, err := remote.Referrers(subject, reg.Remote(ctx)...)
	if err != nil {
		return subject, *desc, nil, fmt.Errorf("listing what refers to %s: %w", subject, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return subject, *desc, nil, fmt.Errorf("reading the referrers of %s: %w", subject, err)
	}
	for _, md := range im.Manifests {
		if md.ArtifactType != "" && md.ArtifactType != PayloadType && md.ArtifactType != string(types.OCIEmptyJSON) {
			continue // a signature, an SBOM, ...: not ours
		}
		at := subject.Context().Digest(md.Digest.String())
		rd, err := remote.Get(at, reg.Remote(ctx)...)
		if isNotFound(err) {
			continue // deleted since the referrers tag schema listed it
		}
		if err != nil {
			return subject, *desc, nil, fmt.Errorf("fetching attestation %s: %w", at, err)
		}
		var m v1.Manifest
		if err := json.Unmarshal(rd.Manifest, &m); err != nil {
			return subject, *desc, nil, fmt.Errorf("decoding attestation manifest %s: %w", at, err)
		}
		// A referrer list is only an index; trust the artifact's own subject.
		if m.Subject == nil || m.Subject.Digest != desc.Digest {
			continue
		}
		fs, err := readEnvelopes(ctx, reg, subject.Context(), m.Layers, m.Annotations[createdAnnotation], at.String())
		if err != nil {
			return subject, *desc, nil, err
		}
		for _, f := range fs {
			add(f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created < out[j].Created })
	return subject, *desc, out, nil
}

func readEnvelopes(ctx context.Context, reg *promote.Registry, repo name.Repository, layers []v1.Descriptor, created, where string) ([]Found, error) {
	var out []Found
	for _, l := range layers {
		if l.MediaType != EnvelopeMediaType {
			continue
		}
		if l.Size > maxEnvelopeBytes {
			return nil, fmt.Errorf("%s holds a %d-byte attestation, more than the %d bytes hil reads", where, l.Size, maxEnvelopeBytes)
		}
		layer, err := remote.Layer(repo.Digest(l.Digest.String()), reg.Remote(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("fetching attestation %s of %s: %w", l.Digest, where, err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			return nil, fmt.Errorf("fetching attestation %s of %s: %w", l.Digest, where, err)
		}
		raw, err := io.ReadAll(io.LimitReader(rc, maxEnvelopeBytes+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("reading attestation %s of %s: %w", l.Digest, where, err)
		}
		if h, _, _ := v1.SHA256(bytes.NewReader(raw)); h != l.Digest {
			return nil, fmt.Errorf("attestation %s of %s hashes to %s", l.Digest, where, h)
		}
		c := l.Annotations[createdAnnotation]
		if c == "" {
			c = created
		}
		out = append(out, Found{Envelope: raw, LayerDigest: l.Digest, PredicateType: l.Annotations[PredicateTypeAnnotation], Created: c, Where: []string{where}})
	}
	return out, nil
}

func partial(l v1.Layer) (v1.Descriptor, error) {
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

// rawManifest is a Taggable made of exact bytes.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}
