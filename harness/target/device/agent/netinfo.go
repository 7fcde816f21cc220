package agent

import "github.com/hilproject/hil/harness/link"

// NetInfo is what `hil-agent netinfo` prints: the app interface's receive
// coalescing (read with ethtool's ioctls) and its receive counters.
type NetInfo struct {
	RxOffload string        `json:"rx_offload"`
	Features  string        `json:"features"`
	Counters  link.Counters `json:"counters"`
}
