package system

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/target"
)

func mustBoard(t testing.TB, name string) *board.Board {
	t.Helper()
	b, err := board.Builtin().Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return &b
}

var (
	armv7 = v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	armv5 = v1.Platform{OS: "linux", Architecture: "arm", Variant: "v5"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

// The QEMU command line of each board, built without starting QEMU: the
// board's emulator, machine, CPU and memory, the AArch32 userland of a
// 32-bit OS on the arm64 kernel, and the snapshot restore.
func TestQEMUArgsPerBoard(t *testing.T) {
	base := launch{cpus: 2, kernel: "/k/vmlinuz", initrd: "/c/ir.cpio", append: "console=ttyAMA0",
		netdev: "stream,id=n0,server=off,addr.type=unix,addr.path=/t/net.sock", report: "/t/rep.sock", qmp: "/t/qmp.sock", live: "/t/live.sock"}
	cases := []struct {
		board    string // "" no board
		platform v1.Platform
		emulator string
		head     []string
		kernel   string
		linux32  bool
	}{
		{"", armv7, "qemu-system-arm", []string{"-M", "virt", "-cpu", "cortex-a15", "-m", "512"}, "armhf", false},
		{"", arm64, "qemu-system-aarch64", []string{"-M", "virt", "-cpu", "cortex-a57", "-m", "512"}, "arm64", false},
		{"virt", armv7, "qemu-system-arm", []string{"-M", "virt", "-cpu", "cortex-a15", "-m", "512"}, "armhf", false},
		{"pi2", armv7, "qemu-system-arm", []string{"-M", "virt", "-cpu", "cortex-a7", "-m", "1024"}, "armhf", false},
		{"pi2", armv5, "qemu-system-arm", []string{"-M", "virt", "-cpu", "cortex-a7", "-m", "1024"}, "armhf", false},
		{"pi3b+/32", armv7, "qemu-system-aarch64", []string{"-M", "virt", "-cpu", "cortex-a53", "-m", "1024"}, "arm64", true},
		{"pi3b+", armv7, "qemu-system-aarch64", []string{"-M", "virt", "-cpu", "cortex-a53", "-m", "1024"}, "arm64", false},
		{"pi3b+", arm64, "qemu-system-aarch64", []string{"-M", "virt", "-cpu", "cortex-a53", "-m", "1024"}, "arm64", false},
		{"pi02w", arm64, "qemu-system-aarch64", []string{"-M", "virt", "-cpu", "cortex-a53", "-m", "512"}, "arm64", false},
		{"pi4/32", armv7, "qemu-system-aarch64", []string{"-M", "virt", "-cpu", "cortex-a72", "-m", "1024"}, "arm64", true},
		{"pi4-8g", arm64, "qemu-system-aarch64", []string{"-M", "virt", "-cpu", "cortex-a72", "-m", "8192"}, "arm64", false},
		{"pi5", arm64, "qemu-system-aarch64", []string{"-M", "virt", "-cpu", "cortex-a76", "-m", "2048"}, "arm64", false},
	}
	for _, c := range cases {
		t.Run(c.board+"_"+c.platform.String(), func(t *testing.T) {
			var b *board.Board
			if c.board != "" {
				b = mustBoard(t, c.board)
			}
			m, err := machineFor(c.platform, b, 0)
			if err != nil {
				t.Fatal(err)
			}
			if m.emulator != c.emulator || m.kernelArch != c.kernel || m.linux32 != c.linux32 {
				t.Fatalf("machine %+v: want emulator %s, kernel %s, linux32 %v", m, c.emulator, c.kernel, c.linux32)
			}
			l := base
			l.m = m
			args := qemuArgs(l)
			if !slices.Equal(args[:len(c.head)], c.head) {
				t.Fatalf("args start %q, want %q", args[:len(c.head)], c.head)
			}
			for _, want := range [][]string{{"-smp", "2"}, {"-kernel", "/k/vmlinuz"}, {"-initrd", "/c/ir.cpio"}, {"-netdev", base.netdev}, {"-chardev", "socket,id=rep,path=/t/rep.sock"}} {
				if i := slices.Index(args, want[0]); i < 0 || args[i+1] != want[1] {
					t.Errorf("args %q: want %s %s", args, want[0], want[1])
				}
			}
			if slices.Contains(args, "-incoming") {
				t.Errorf("a cold boot restores nothing: %q", args)
			}
			l.incoming = "/snap/it's.vmstate"
			args = qemuArgs(l)
			if got := args[len(args)-2:]; !slices.Equal(got, []string{"-incoming", "fd:3"}) {
				t.Errorf("restore args end %q", got)
			}
		})
	}
	// WithMemory wins over the board's memory.
	if m, _ := machineFor(armv7, mustBoard(t, "pi2"), 256); m.memoryMB != 256 {
		t.Errorf("pi2 with WithMemory(256): %d MiB", m.memoryMB)
	}
}

// A board QEMU cannot model is unsupported with the profile's reason, before
// anything is fetched or started; so is an image the board's OS cannot run.
func TestBoardsTheSystemTargetCannotModel(t *testing.T) {
	for _, c := range []struct {
		board    string
		platform v1.Platform
		want     string
	}{
		{"pi0w", armv5, "mach-virt: CPU type arm1176-arm-cpu not supported"},
		{"pi1", armv7, "qemu-arm -cpu arm1176"},
		{"pi3b+/32", arm64, "a 32-bit OS runs no arm64 programs"},
		{"pi2", arm64, "a 32-bit OS runs no arm64 programs"},
	} {
		img := &image.Image{Ref: "test:none", Platform: c.platform}
		_, err := New().Boot(context.Background(), img, target.RunConfig{Board: mustBoard(t, c.board)})
		var ue *target.UnsupportedError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s, %s: %v; want an UnsupportedError saying %q", c.board, c.platform.String(), err, c.want)
		}
	}
}

// A board whose kernel is not cached (and cannot be fetched: HIL_OFFLINE)
// says which `hil kernel fetch` gets it.
func TestBoardKernelMissing(t *testing.T) {
	t.Setenv("HIL_CACHE", t.TempDir())
	t.Setenv("HIL_OFFLINE", "1")
	img := &image.Image{Ref: "test:none", Platform: armv7}
	_, err := New().Boot(context.Background(), img, target.RunConfig{Board: mustBoard(t, "pi3b+/32")})
	if err == nil || !target.IsInfra(err) || !strings.Contains(err.Error(), "`hil kernel fetch --arch arm64`") || !strings.Contains(err.Error(), "board pi3b+/32") {
		t.Fatalf("%v; want an infra error naming the board and `hil kernel fetch --arch arm64`", err)
	}
}

// Each board boots its own machine: the CPU the app sees is the board's
// core (its part number in /proc/cpuinfo), the memory is the board's, and
// uname -m says what the board's OS says: armv7l on a Pi 2's 32-bit
// kernel, armv8l for the 32-bit userland of a 32-bit OS on the arm64
// kernel (PER_LINUX32), aarch64 on a 64-bit OS whatever the program.
func TestBoardMachines(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-aarch64"); err != nil {
		t.Skip("qemu-system-aarch64 not installed (package qemu-system-arm)")
	}
	armhf, armhfImg := cRootFS(t, "armhf", "boardinfo")
	a64, a64Img := cRootFS(t, "arm64", "boardinfo")
	cases := []struct {
		board, arch, uname, part string
		bits                     int
	}{
		{"pi2", "armhf", "armv7l", "0xc07", 32},
		{"pi3b+/32", "armhf", "armv8l", "0xd03", 32},
		{"pi3b+", "armhf", "aarch64", "0xd03", 32},
		{"pi4/64", "arm64", "aarch64", "0xd08", 64},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.board, "/", "-"), func(t *testing.T) {
			t.Parallel()
			b := mustBoard(t, c.board)
			rootfs, img := armhf, armhfImg
			if c.arch == "arm64" {
				rootfs, img = a64, a64Img
			}
			ctx := testCtx(t, 3*time.Minute) // the first run may fetch a kernel
			d, err := New(WithRootFS(rootfs), WithSnapshots(false), WithCPUs(1)).
				Boot(ctx, img, target.RunConfig{Entrypoint: img.Config.Entrypoint, Ready: readyLine, Board: b})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { d.Close(); noLeftovers(t, d) }()
			l, seen, ok := waitLine(t, d, 60*time.Second, func(l target.Line) bool { return strings.HasPrefix(l.Text, "uname=") })
			if !ok {
				t.Fatalf("no boardinfo line: %v (console %s)", seen, d.Info()["console_log"])
			}
			f := map[string]string{}
			for _, kv := range strings.Fields(l.Text) {
				k, v, _ := strings.Cut(kv, "=")
				f[k] = v
			}
			memKB, _ := strconv.Atoi(f["memtotal_kb"])
			switch {
			case f["uname"] != c.uname:
				t.Errorf("uname -m %q, want %q (%s)", f["uname"], c.uname, l.Text)
			case f["cpupart"] != c.part:
				t.Errorf("CPU part %s, want %s (%s, %s)", f["cpupart"], c.part, b.CPU, l.Text)
			case f["bits"] != strconv.Itoa(c.bits):
				t.Errorf("program bits %s, want %d", f["bits"], c.bits)
			case memKB < b.MemoryMiB*1024*3/4 || memKB > b.MemoryMiB*1024:
				t.Errorf("MemTotal %d kB, want about %d MiB (the board's)", memKB, b.MemoryMiB)
			}
			info := d.Info()
			if info["board"] != b.String() || info["cpu"] != b.OSInfo().System.CPU || info["memory_mb"] != b.MemoryMiB {
				t.Errorf("device info board=%v cpu=%v memory_mb=%v (want %s, %s, %d)", info["board"], info["cpu"], info["memory_mb"], b, b.OSInfo().System.CPU, b.MemoryMiB)
			}
			// The armmp kernel boots unpacked on the host (kernel.DirectImage);
			// QEMU unpacks the arm64 one itself.
			wantKernel := "image"
			if b.OSInfo().System.Kernel == "armhf" {
				wantKernel = "direct"
			}
			if info["kernel_image"] != wantKernel {
				t.Errorf("kernel_image %v, want %s", info["kernel_image"], wantKernel)
			}
		})
	}
}

