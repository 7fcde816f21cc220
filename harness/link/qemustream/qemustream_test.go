package qemustream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// peer plays QEMU's side of the stream protocol.
func dialPeer(t testing.TB, l *Link) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- l.Accept(ctx) }()
	c, err := net.Dial("unix", l.Path())
	if err != nil {
		t.Fatalf("dialing %s: %v", l.Path(), err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

func frame(i int, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b[len(b)-4:], uint32(i))
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x00})
	return b
}

func TestFramesBothWays(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "n0.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := dialPeer(t, l)

	const n = 1000
	go func() {
		for i := 0; i < n; i++ {
			if err := l.WriteFrame(frame(i, 60+i%1400)); err != nil {
				t.Errorf("WriteFrame %d: %v", i, err)
				return
			}
		}
	}()
	r := bufio.NewReader(c)
	for i := 0; i < n; i++ {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := readFrame(r)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := frame(i, 60+i%1400); !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes %x..., want %d bytes", i, len(got), got[:16], len(want))
		}
	}

	// Guest → harness.
	out := frame(7, 98)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(out)))
	c.Write(append(hdr[:], out...))
	select {
	case f := <-l.Frames():
		if !bytes.Equal(f.Data, out) {
			t.Fatalf("guest frame: got %x, want %x", f.Data, out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("guest frame never arrived on Frames()")
	}
}

func TestDrainWaitsForThePeer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "n0.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := dialPeer(t, l)
	for i := 0; i < 1000; i++ {
		if err := l.WriteFrame(frame(i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	// Nobody reads yet: Drain must wait until its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := l.Drain(ctx); err == nil {
		t.Fatal("Drain returned while the peer had read nothing")
	}
	go io.Copy(io.Discard, c)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := l.Drain(ctx2); err != nil {
		t.Fatalf("Drain with a reading peer: %v", err)
	}
}

func TestRejectsOversizeAndUnconnected(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "n0.sock")
	l, err := Listen(sock, WithMTU(1500))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.WriteFrame(frame(0, 60)); err == nil {
		t.Fatal("WriteFrame before Accept succeeded")
	}
	dialPeer(t, l)
	if err := l.WriteFrame(make([]byte, 1515)); err == nil {
		t.Fatal("1515-byte frame on a 1500 MTU link accepted")
	}
	if err := l.WriteFrame(make([]byte, 1514)); err != nil {
		t.Fatalf("1514-byte frame: %v", err)
	}
}

func TestAcceptHonoursContext(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "n0.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := l.Accept(ctx); err == nil {
		t.Fatal("Accept without a peer returned nil")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket %s left behind after Close (stat err %v)", sock, err)
	}
	if _, ok := <-l.Frames(); ok {
		t.Fatal("Frames not closed by Close")
	}
}

func TestPeerGoneFailsWrite(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "n0.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := dialPeer(t, l)
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := l.WriteFrame(frame(0, 1000)); err != nil {
			return
		}
		if err := l.Flush(); err != nil {
			return
		}
	}
	t.Fatal("writes to a closed peer kept succeeding")
}

// BenchmarkWriteFrame100k measures the replay hot path into a peer that
// drains like QEMU does.
func BenchmarkWriteFrame100k(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "n0.sock")
	l, err := Listen(sock)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	c := dialPeer(b, l)
	go io.Copy(io.Discard, c)
	f := frame(1, 64)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 100000; j++ {
			if err := l.WriteFrame(f); err != nil {
				b.Fatal(err)
			}
		}
		if err := l.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100000)/time.Since(start).Seconds(), "frames/s")
}
