//go:build !cgo

package replay

// CompileFilter compiles BPF filters with libpcap, which a build without
// cgo does not link: it always returns ErrNoFilterCompiler.
func CompileFilter(string) (func([]byte) bool, error) { return nil, ErrNoFilterCompiler }
