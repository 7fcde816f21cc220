// Package images holds the sample app, its image builder (images/build) and
// the record the builder leaves beside the images it built (images.json),
// which tests and tools read to find them.
package images

import (
	"encoding/json"
	"os"
)

// Built is one entry of images.json: an image the builder made.
type Built struct {
	Name      string              `json:"name"`
	Breaks    string              `json:"breaks,omitempty"`
	Digest    string              `json:"digest"`
	Platforms []string            `json:"platforms"`
	Manifests map[string]string   `json:"manifests"`
	Layout    string              `json:"layout"`
	Tarball   string              `json:"tarball"`
	Tags      map[string]string   `json:"tags"`
	Binaries  map[string]string   `json:"binaries"`
	Packages  map[string][]string `json:"packages"`
}

// ReadRecord reads an images.json.
func ReadRecord(path string) ([]*Built, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var built []*Built
	return built, json.Unmarshal(b, &built)
}
