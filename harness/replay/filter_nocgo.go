//go:build !cgo

package replay

import "fmt"

func compileFilter(expr string) (func([]byte) bool, error) {
	return nil, fmt.Errorf("replay: filter %q: BPF filters are compiled by libpcap, which this build (CGO_ENABLED=0) does not link", expr)
}
