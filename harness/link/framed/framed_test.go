package framed

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestRoundTripOverAPipe(t *testing.T) {
	a, b := net.Pipe()
	c, err := New(a, a, a, WithMTU(1500))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := bytes.Repeat([]byte{0xab}, 60)
	go func() {
		if err := c.WriteFrame(frame); err != nil {
			t.Error(err)
		}
	}()
	got, err := ReadFrom(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, frame) {
		t.Fatalf("peer got %x, want %x", got, frame)
	}
	reply := []byte("a reply frame from the device side!")
	go WriteTo(b, reply)
	select {
	case f := <-c.Frames():
		if !bytes.Equal(f.Data, reply) {
			t.Fatalf("Frames gave %q, want %q", f.Data, reply)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no frame from the peer")
	}
}

func TestRefusesOversizeAndEmptyFrames(t *testing.T) {
	a, _ := net.Pipe()
	c, _ := New(a, a, a, WithMTU(100))
	defer c.Close()
	if err := c.WriteFrame(make([]byte, 115)); err == nil {
		t.Fatal("a 115-byte frame on an MTU-100 link was accepted")
	}
	if err := c.WriteFrame(nil); err == nil {
		t.Fatal("an empty frame was accepted")
	}
}

func TestReadFromRejectsGarbageLength(t *testing.T) {
	if _, err := ReadFrom(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff})); err == nil {
		t.Fatal("a 4 GiB length was accepted")
	}
}

func TestDrainWaitsForThePeersEcho(t *testing.T) {
	a, b := net.Pipe()
	c, _ := New(a, a, a)
	defer c.Close()
	got := make(chan int, 1)
	// The peer reads two frames, then the empty marker, and echoes it.
	go func() {
		n := 0
		for {
			f, err := ReadFrom(b)
			if err != nil {
				return
			}
			if len(f) == 0 {
				got <- n
				WriteTo(b, nil)
				continue
			}
			n++
		}
	}()
	c.WriteFrame(make([]byte, 60))
	c.WriteFrame(make([]byte, 60))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 2 {
		t.Fatalf("the peer had %d frames when it echoed, want 2", n)
	}
	// An echo is not a frame.
	select {
	case f := <-c.Frames():
		t.Fatalf("the sync marker came out of Frames: %v", f)
	default:
	}
	// A peer that never echoes: Drain gives up with ctx.
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	x, y := net.Pipe()
	go func() { io.Copy(io.Discard, y) }()
	silent, _ := New(x, x, x)
	defer silent.Close()
	if err := silent.Drain(short); err == nil {
		t.Fatal("Drain returned without an echo")
	}
}

// Several Drains at once (a replay's and a liveness check's) each get the
// echo of their own marker, and a peer that hangs up fails a Drain at once.
func TestConcurrentDrainsAndAPeerThatHangsUp(t *testing.T) {
	a, b := net.Pipe()
	c, _ := New(a, a, a)
	defer c.Close()
	go func() {
		for {
			f, err := ReadFrom(b)
			if err != nil {
				return
			}
			if len(f) == 0 {
				WriteTo(b, nil)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		go func() {
			c.WriteFrame(make([]byte, 60))
			errs <- c.Drain(ctx)
		}()
	}
	for i := 0; i < 50; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("drain %d: %v", i, err)
		}
	}

	x, y := net.Pipe()
	gone, _ := New(x, x, x, WithName("the agent"))
	defer gone.Close()
	go func() {
		ReadFrom(y) // the marker
		y.Close()
	}()
	// Not ctx's deadline: the hang-up itself ends the Drain.
	if err := gone.Drain(ctx); err == nil || !strings.Contains(err.Error(), "the agent closed its stream") {
		t.Fatalf("Drain to a peer that hung up: %v", err)
	}
}
