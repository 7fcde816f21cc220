package replay_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/replay"
	"github.com/hilproject/hil/pcapfixtures"
)

func fixtureBytes(t testing.TB, name string) []byte {
	t.Helper()
	f, err := pcapfixtures.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Data()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pcapHeader(snaplen uint32) []byte {
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], snaplen)
	binary.LittleEndian.PutUint32(h[20:], 1)
	return h
}

func pcapRecord(caplen, length uint32, data []byte) []byte {
	r := make([]byte, 16)
	binary.LittleEndian.PutUint32(r[8:], caplen)
	binary.LittleEndian.PutUint32(r[12:], length)
	return append(r, data...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var frame60 = make([]byte, 60)

// Each malformed input gives a FormatError naming the record.
func TestMalformedInputs(t *testing.T) {
	t.Parallel()
	dns := fixtureBytes(t, "dns")           // 12 records of 90ish bytes
	ng := fixtureBytes(t, "two-interfaces") // SHB, 2 IDB, 6 EPB
	// Offsets of the pcapng blocks, to break specific ones.
	var blocks []int
	for off := 0; off < len(ng); off += int(binary.LittleEndian.Uint32(ng[off+4:])) {
		blocks = append(blocks, off)
	}
	epb3 := blocks[3+2] // SHB, IDB, IDB, EPB1, EPB2, EPB3
	mod := func(b []byte, f func([]byte)) []byte { c := append([]byte(nil), b...); f(c); return c }

	cases := []struct {
		name   string
		in     []byte
		record int
		msg    string
	}{
		{"empty file", nil, 0, "shorter than a 4-byte magic"},
		{"wrong magic", []byte("GIF89a, not a capture file"), 0, "unknown magic number"},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0}, 0, "gzip"},
		{"short pcap header", pcapHeader(65535)[:20], 0, "need 24 bytes"},
		{"absurd snaplen", cat(pcapHeader(0xffffffff), pcapRecord(60, 60, frame60)), 0, "absurd snapshot length 4294967295"},
		{"zero snaplen", pcapHeader(0), 0, "absurd snapshot length 0"},
		{"wrong link type", mod(pcapHeader(65535), func(b []byte) { b[20] = 105 }), 0, "link type 105"},
		{"pcap version", mod(pcapHeader(65535), func(b []byte) { b[4] = 1 }), 0, "pcap version 1.4"},
		{"truncated file mid-record", dns[:len(dns)-10], 12, "truncated record: header says"},
		{"truncated record header", dns[:24+16+len(dns[24+16:])/2][:24+3], 1, "truncated record header: 3 of 16"},
		{"zero-length record", cat(pcapHeader(65535), pcapRecord(60, 60, frame60), pcapRecord(0, 0, nil)), 2, "zero-length record"},
		{"short record", cat(pcapHeader(65535), pcapRecord(8, 8, frame60[:8])), 1, "8-byte record"},
		{"caplen over snaplen", cat(pcapHeader(100), pcapRecord(60, 60, frame60), pcapRecord(200, 200, make([]byte, 200))), 2, "exceeds the file's snapshot length 100"},
		{"caplen over max frame", cat(pcapHeader(1<<26), pcapRecord(1<<25, 1<<25, nil)), 1, "capture length 33554432: expected at most 262144"},
		{"length under caplen", cat(pcapHeader(65535), pcapRecord(60, 20, frame60)), 1, "original length 20 is less than the capture length 60"},
		{"pcapng truncated", ng[:len(ng)-7], 6, "truncated block"},
		{"pcapng no section header", ng[blocks[1]:], 0, "unknown magic number 0x00000001"},
		{"pcapng block length not /4", mod(ng, func(b []byte) { binary.LittleEndian.PutUint32(b[epb3+4:], 97) }), 3, "total length 97"},
		{"pcapng absurd block length", mod(ng, func(b []byte) { binary.LittleEndian.PutUint32(b[epb3+4:], 0xfffffff0) }), 3, "total length 4294967280"},
		{"pcapng trailer mismatch", mod(ng, func(b []byte) { n := binary.LittleEndian.Uint32(b[epb3+4:]); b[epb3+int(n)-4]++ }), 3, "at the end"},
		{"pcapng caplen past block", mod(ng, func(b []byte) { binary.LittleEndian.PutUint32(b[epb3+20:], 5000) }), 3, "capture length 5000 does not fit"},
		{"pcapng zero-length packet", mod(ng, func(b []byte) { binary.LittleEndian.PutUint32(b[epb3+20:], 0) }), 3, "zero-length record"},
		{"pcapng unknown interface", mod(ng, func(b []byte) { binary.LittleEndian.PutUint32(b[epb3+8:], 7) }), 3, "interface 7, but the section declares 2"},
		{"pcapng bad byte order", mod(ng, func(b []byte) { b[8] = 0 }), 0, "byte-order magic"},
		{"pcapng version", mod(ng, func(b []byte) { b[12] = 2 }), 0, "pcapng version 2.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replay.ReadCapture(bytes.NewReader(tc.in))
			var fe *replay.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v; expected a *replay.FormatError", err)
			}
			if fe.Record != tc.record || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %q (record %d); expected record %d and %q", err, fe.Record, tc.record, tc.msg)
			}
			if tc.record > 0 && !strings.Contains(err.Error(), "record ") {
				t.Errorf("error %q does not name the record", err)
			}
		})
	}
}

