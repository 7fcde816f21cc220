//go:build !cgo

package main

import (
	"fmt"
	"os"
)

// pcapwatch captures through libpcap (cgo); a build without cgo says so.
func main() {
	fmt.Fprintln(os.Stderr, "pcapwatch: this build has no libpcap (CGO_ENABLED=0): build it with cgo against libpcap")
	os.Exit(2)
}
