//go:build !linux

package agent

import (
	"context"
	"fmt"
	"io"
	"runtime"
)

// Main says that the agent runs on a Linux board only, and fails.
func Main(_ context.Context, _ []string, _ io.Reader, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "hil-agent runs on the board (Linux: network namespaces, veth, AF_PACKET), not on %s\n", runtime.GOOS)
	return 2
}
