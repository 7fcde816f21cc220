package system

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/activity"
	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/kernel"
	"github.com/hilproject/hil/harness/target"
)

// machine is how QEMU models the guest: which emulator, machine, CPU and
// memory, which Debian kernel it boots, and how the app's userland sees
// it. A board profile decides it (machineFor); without one it is hil's
// generic machine: virt with a Cortex-A15 (32-bit images) or a Cortex-A57
// (arm64 images).
type machine struct {
	emulator string // qemu-system-arm or qemu-system-aarch64
	machine  string // -M
	cpu      string // -cpu
	memoryMB int    // -m
	// kernelArch is the Debian architecture of the kernel: armhf (armmp)
	// or arm64.
	kernelArch string
	// initArch is the Debian architecture hil-init is built for: the
	// image's word size (a 32-bit init runs as AArch32 userland on the
	// arm64 kernel, like the app).
	initArch string
	// linux32 runs the app under a PER_LINUX32 personality: uname -m then
	// says armv8l on the arm64 kernel, as on a 32-bit Raspberry Pi OS
	// whose userland runs under linux32.
	linux32 bool
	// board is the board's name ("" without one).
	board string
}

// machineFor decides the machine for an image of platform p on board b
// (nil: hil's generic machine). memoryMB is WithMemory's value (0: not
// set): a board's own memory wins unless WithMemory was given.
//
// A board QEMU cannot model here (the ARM1176 of a Pi Zero or Pi 1: virt
// refuses it) is a *target.UnsupportedError with the profile's reason; so
// is an image the board's kernel cannot run (an arm64 image on a 32-bit
// OS).
func machineFor(p v1.Platform, b *board.Board, memoryMB int) (machine, error) {
	initArch, err := imageArch(p)
	if err != nil {
		return machine{}, err
	}
	if b == nil {
		m := machine{emulator: "qemu-system-arm", machine: "virt", cpu: "cortex-a15", memoryMB: 512, kernelArch: "armhf", initArch: initArch}
		if initArch == "arm64" {
			m.emulator, m.cpu, m.kernelArch = "qemu-system-aarch64", "cortex-a57", "arm64"
		}
		if memoryMB > 0 {
			m.memoryMB = memoryMB
		}
		return m, nil
	}
	sys := b.OSInfo().System
	if sys.Unsupported != "" {
		return machine{}, &target.UnsupportedError{Target: "system", What: "the board " + b.Describe(), Reason: sys.Unsupported}
	}
	if initArch == "arm64" && (b.Bits == 32 || sys.Kernel != "arm64") {
		// hil models a 32-bit OS on a 64-bit core with the arm64 kernel
		// only because QEMU cannot run these cores' AArch32 kernel mode:
		// the board's own 32-bit OS runs no arm64 program.
		return machine{}, &target.UnsupportedError{Target: "system", What: "the " + p.String() + " image on " + b.Describe(),
			Reason: fmt.Sprintf("a 32-bit OS runs no arm64 programs (its engine pulls %s)", b.Platform())}
	}
	m := machine{
		emulator: sys.Emulator, machine: sys.Machine, cpu: sys.CPU, memoryMB: b.MemoryMiB,
		kernelArch: sys.Kernel, initArch: initArch, linux32: sys.Linux32 && initArch != "arm64", board: b.String(),
	}
	if memoryMB > 0 {
		m.memoryMB = memoryMB
	}
	return m, nil
}

// imageArch is the architecture of hil-init for an image: armhf for any
// 32-bit ARM image (the init is static, so the image's float ABI does not
// matter: armel and armv6 images run beside it), arm64 for arm64.
func imageArch(p v1.Platform) (string, error) {
	switch {
	case p.Architecture == "arm" && (p.Variant == "" || p.Variant == "v5" || p.Variant == "v6" || p.Variant == "v7" || p.Variant == "v8"):
		return "armhf", nil
	case p.Architecture == "arm64":
		return "arm64", nil
	}
	return "", &target.UnsupportedError{Target: "system", What: "platform " + p.String(),
		Reason: "the system target boots 32-bit ARM images (linux/arm/v5, v6, v7) on qemu-system-arm or as AArch32 userland on qemu-system-aarch64, and linux/arm64 images on qemu-system-aarch64"}
}

