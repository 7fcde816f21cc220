//go:build linux

package imgrun

import (
	"github.com/hilproject/hil/harness/link/veth"
	"github.com/hilproject/hil/internal/ethtool"
)

// CoalescingOff turns every receive-coalescing feature of the app's veth end
// off (veth has GRO off by default, but a host's udev rule or a later
// kernel may say otherwise: a frame replayed must be one frame captured)
// and puts what it read back into the device facts: rx_offload is "off"
// when none is active, else the names of those that are;
// rx_offload_features lists each. A feature that would not turn off is
// named in rx_offload_error, and the runner's delivery check sees it.
func CoalescingOff(s *Status, l *veth.Link) {
	fs, err := l.SetAppFeatures(ethtool.CoalescingOff())
	if fs == nil {
		s.Set("rx_offload", "unknown ("+err.Error()+")")
		return
	}
	if err != nil {
		s.Set("rx_offload_error", err.Error())
	}
	s.Set("rx_offload", fs.Coalescing())
	s.Set("rx_offload_features", fs.CoalescingState())
}
