// Command hil-agent is hil's helper on a board, built by the device target
// for the board's architecture (static, no cgo). See package agent.
package main

import (
	"context"
	"os"

	"github.com/hilproject/hil/harness/target/device/agent"
)

func main() {
	os.Exit(agent.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
