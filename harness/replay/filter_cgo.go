//go:build cgo

package replay

import (
	"fmt"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// compileFilter compiles a tcpdump expression with libpcap (pcap_compile,
// no capture device needed) and runs it in x/net/bpf's pure-Go VM.
func compileFilter(expr string) (func([]byte) bool, error) {
	ins, err := pcap.CompileBPFFilter(layers.LinkTypeEthernet, MaxFrame, expr)
	if err != nil {
		return nil, fmt.Errorf("replay: filter %q: %w", expr, err)
	}
	raw := make([]bpf.Instruction, len(ins))
	for i, in := range ins {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}.Disassemble()
	}
	vm, err := bpf.NewVM(raw)
	if err != nil {
		return nil, fmt.Errorf("replay: filter %q: libpcap's program does not load: %w", expr, err)
	}
	return func(b []byte) bool {
		n, err := vm.Run(b)
		return err == nil && n > 0
	}, nil
}
