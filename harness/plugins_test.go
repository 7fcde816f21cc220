package harness

// The container and device targets are plug-ins: a program has them when
// it imports their packages. This package's tests run scenarios on them.
import (
	_ "github.com/hilproject/hil/harness/target/container"
	_ "github.com/hilproject/hil/harness/target/device"
)
