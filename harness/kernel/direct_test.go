package kernel

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// debianZImage is Debian's armmp kernel (fetched on a fresh cache) and
// its zImage's bytes.
func debianZImage(t *testing.T) (*Kernel, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k, err := Default(ctx)
	if err != nil {
		t.Fatal(err)
	}
	z, err := os.ReadFile(k.Image)
	if err != nil {
		t.Fatal(err)
	}
	return k, z
}

// Debian's armmp zImage unpacks, on the host, into a uImage that loads at
// RAM + TEXT_OFFSET as the decompressor would have placed it; the result
// is cached, and its header checks out. (That it boots is what every
// system-target test does: they report kernel_image "direct".)
func TestDirectImageOfDebianArmmp(t *testing.T) {
	k, z := debianZImage(t)
	img, textOffset, err := unpackZImage(z)
	if err != nil {
		t.Fatal(err)
	}
	// Debian's armmp includes Meson and MSM SoCs, whose kernels live 2 MiB
	// further up (arch/arm/Makefile's textofs).
	if textOffset != 0x208000 {
		t.Errorf("TEXT_OFFSET %#x, want 0x208000 for Debian's armmp", textOffset)
	}
	// The kernel's build appends the unpacked size to the payload.
	if len(img) < 8<<20 || !bytes.Contains(z, binary.LittleEndian.AppendUint32(nil, uint32(len(img)))) {
		t.Errorf("unpacked %d bytes; the zImage records no such size", len(img))
	}

	f, err := k.DirectImage(0x40000000)
	if err != nil {
		t.Fatal(err)
	}
	u, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	h := append([]byte{}, u[:64]...)
	hcrc := be.Uint32(h[4:])
	be.PutUint32(h[4:], 0)
	switch {
	case be.Uint32(u) != 0x27051956:
		t.Errorf("no uImage magic: %x", u[:4])
	case crc32.ChecksumIEEE(h) != hcrc:
		t.Error("header checksum wrong")
	case be.Uint32(u[16:]) != 0x40208000 || be.Uint32(u[20:]) != 0x40208000:
		t.Errorf("load %#x entry %#x, want 0x40208000", be.Uint32(u[16:]), be.Uint32(u[20:]))
	case !bytes.Equal(u[64:], img) || be.Uint32(u[12:]) != uint32(len(img)) || be.Uint32(u[24:]) != crc32.ChecksumIEEE(img):
		t.Error("payload differs from the unpacked kernel")
	case u[28] != 5 || u[29] != 2 || u[30] != 2 || u[31] != 0:
		t.Errorf("os/arch/type/comp %v, want Linux, ARM, kernel, none", u[28:32])
	}
	st, _ := os.Stat(f)
	again, err := k.DirectImage(0x40000000)
	if st2, _ := os.Stat(again); err != nil || again != f || !st2.ModTime().Equal(st.ModTime()) {
		t.Errorf("second call: %s %v, want the cached %s", again, err, f)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(f), ".uimage-*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// What cannot be converted says why, and nothing is written.
func TestDirectImageRefusals(t *testing.T) {
	_, z := debianZImage(t)
	payload := bytes.LastIndex(z, []byte{0xfd, '7', 'z', 'X', 'Z', 0})
	corrupt := append([]byte{}, z...)
	for i := payload + 4096; i < payload+8192; i++ {
		corrupt[i] ^= 0x55
	}
	twoOffsets := append([]byte{}, z...)
	binary.LittleEndian.PutUint32(twoOffsets[0x40:], 0xe2844902) // add r4, r4, #0x8000
	for _, c := range []struct {
		name string
		z    []byte
		want string
	}{
		{"not a zImage", []byte("\x7fELF not a zImage at all, just some bytes to be long enough"), "not an ARM zImage"},
		{"corrupt payload", corrupt, "no xz payload"},
		{"two TEXT_OFFSETs", twoOffsets, "2 candidates"},
	} {
		if _, _, err := unpackZImage(c.z); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}

	dir := t.TempDir()
	own := &Kernel{Arch: "armhf", Image: filepath.Join(dir, "vmlinuz")}
	if _, err := own.DirectImage(0x40000000); err == nil {
		t.Error("a kernel of the user's own was converted")
	}
	arm64 := &Kernel{Arch: "arm64", Package: "linux-image-x", Image: filepath.Join(dir, "vmlinuz")}
	if _, err := arm64.DirectImage(0x40000000); err == nil {
		t.Error("an arm64 kernel was converted")
	}
	bad := filepath.Join(dir, "vmlinuz")
	os.WriteFile(bad, corrupt, 0o644)
	deb := &Kernel{Arch: "armhf", Package: "linux-image-x", Release: "x", Image: bad}
	if _, err := deb.DirectImage(0x40000000); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt zImage: %v, want an error naming %s", err, bad)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*uimage*")); len(m) > 0 {
		t.Errorf("written for a kernel that cannot be converted: %v", m)
	}
}
