package main

// hil's CLI has every target and image source; a program built on the
// library has the ones it imports (see target.Register).
import (
	_ "github.com/hilproject/hil/harness/image/dockerdaemon"
	_ "github.com/hilproject/hil/harness/target/container"
	_ "github.com/hilproject/hil/harness/target/device"
)
