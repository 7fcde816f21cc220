package harness

import (
	"errors"

	"github.com/hilproject/hil/harness/target"
)

// Stand-in until the system target lands in the tree.

func newSystemTarget() (target.Target, error) {
	return nil, target.Infra(errors.New("the system target (harness/target/system) is not in this build yet"))
}
