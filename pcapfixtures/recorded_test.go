//go:build linux && cgo

package pcapfixtures_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hilproject/hil/pcapfixtures"
	"github.com/hilproject/hil/pcapfixtures/internal/recorded"
)

// Every recorded fixture is listed in recorded.json with its provenance,
// and its entry is exactly what the recorder derives from the committed
// file (frames, span, sha256, expected events): hand edits or a file
// swapped without its entry fail here. The recordings themselves cannot
// be reproduced (see TestGeneratorReproducesCommittedFiles for the
// generated ones).
func TestRecordedEntriesDescribeTheirFiles(t *testing.T) {
	t.Parallel()
	var names []string
	for _, fx := range pcapfixtures.Manifest() {
		if fx.Recorded == nil {
			continue
		}
		names = append(names, fx.Name)
		r := fx.Recorded
		if r.Traffic == "" || r.Capture == "" || !strings.Contains(r.Command, "record-real -only "+fx.Name) || r.Kernel == "" || r.Date == "" {
			t.Errorf("%s: incomplete provenance %+v", fx.Name, r)
		}
		got, err := recorded.Describe(filepath.Join(pcapfixtures.SourceDir(), fx.File))
		if err != nil {
			t.Fatal(err)
		}
		want := fx.Fixture
		got.Name, got.File, got.Description, got.Notes, got.Recorded = want.Name, want.File, want.Description, want.Notes, want.Recorded
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: recorded.json says\n  %+v\nthe file gives\n  %+v", fx.Name, want, got)
		}
		if fx.OversizeFrames != 0 {
			t.Errorf("%s: %d frames over 1514 bytes: the recorder turns offloads off so that none is", fx.Name, fx.OversizeFrames)
		}
	}
	if !reflect.DeepEqual(names, recorded.Recipes()) {
		t.Errorf("recorded fixtures %v, the recorder makes %v", names, recorded.Recipes())
	}
}