// Byte order and nanosecond pcap variants read the same frames.
func TestPcapVariants(t *testing.T) {
	t.Parallel()
	le := cat(pcapHeader(65535), pcapRecord(60, 60, frame60))
	binary.LittleEndian.PutUint32(le[24:], 1700000000)
	binary.LittleEndian.PutUint32(le[28:], 999999)
	be := make([]byte, len(le))
	for _, span := range [][2]int{{0, 4}, {16, 20}, {20, 24}, {24, 28}, {28, 32}, {32, 36}, {36, 40}} {
		for i := 0; i < 4; i++ {
			be[span[0]+i] = le[span[1]-1-i]
		}
	}
	be[4], be[5], be[6], be[7] = 0, 2, 0, 4
	copy(be[40:], le[40:])
	ns := append([]byte(nil), le...)
	binary.LittleEndian.PutUint32(ns[0:], 0xa1b23c4d)
	for name, in := range map[string][]byte{"little-endian us": le, "big-endian us": be, "nanoseconds": ns} {
		c, err := replay.ReadCapture(bytes.NewReader(in))
		if err != nil || len(c.Frames) != 1 || len(c.Frames[0].Data) != 60 {
			t.Errorf("%s: %v, %+v", name, err, c)
		}
	}
	r, err := replay.NewReader(bytes.NewReader(ns))
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Next()
	if err != nil || p.Time.Nanosecond() != 999999 {
		t.Errorf("nanosecond pcap: got %v, %v; expected 999999 ns", p.Time, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last record: %v, expected io.EOF", err)
	}
}

func TestPcapngTimestampsAndInterfaces(t *testing.T) {
	t.Parallel()
	r, err := replay.NewReader(bytes.NewReader(fixtureBytes(t, "two-interfaces")))
	if err != nil {
		t.Fatal(err)
	}
	var ifaces []int
	var prev int64
	var gaps []int64
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ifaces = append(ifaces, p.Interface)
		if prev != 0 {
			gaps = append(gaps, p.Time.UnixNano()-prev)
		}
		prev = p.Time.UnixNano()
	}
	if want := []int{0, 1, 0, 1, 0, 1}; !equalInts(ifaces, want) {
		t.Errorf("interfaces %v; expected %v", ifaces, want)
	}
	for i, g := range gaps {
		if want := int64(1234567 + i*777); g != want {
			t.Errorf("gap %d is %d ns; expected %d (nanosecond resolution)", i, g, want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzReader: whatever the bytes, reading ends in frames or a
// FormatError; never a panic, never an internal parser failure.
func FuzzReader(f *testing.F) {
	for _, n := range []string{"dns", "two-interfaces", "malformed", "dhcp"} {
		f.Add(fixtureBytes(f, n))
	}
	f.Add(cat(pcapHeader(65535), pcapRecord(60, 60, frame60), pcapRecord(0, 0, nil)))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := replay.ReadCapture(bytes.NewReader(in))
		// The scan that streaming replay relies on must judge the bytes
		// exactly as a full read does.
		s, serr := replay.ScanReader(bytes.NewReader(in))
		if (err == nil) != (serr == nil) || err != nil && err.Error() != serr.Error() {
			t.Fatalf("read: %v; scan: %v", err, serr)
		}
		if err == nil && s != c.Summary() {
			t.Fatalf("scan %+v; read %+v", s, c.Summary())
		}
		if err != nil {
			var fe *replay.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a FormatError", err, err)
			}
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("parser failure the checks should have prevented: %v", err)
			}
			return
		}
		for _, fr := range c.Frames {
			if len(fr.Data) < 14 || len(fr.Data) > replay.MaxFrame {
				t.Fatalf("accepted a %d-byte frame", len(fr.Data))
			}
		}
	})
}
