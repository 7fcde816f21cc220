package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hilproject/hil/harness/link/veth"
)

func openReplayLink(ctx context.Context, iface, netnsName, appIface string) (replayLink, string, error) {
	if iface != "" {
		l, err := veth.Attach(ctx, iface)
		return l, "", err
	}
	nsPath := netnsName
	if !strings.Contains(netnsName, "/") {
		nsPath = filepath.Join("/run/netns", netnsName)
	}
	if _, err := os.Stat(nsPath); err != nil {
		return nil, "", fmt.Errorf("network namespace %s: %w (create it with ip netns add %s)", netnsName, err, netnsName)
	}
	if peer, err := veth.PeerOf(nsPath, appIface); err == nil {
		l, err := veth.Attach(ctx, peer)
		return l, "", err
	}
	l, err := veth.New(ctx, veth.WithNetNSPath(nsPath), veth.WithName(appIface))
	if err != nil {
		return nil, "", err
	}
	return l, fmt.Sprintf("created veth pair %s <-> %s:%s for this replay; it is removed at the end", l.HostIface(), netnsName, appIface), nil
}