// guestKernel finds the kernel of the machine's architecture: the newest
// cached one, else fetched from Debian. With HIL_OFFLINE=1 nothing is
// fetched. A kernel that cannot be had says which `hil kernel fetch` gets
// it.
func guestKernel(ctx context.Context, m machine) (*kernel.Kernel, error) {
	fetch := fmt.Sprintf("`hil kernel fetch --arch %s` (or `make kernel`) fetches it", m.kernelArch)
	who := "the system target"
	if m.board != "" {
		who = "board " + m.board
	}
	if os.Getenv("HIL_OFFLINE") == "1" {
		ks, err := kernel.List()
		if err != nil {
			return nil, fmt.Errorf("%s needs Debian's %s kernel; listing the cached kernels: %w; %s", who, m.kernelArch, err, fetch)
		}
		for i := len(ks) - 1; i >= 0; i-- {
			if ks[i].Arch == m.kernelArch {
				return ks[i], nil
			}
		}
		return nil, fmt.Errorf("%s needs Debian's %s kernel (%s %s) and none is cached (HIL_OFFLINE=1 fetches nothing): %s", who, m.kernelArch, m.emulator, m.cpu, fetch)
	}
	k, err := kernel.Default(ctx, kernel.WithArch(m.kernelArch))
	if err != nil {
		return nil, fmt.Errorf("%s needs Debian's %s kernel, which is not cached, and fetching it failed: %w; %s", who, m.kernelArch, err, fetch)
	}
	return k, nil
}

// virtRAMBase is where RAM starts on QEMU's virt machine.
const virtRAMBase = 0x40000000

// directKernel is the -kernel file for k on m: the kernel's direct-boot
// image (kernel.DirectImage: no in-guest decompression, about 2.5 s less
// per cold boot) on qemu-system-arm's virt, else k's own image. A kernel
// that cannot be converted boots as it is, and the progress line says why.
func directKernel(ctx context.Context, k *kernel.Kernel, m machine) string {
	if m.emulator != "qemu-system-arm" || m.machine != "virt" || k.Arch != "armhf" {
		return k.Image
	}
	f, err := k.DirectImage(virtRAMBase)
	if err != nil {
		activity.Report(ctx, "booting the kernel's zImage as it is (about 2.5 s slower): %v", err)
		return k.Image
	}
	return f
}

// launch is one QEMU start: the machine, the boot files, the sockets hil
// talks to the guest on, and the snapshot to restore (if any).
type launch struct {
	m      machine
	cpus   int
	kernel string // -kernel
	initrd string // -initrd
	append string // -append
	// netdev is the -netdev value of the app's NIC (id n0).
	netdev string
	// report is the unix socket of hil-init's virtio-serial port.
	report string
	// qmp and live are the two QMP monitors: the snapshot code's and the
	// liveness check's.
	qmp, live string
	// incoming is the snapshot file to restore; "" boots cold.
	incoming string
}

// qemuArgs is the emulator's command line for l, without the emulator
// itself. It depends on l alone (no environment, no files), so that the
// command line can be checked without starting QEMU.
func qemuArgs(l launch) []string {
	args := []string{
		"-M", l.m.machine, "-cpu", l.m.cpu,
		"-m", strconv.Itoa(l.m.memoryMB), "-smp", strconv.Itoa(l.cpus),
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", l.kernel, "-initrd", l.initrd, "-append", l.append,
		"-netdev", l.netdev, "-device", "virtio-net-device,netdev=n0",
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=rep,path=" + l.report,
		"-device", "virtserialport,chardev=rep,name=hil",
		"-qmp", "unix:" + l.qmp + ",server=on,wait=off",
		// A second monitor for the liveness check alone: QEMU serves one
		// client per monitor, and the snapshot code has the first.
		"-qmp", "unix:" + l.live + ",server=on,wait=off",
	}
	if l.incoming != "" {
		// QEMU reads the snapshot from a file descriptor hil opened (the
		// first of ExtraFiles): no shell and cat, no pipe to copy through.
		args = append(args, "-incoming", "fd:3")
	}
	return args
}

// errNoImage is Boot's error for a nil image.
var errNoImage = errors.New("system target: no image")
