package system

import (
	"testing"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/targettest"
	conformance "github.com/hilproject/hil/harness/target/targettest"
)

// The system target keeps the target contract, with the ARM sample on a
// real ARM kernel (warm boots from the snapshot after the first).
func TestConformance(t *testing.T) {
	conformance.Conformance(t, func(*testing.T) target.Target { return New() }, targettest.SampleApp(t, "linux/arm/v7"))
}
