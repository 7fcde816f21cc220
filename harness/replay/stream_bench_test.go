//go:build linux

package replay

import (
	"bufio"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// writeBenchPcap writes n 60-byte frames 1 µs apart.
func writeBenchPcap(b *testing.B, n int) string {
	p := filepath.Join(b.TempDir(), "b.pcap")
	f, _ := os.Create(p)
	w := bufio.NewWriter(f)
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], 1)
	w.Write(h)
	rec := make([]byte, 76)
	binary.LittleEndian.PutUint32(rec[8:], 60)
	binary.LittleEndian.PutUint32(rec[12:], 60)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(rec[4:], uint32(i%1000000))
		w.Write(rec)
	}
	w.Flush()
	f.Close()
	return p
}

// BenchmarkReadAhead is the reader's side of a streamed replay: frames
// from disk (the page cache) into send batches, per frame. The sender
// needs ~1 µs a frame at top speed into a veth; the reader must stay a
// small fraction of that, since it shares the CPU.
func BenchmarkReadAhead(b *testing.B) {
	const n = 1 << 20
	p := writeBenchPcap(b, n)
	f, err := Open(p)
	if err != nil {
		b.Fatal(err)
	}
	plan, _ := planner(Schedule{Kind: TopSpeed}, n, f.Span)
	b.ResetTimer()
	for range b.N {
		free := make(chan *batch, windowBatches)
		full := make(chan *batch, windowBatches)
		for range windowBatches {
			free <- newBatch(defaultWindow / windowBatches)
		}
		go func() {
			defer close(full)
			readAhead(f, 1, n, 1514, defaultWindow/windowBatches, plan, free, full, nil)
		}()
		got := 0
		for bt := range full {
			got += bt.len()
			bt.reset()
			free <- bt
		}
		if got != n {
			b.Fatal(got)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/frame")
}
