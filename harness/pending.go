package harness

import (
	"errors"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
)

// Stand-ins until the replay engine and the system target land in the tree.

func newSystemTarget() (target.Target, error) {
	return nil, target.Infra(errors.New("the system target (harness/target/system) is not in this build yet"))
}

// Replayer is the replay engine as the runner's Replayer (nil until
// harness/replay lands: replay steps are then infra errors).
func Replayer() scenario.Replayer { return nil }
