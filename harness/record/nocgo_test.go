//go:build !cgo

package record

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// Without cgo there is no libpcap: Start says so and writes nothing.
func TestStartWithoutCgo(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.pcap")
	_, err := Start(context.Background(), "lo", out)
	if err == nil || !strings.Contains(err.Error(), "needs libpcap on Linux") || !strings.Contains(err.Error(), "cgo false") {
		t.Fatalf("expected the missing libpcap named, found %v", err)
	}
}
