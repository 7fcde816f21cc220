//go:build !linux

package main

import (
	"context"
	"fmt"
	"runtime"
)

func openReplayLink(context.Context, string, string, string) (replayLink, string, error) {
	return nil, "", fmt.Errorf("hil replay writes frames into a Linux interface or network namespace (AF_PACKET, veth): not available on %s", runtime.GOOS)
}
