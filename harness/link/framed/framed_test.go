package framed

import (
	"bytes"
	"net"
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
