//go:build linux

package user_test

import (
	"testing"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/targettest"
	conformance "github.com/hilproject/hil/harness/target/targettest"
	"github.com/hilproject/hil/harness/target/user"
	"github.com/hilproject/hil/internal/testenv"
)

// The user target keeps the target contract (the amd64 sample runs
// natively, so it captures and serves).
func TestConformance(t *testing.T) {
	testenv.RequireRoot(t)
	conformance.Conformance(t, func(*testing.T) target.Target { return user.New() }, targettest.SampleApp(t, "linux/amd64"))
}
