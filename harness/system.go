package harness

import (
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/system"
)

func newSystemTarget() (target.Target, error) { return system.New(), nil }
