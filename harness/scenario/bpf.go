package scenario

import (
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcap"
)

// compileBPF compiles a tcpdump-style filter for Ethernet frames with
// libpcap (the same compiler the app under test uses) and returns a matcher.
func compileBPF(expr string) (func([]byte) bool, error) {
	bpf, err := pcap.NewBPF(layers.LinkTypeEthernet, 65535, expr)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex // pcap_offline_filter on one program is not documented as reentrant
	return func(b []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		return bpf.Matches(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(b), Length: len(b)}, b)
	}, nil
}
