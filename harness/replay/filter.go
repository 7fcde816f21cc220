package replay

import (
	"errors"
	"fmt"
)

// ErrNoFilterCompiler is CompileFilter's error in a build without cgo.
var ErrNoFilterCompiler = errors.New("BPF filters are compiled by libpcap, which this build (CGO_ENABLED=0) does not link: build hil with cgo and libpcap-dev")

// compileFilter is CompileFilter with the expression named in the error.
func compileFilter(expr string) (func([]byte) bool, error) {
	m, err := CompileFilter(expr)
	if err != nil {
		return nil, fmt.Errorf("replay: filter %q: %w", expr, err)
	}
	return m, nil
}
