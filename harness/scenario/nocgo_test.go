//go:build !cgo

package scenario

import (
	"strings"
	"testing"
)

// Without cgo there is no BPF compiler: a filter is an error that says so
// when the scenario is read, not a filter that matches nothing.
func TestFilterWithoutCgo(t *testing.T) {
	_, err := Parse("x.yaml", []byte("name: a\nsteps:\n  - expect_frames: {filter: arp}\n"))
	if err == nil || !strings.Contains(err.Error(), `x.yaml:3:29: steps[0].expect_frames.filter: cannot compile "arp"`) || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("expected the missing compiler named, found %v", err)
	}
}
