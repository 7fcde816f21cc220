package hilginkgo

import (
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

// Every label Specs makes is one Ginkgo accepts: platforms, board
// instances and tags as scenarios spell them.
func TestLabel(t *testing.T) {
	for in, want := range map[string]string{
		"linux/arm/v7":    "linux-arm-v7",
		"device@pi-lab-1": "device@pi-lab-1",
		" capture ":       "capture",
		"a&b|c!(d),e":     "a-b-c--d--e",
		":odd":            "odd",
		"key:":            "key",
		"os:linux":        "os:linux",
		"board:pi3b+":     "board:pi3b+",
		"board:pi4/64":    "board:pi4-64",
	} {
		got := Label(in)
		if got != want {
			t.Errorf("Label(%q) = %q, want %q", in, got, want)
		}
		if _, err := types.ValidateAndCleanupLabel(got, types.CodeLocation{}); err != nil {
			t.Errorf("Ginkgo refuses %q: %v", got, err)
		}
	}
}
