package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/therootcompany/xz"
)

// ARM zImage header fields (arch/arm/boot/compressed/head.S).
const (
	zImageMagicOffset = 0x24
	zImageMagic       = 0x016f2818
	// maxImage bounds the unpacked kernel: armmp's is about 20 MB.
	maxImage = 128 << 20
)

// DirectImage returns a kernel file for QEMU's -kernel that starts without
// the zImage's own decompressor. Debian's armmp zImage unpacks its xz
// payload inside the guest, which under TCG is about 2.5 s of every cold
// boot (more than the kernel's whole init); QEMU loads an uncompressed
// uImage in milliseconds and enters it as it enters a zImage (r2 the device
// tree, the initrd placed the same way). ramBase is the machine's RAM start
// (0x40000000 on virt): the kernel is loaded at ramBase + TEXT_OFFSET, the
// address the zImage's decompressor would have unpacked it to.
//
// The uImage is made once from the verified package's vmlinuz and kept
// beside it. A kernel hil cannot convert (not from a Debian package, not an
// ARM-mode zImage, not xz, no single TEXT_OFFSET in the decompressor) gives
// an error saying why; the caller boots the zImage as it is then.
func (k *Kernel) DirectImage(ramBase uint32) (string, error) {
	if k.Arch != "armhf" {
		return "", fmt.Errorf("%s kernels are started by QEMU as they are", k.Arch)
	}
	if k.Package == "" {
		return "", errors.New("a kernel of the user's own is booted as given")
	}
	out := filepath.Join(filepath.Dir(k.Image), fmt.Sprintf("%s.direct-%08x.uimage", filepath.Base(k.Image), ramBase))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	z, err := os.ReadFile(k.Image)
	if err != nil {
		return "", err
	}
	img, textOffset, err := unpackZImage(z)
	if err != nil {
		return "", fmt.Errorf("%s: %w", k.Image, err)
	}
	name := "Linux-" + k.Release
	if err := writeUImage(out, img, ramBase+textOffset, name); err != nil {
		return "", fmt.Errorf("writing the direct-boot image of %s: %w", k.Image, err)
	}
	return out, nil
}

// unpackZImage returns the kernel Image inside an ARM zImage and the
// TEXT_OFFSET its decompressor loads it at.
func unpackZImage(z []byte) (img []byte, textOffset uint32, err error) {
	if len(z) < zImageMagicOffset+4 || binary.LittleEndian.Uint32(z[zImageMagicOffset:]) != zImageMagic {
		return nil, 0, errors.New("not an ARM zImage (no magic 0x016f2818 at 0x24)")
	}
	xzMagic := []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	// The decompressor's own code may hold the magic (as data); the payload
	// is the first occurrence that decodes completely with its checksum.
	var payload int
	for off := 0; ; {
		i := bytes.Index(z[off:], xzMagic)
		if i < 0 {
			return nil, 0, errors.New("no xz payload (hil unpacks xz zImages, as Debian builds them)")
		}
		payload = off + i
		if img, err = unxz(z[payload:]); err == nil {
			break
		}
		off = payload + 1
	}
	textOffset, err = decompressorTextOffset(z[:payload])
	if err != nil {
		return nil, 0, err
	}
	return img, textOffset, nil
}

func unxz(b []byte) ([]byte, error) {
	r, err := xz.NewReader(bytes.NewReader(b), 0)
	if err != nil {
		return nil, err
	}
	r.Multistream(false)
	img, err := io.ReadAll(io.LimitReader(r, maxImage+1))
	if err != nil {
		return nil, err
	}
	if len(img) > maxImage {
		return nil, fmt.Errorf("the xz payload unpacks to more than %d MiB", maxImage>>20)
	}
	return img, nil
}

// decompressorTextOffset finds TEXT_OFFSET in the decompressor's code. With
// CONFIG_AUTO_ZRELADDR (every multiplatform kernel) it computes the load
// address as `and r4, pc, #0xf8000000; add r4, r4, #TEXT_OFFSET`, and
// TEXT_OFFSET always ends in 0x8000 (0x8000 usually; 0x208000 when the
// kernel also supports Meson or MSM SoCs, as Debian's armmp does). A kernel
// whose code has no such add, or two different ones, is not converted.
func decompressorTextOffset(code []byte) (uint32, error) {
	found := map[uint32]bool{}
	for off := 0; off+4 <= len(code); off += 4 {
		w := binary.LittleEndian.Uint32(code[off:])
		if w&0xfffff000 != 0xe2844000 { // add r4, r4, #imm (ARM mode, always)
			continue
		}
		rot, imm := ((w>>8)&0xf)*2, w&0xff
		v := imm>>rot | imm<<((32-rot)%32)
		if v&0xffff == 0x8000 {
			found[v] = true
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("cannot tell the kernel's TEXT_OFFSET from its decompressor (%d candidates; a Thumb-2 decompressor is not read)", len(found))
	}
	for v := range found {
		return v, nil
	}
	panic("unreachable")
}

// writeUImage writes img as a U-Boot legacy image (the header QEMU's ARM
// loader reads: load and entry address, OS Linux, no compression), through
// a temp file so that concurrent hil processes never see half a file.
func writeUImage(path string, img []byte, load uint32, name string) error {
	var h [64]byte
	be := binary.BigEndian
	be.PutUint32(h[0:], 0x27051956) // IH_MAGIC
	be.PutUint32(h[12:], uint32(len(img)))
	be.PutUint32(h[16:], load)
	be.PutUint32(h[20:], load)
	be.PutUint32(h[24:], crc32.ChecksumIEEE(img))
	h[28], h[29], h[30], h[31] = 5, 2, 2, 0 // IH_OS_LINUX, IH_ARCH_ARM, IH_TYPE_KERNEL, IH_COMP_NONE
	copy(h[32:63], name)
	be.PutUint32(h[4:], crc32.ChecksumIEEE(h[:]))
	tmp, err := os.CreateTemp(filepath.Dir(path), ".uimage-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(h[:]); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(img); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
