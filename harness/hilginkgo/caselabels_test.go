package hilginkgo

import (
	"slices"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/scenario"
)

// A board case's spec is labelled board:NAME (the word size spelled with
// a dash), next to its target, platform and tags, so that
// --label-filter='board: containsAny pi4-64' selects it; a case without a
// board has no board: label.
func TestCaseLabelsNameTheBoard(t *testing.T) {
	b, err := board.Builtin().Lookup("pi4/64")
	if err != nil {
		t.Fatal(err)
	}
	sc := &scenario.Scenario{Name: "arp-sweep", Tags: []string{"capture"}}
	got := labelsOf(caseLabels(scenario.Case{Scenario: sc, Target: "system", Platform: "linux/arm64", Board: &b}))
	want := []string{"system", "linux-arm64", "board:pi4-64", "capture"}
	if !slices.Equal([]string(got), want) {
		t.Errorf("labels %q, want %q", got, want)
	}
	for _, l := range got {
		if _, err := types.ValidateAndCleanupLabel(l, types.CodeLocation{}); err != nil {
			t.Errorf("Ginkgo refuses %q: %v", l, err)
		}
	}
	filter, err := types.ParseLabelFilter("board: containsAny pi4-64")
	if err != nil {
		t.Fatal(err)
	}
	if !filter(got) {
		t.Errorf("board: containsAny pi4-64 does not select %q", got)
	}
	got = labelsOf(caseLabels(scenario.Case{Scenario: sc, Target: "system", Platform: "linux/arm/v7"}))
	if slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, "board:") }) || filter(got) {
		t.Errorf("a case without a board: %q", got)
	}
}