// Snapshots are per board: the same image on two boards, or on one board
// under two OS word sizes, gets two keys; the same board twice, one.
func TestSnapshotKeyPerBoard(t *testing.T) {
	rootfs, img := cRootFS(t, "armhf", "boardinfo")
	dir := t.TempDir()
	tg := New(WithRootFS(rootfs), WithSnapshotDir(dir))
	keys := map[string]string{}
	for _, name := range []string{"pi2", "pi3b+", "pi3b+/32", "pi4", "pi4-2g", "pi3b+"} {
		p, err := tg.plan(testCtx(t, 2*time.Minute), img, target.RunConfig{Entrypoint: img.Config.Entrypoint, Board: mustBoard(t, name)})
		if err != nil {
			t.Fatal(err)
		}
		if p.ownInitramfs {
			os.Remove(p.initramfs)
		}
		if filepath.Dir(p.snapshot) != dir {
			t.Fatalf("snapshot %s not in %s", p.snapshot, dir)
		}
		if prev, ok := keys[name]; ok {
			if prev != p.snapshotKey {
				t.Errorf("%s twice: keys %s and %s", name, prev, p.snapshotKey)
			}
			continue
		}
		for other, k := range keys {
			if k == p.snapshotKey {
				t.Errorf("%s and %s share the snapshot key %s", name, other, k)
			}
		}
		keys[name] = p.snapshotKey
	}
}
