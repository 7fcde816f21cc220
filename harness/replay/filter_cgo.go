//go:build cgo

package replay

import (
	"fmt"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// CompileFilter compiles a tcpdump expression for Ethernet frames with
// libpcap (pcap_compile, no capture device needed: the compiler the app
// under test uses) and returns a matcher that runs the program in
// x/net/bpf's pure-Go VM; the matcher is safe for concurrent use. Replay
// filters and the scenarios' expect_frames filters both compile here.
// A build without cgo has no compiler: it returns ErrNoFilterCompiler.
func CompileFilter(expr string) (func([]byte) bool, error) {
	ins, err := pcap.CompileBPFFilter(layers.LinkTypeEthernet, MaxFrame, expr)
	if err != nil {
		return nil, err
	}
	raw := make([]bpf.Instruction, len(ins))
	for i, in := range ins {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}.Disassemble()
	}
	vm, err := bpf.NewVM(raw)
	if err != nil {
		return nil, fmt.Errorf("libpcap's program does not load: %w", err)
	}
	return func(b []byte) bool {
		n, err := vm.Run(b)
		return err == nil && n > 0
	}, nil
}
