//go:build linux

// Command hil-init is PID 1 inside hil's system-target guests. It prepares a
// minimal Linux userland around the image's rootfs (mounts, NIC modules,
// interface name, hostname, receive coalescing off), waits for the harness
// to say what to run, runs the app, and reports to the harness over a
// virtio serial port, separate from the kernel console:
//
//	guest → harness: "hello <version>", "net <json>", "idle <json>",
//	                 "started <pid> <unixnano>", "out <text>", "err <text>",
//	                 "exit <code>", "signal <name>", "fail <text>", "pong",
//	                 "beat", "stats <seq> <json>"
//	harness → guest: "run <json>", "signal <number>", "time <unixnano>",
//	                 "ping", "stats <seq>", "poweroff"
//
// "idle" says the guest is ready for its app: kernel, modules, report port
// and network are up, the kernel has finished freeing the modules' init
// sections (awaitModuleInitFree; its JSON says whether that was seen, or
// timed out, or could not be waited for), and nothing of the app has run. The harness may
// snapshot the VM there (the base snapshot, one per image, kernel and init)
// and restore it for any app arguments: the app's argv, environment,
// working directory, user and receive-offload mode come with "run", after
// the restore, never from the initramfs or the kernel command line.
//
// "net" reports the capture interface's receive-coalescing features as
// read back after setting them (off by default, so that every frame sent is
// one frame captured; "gro" on request), "stats" its receive counters
// (sysfs) and, with gro, what a capture on it sees (two counting packet
// sockets).
//
// "beat" comes every beatInterval from the moment the port is open: the
// harness takes any line as a sign of life and calls a guest that gave
// none for a few seconds dead (hung kernel, starved init), even while QEMU
// itself still runs. The beat loop is part of the guest's memory, so a
// snapshot restored later beats on by itself.
//
// It uses only the standard library (and hil's stdlib-only ethtool package)
// so that the harness can build it on demand with nothing but the Go
// toolchain.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hilproject/hil/harness/target/system/guestwire"
	"github.com/hilproject/hil/internal/ethtool"
)

const version = "3"

// beatInterval is how often hil-init tells the harness it is alive. A
// beat wakes the idle guest, which under TCG costs QEMU about 4 ms of host
// CPU (measured: an idle guest costs ~120 ms/s without beats, ~145 with
// one every 200 ms, ~165 every 100 ms); the harness calls a guest dead
// only after 3 s without a sign, so 200 ms leaves a wide margin.
const beatInterval = 200 * time.Millisecond

var (
	repMu sync.Mutex
	rep   *os.File
)

func report(kind, text string) {
	line := kind
	if text != "" {
		line += " " + text
	}
	repMu.Lock()
	defer repMu.Unlock()
	if rep == nil {
		fmt.Fprintln(os.Stderr, "hil-init: "+line)
		return
	}
	rep.Write([]byte(line + "\n"))
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "hil-init: "+format+"\n", a...)
}

// fail reports an init failure and powers off: the harness turns it into an
// infrastructure error.
func fail(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	logf("%s", msg)
	report("fail", msg)
	time.Sleep(200 * time.Millisecond)
	poweroff()
}

func poweroff() {
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	for {
		time.Sleep(time.Hour)
	}
}

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "hil-init must run as PID 1 of a guest")
		os.Exit(2)
	}
	mounts := []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
		{"tmpfs", "/run", "tmpfs"},
	}
	for _, m := range mounts {
		os.MkdirAll(m.dst, 0o755)
		if err := syscall.Mount(m.src, m.dst, m.fs, 0, ""); err != nil && err != syscall.EBUSY {
			logf("mounting %s on %s: %v", m.fs, m.dst, err)
		}
	}
	os.MkdirAll("/dev/pts", 0o755)
	syscall.Mount("devpts", "/dev/pts", "devpts", 0, "")
	os.MkdirAll("/dev/shm", 0o1777)
	syscall.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "")

	raw, err := os.ReadFile("/.hil/config.json")
	if err != nil {
		fail("reading /.hil/config.json: %v", err)
	}
	var cfg guestwire.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		fail("parsing /.hil/config.json: %v", err)
	}
	for _, m := range cfg.Modules {
		if err := loadModule(m); err != nil {
			fail("loading kernel module %s: %v", m, err)
		}
	}
	if err := openReport(); err != nil {
		fail("opening the report port: %v", err)
	}
	report("hello", version)
	go heartbeat()
	hostname := cfg.Hostname
	if hostname == "" {
		hostname = "hil"
	}
	syscall.Sethostname([]byte(hostname))
	os.WriteFile("/proc/sys/net/ipv6/conf/all/disable_ipv6", []byte("1"), 0)
	os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0)
	iface := cfg.Iface
	if iface == "" {
		iface = "eth0"
	}
	if err := setupNet(iface); err != nil {
		fail("setting up the network: %v", err)
	}
	countIface = iface
	if err := setOffload(iface, "off"); err != nil {
		fail("%v", err)
	}
	idle := guestwire.Idle{ModuleInitFree: "no modules"}
	if len(cfg.Modules) > 0 {
		t0 := time.Now()
		if rel := kernelRelease(); moduleInitFreeKnown(rel) {
			idle.ModuleInitFree = awaitModuleInitFree(len(cfg.Modules), 3*time.Second, func() ([]byte, error) { return os.ReadFile("/proc/vmallocinfo") })
		} else {
			idle.ModuleInitFree = "not waited for: kernel " + rel + " (module memory is laid out per section since 6.4)"
		}
		idle.ModuleInitFreeUS = time.Since(t0).Microseconds()
	}
	b, _ := json.Marshal(idle)
	report("idle", string(b))
	rc := <-runCh
	// Set (gro), or off as set and read back above (a restored base
	// snapshot is that state), for this app, and reported with it.
	if rc.RxOffload == "" {
		rc.RxOffload = "off"
	}
	if err := setOffload(iface, rc.RxOffload); err != nil {
		exitWith(126, err.Error())
	}
	if rc.RxOffload == "gro" {
		if err := openCounters(iface); err != nil {
			exitWith(126, fmt.Sprintf("opening the frame counters on %s: %v", iface, err))
		}
	}
	run(rc, cfg.Personality)
}

// runCh carries the first "run" command to main.
var (
	runCh   = make(chan guestwire.Run, 1)
	runOnce sync.Once
)

// offNet is the interface as set off and read back at boot, nil before.
var offNet *guestwire.Net

// setOffload sets the interface's receive coalescing: "off" turns every
// kind off, "gro" turns GRO on (the rest off), as a board whose NIC driver
// does GRO. The state is read back and reported; a mismatch is an error.
func setOffload(iface, mode string) error {
	t0 := time.Now()
	want := ethtool.CoalescingOff()
	switch mode {
	case "off":
	case "gro":
		want["rx-gro"] = true
	default:
		return fmt.Errorf("rx_offload %q: expected off or gro", mode)
	}
	if mode == "off" && offNet != nil {
		// Set and read back at boot, by this init, with nothing run in
		// the guest since (a base snapshot restores that very state): the
		// boot's read-back stands. Reading it again cost 34 to 81 ms of a
		// restored guest's app start (every kernel path cold under TCG).
		b, _ := json.Marshal(offNet)
		report("net", string(b))
		return nil
	}
	fs, err := ethtool.Set(iface, want)
	if err != nil {
		return fmt.Errorf("setting receive offload %s on %s: %v", mode, iface, err)
	}
	nr := guestwire.Net{Iface: iface, RxOffload: fs.Coalescing(), Features: fs.CoalescingState(), MTU: readInt("/sys/class/net/" + iface + "/mtu"),
		EthtoolUS: time.Since(t0).Microseconds(), BootMS: bootTime().Milliseconds()}
	if mode == "off" {
		offNet = &nr
	}
	b, _ := json.Marshal(nr)
	report("net", string(b))
	return nil
}

func bootTime() time.Duration {
	var ts syscall.Timespec
	const clockBoottime = 7
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockBoottime, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

func readInt(path string) int {
	b, _ := os.ReadFile(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func readUint(path string) uint64 {
	b, _ := os.ReadFile(path)
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// The counting sockets: packet sockets on the interface whose filters
// keep one byte of each received frame (all frames; frames longer than the
// MTU allows) and that are never read. The kernel counts every frame a
// filter passes (PACKET_STATISTICS: queued plus dropped), which is what a
// capture on the interface sees, after any coalescing; a tiny receive
// buffer keeps what they hold to a frame or two.
//
// Each is one more receiver of every frame in the guest's softirq, which
// costs on TCG: with them open, the app's capture of a 100k-frame burst
// fell seconds behind (pcapwatch had read 73-98% of it 3 s after QEMU
// took the last frame; without them, all of it). So they are opened only
// with receive coalescing on (rx_offload gro), where what a capture sees
// differs from what the interface received and is what the step's stats
// must show. With coalescing off (read back with ethtool), a capture sees
// each frame received: "stats" says seen -1 (not counted).
var (
	countMu              sync.Mutex
	countIface           string
	countAll, countOver  = -1, -1 // open with rx_offload gro only
	seenAll, seenOverMTU int64
)

const (
	solPacket        = 263
	packetStatistics = 6
	ethPAll          = 0x0003
	skfAdPkttype     = 0xfffff004 // SKF_AD_OFF + SKF_AD_PKTTYPE
	packetOutgoing   = 4
)

// openCounters opens the counting sockets on iface (rx_offload gro).
func openCounters(iface string) error {
	idx, err := ifIndex(iface)
	if err != nil {
		return err
	}
	limit := uint32(readInt("/sys/class/net/"+iface+"/mtu") + 14 + 4)
	ldType := syscall.SockFilter{Code: syscall.BPF_LD | syscall.BPF_W | syscall.BPF_ABS, K: skfAdPkttype}
	all := []syscall.SockFilter{
		ldType,
		{Code: syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K, K: packetOutgoing, Jt: 1},
		{Code: syscall.BPF_RET | syscall.BPF_K, K: 1},
		{Code: syscall.BPF_RET | syscall.BPF_K, K: 0},
	}
	over := []syscall.SockFilter{
		ldType,
		{Code: syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K, K: packetOutgoing, Jt: 3},
		{Code: syscall.BPF_LD | syscall.BPF_W | syscall.BPF_LEN},
		{Code: syscall.BPF_JMP | syscall.BPF_JGT | syscall.BPF_K, K: limit, Jf: 1},
		{Code: syscall.BPF_RET | syscall.BPF_K, K: 1},
		{Code: syscall.BPF_RET | syscall.BPF_K, K: 0},
	}
	open := func(prog []syscall.SockFilter) (int, error) {
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, int(htons(ethPAll)))
		if err != nil {
			return -1, err
		}
		syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1)
		fp := syscall.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if _, _, e := syscall.Syscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), syscall.SOL_SOCKET, syscall.SO_ATTACH_FILTER,
			uintptr(unsafe.Pointer(&fp)), unsafe.Sizeof(fp), 0); e != 0 {
			syscall.Close(fd)
			return -1, fmt.Errorf("attaching the filter: %v", e)
		}
		if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPAll), Ifindex: idx}); err != nil {
			syscall.Close(fd)
			return -1, err
		}
		return fd, nil
	}
	fa, err := open(all)
	if err != nil {
		return err
	}
	fo, err := open(over)
	if err != nil {
		syscall.Close(fa)
		return err
	}
	countMu.Lock()
	countAll, countOver = fa, fo
	countMu.Unlock()
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetStats reads and resets a counting socket's count.
func packetStats(fd int) int64 {
	var st struct{ packets, drops uint32 }
	l := uint32(unsafe.Sizeof(st))
	if _, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), solPacket, packetStatistics,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return 0
	}
	// tp_packets already includes tp_drops.
	return int64(st.packets)
}

// counters is the "stats" answer (link.Counters on the host side; hil-init
// links nothing of hil but ethtool and guestwire).
type counters struct {
	Iface       string `json:"iface"`
	RxPackets   uint64 `json:"rx_packets"`
	RxBytes     uint64 `json:"rx_bytes"`
	RxDropped   uint64 `json:"rx_dropped"`
	Seen        int64  `json:"seen"`
	SeenOverMTU int64  `json:"seen_over_mtu"`
}

func readCounters() counters {
	countMu.Lock()
	defer countMu.Unlock()
	// The interface's counters first, what the capture saw after: a frame
	// is counted as received before it is passed up, so read in this order
	// a quiet interface never shows more received than seen.
	dir := "/sys/class/net/" + countIface + "/statistics/"
	c := counters{Iface: countIface, RxPackets: readUint(dir + "rx_packets"), RxBytes: readUint(dir + "rx_bytes"),
		RxDropped: readUint(dir+"rx_dropped") + readUint(dir+"rx_errors") + readUint(dir+"rx_missed_errors")}
	c.Seen, c.SeenOverMTU = -1, -1
	if countAll >= 0 {
		seenAll += packetStats(countAll)
		seenOverMTU += packetStats(countOver)
		c.Seen, c.SeenOverMTU = seenAll, seenOverMTU
	}
	return c
}

// heartbeat reports "beat" every beatInterval for as long as the guest
// runs.
func heartbeat() {
	t := time.NewTicker(beatInterval)
	defer t.Stop()
	for range t.C {
		report("beat", "")
	}
}

// awaitModuleInitFree waits until the kernel has freed the init sections of
// the n modules loaded at boot. The kernel frees them later, from a
// workqueue, and on 32-bit ARM that free flushes the TLB page by page over
// hundreds of MB of kernel address space: 0.3 to 1 s of a vCPU under TCG
// (sampled: do_free_init → vfree → _vm_unmap_aliases →
// __purge_vmap_area_lazy → v7wbi_flush_kern_tlb_range). A base snapshot
// taken before it ends makes every guest restored from it do it again,
// between the restore and the app's start, so "idle" waits for it.
//
// read returns /proc/vmallocinfo. A module's init area is listed there
// (allocated from the module loader) until the free takes it; the flush
// comes right after, under the purge lock that a read of the file takes
// too. So the wait ends at the second read in a row (5 ms apart) that lists
// just the n modules' core areas: that read could not start while
// the flush held the lock. It gives up after timeout. It returns "freed",
// or why it did not see that.
func awaitModuleInitFree(n int, timeout time.Duration, read func() ([]byte, error)) (outcome string) {
	deadline := time.Now().Add(timeout)
	for settled := 0; ; {
		b, err := read()
		if err != nil {
			return fmt.Sprintf("not waited for: reading /proc/vmallocinfo: %v", err)
		}
		areas := moduleAreas(string(b))
		switch {
		case areas < n:
			// Every module loaded has its core area: these are named in
			// a way this count does not know.
			return fmt.Sprintf("not waited for: /proc/vmallocinfo names %d module areas for %d modules", areas, n)
		case areas > n:
			settled = 0
		default:
			if settled++; settled == 2 {
				return "freed"
			}
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %v (%d module areas for %d modules)", timeout, areas, n)
			logf("the kernel had not freed the modules' init sections: %s; going on", msg)
			return msg
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// moduleInitFreeKnown says whether the kernel release (uname -r) keeps
// module memory as awaitModuleInitFree reads it: one core and one init
// area per module (Linux 6.4 gave each kind of section an area of its
// own) and a /proc/vmallocinfo that takes the purge lock (not since 6.9).
// Debian bookworm's 6.1 does; for a newer kernel the boot goes on without
// the wait, as before it, rather than on a count that means something else.
func moduleInitFreeKnown(release string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major < 6 || major == 6 && minor < 4
}

// kernelRelease is uname -r.
func kernelRelease() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// moduleAreas counts the vmalloc areas of loaded modules (core and init) in
// /proc/vmallocinfo: those allocated from the module loader.
func moduleAreas(vmallocinfo string) int {
	areas := 0
	for _, line := range strings.Split(vmallocinfo, "\n") {
		if strings.Contains(line, "load_module") || strings.Contains(line, "module_alloc") || strings.Contains(line, "move_module") {
			areas++
		}
	}
	return areas
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	empty := []byte{0}
	_, _, e := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(&empty[0])), 0)
	if e != 0 && e != syscall.EEXIST {
		return e
	}
	return nil
}

// openReport finds the virtio serial port named "hil" (no udev here, so
// look it up in sysfs rather than /dev/virtio-ports).
func openReport() error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, p := range ports {
			name, _ := os.ReadFile(p)
			if strings.TrimSpace(string(name)) == "hil" {
				dev := "/dev/" + filepath.Base(filepath.Dir(p))
				f, err := os.OpenFile(dev, os.O_RDWR, 0)
				if err != nil {
					return err
				}
				rep = f
				go readCommands(f)
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no virtio port named hil in /sys/class/virtio-ports (found %v)", ports)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	appMu     sync.Mutex
	appPid    int
	powerOff  = make(chan struct{})
	closeOnce sync.Once
)

// readCommands reads the harness's commands. A virtio port reads EOF while
// no host is connected (e.g. while a snapshot is restored into a new QEMU),
// so EOF means "wait", not "stop".
func readCommands(f *os.File) {
	var pending []byte
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if n == 0 || err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			handle(strings.TrimSpace(string(pending[:i])))
			pending = pending[i+1:]
		}
	}
}

func handle(cmd string) {
	kind, arg, _ := strings.Cut(cmd, " ")
	switch kind {
	case "ping":
		report("pong", "")
	case "time":
		ns, err := strconv.ParseInt(arg, 10, 64)
		if err != nil {
			return
		}
		tv := syscall.NsecToTimeval(ns)
		if err := syscall.Settimeofday(&tv); err != nil {
			logf("setting the clock: %v", err)
		}
	case "signal":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return
		}
		appMu.Lock()
		pid := appPid
		appMu.Unlock()
		if pid > 0 {
			syscall.Kill(pid, syscall.Signal(n))
		}
	case "poweroff":
		closeOnce.Do(func() { close(powerOff) })
	case "run":
		var rc guestwire.Run
		if err := json.Unmarshal([]byte(arg), &rc); err != nil {
			report("fail", fmt.Sprintf("parsing the run command: %v", err))
			return
		}
		runOnce.Do(func() { runCh <- rc })
		// Let main take the app's start on this P now: otherwise it waits
		// while this goroutine blocks in its next read, until sysmon takes
		// the P back (17 to 105 ms measured on a restored guest).
		runtime.Gosched()
	case "stats":
		b, _ := json.Marshal(readCounters())
		report("stats", arg+" "+string(b))
	}
}

func setupNet(iface string) error {
	if err := ifUp("lo"); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, err := os.Stat("/sys/class/net/eth0"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			names, _ := os.ReadDir("/sys/class/net")
			var found []string
			for _, n := range names {
				found = append(found, n.Name())
			}
			return fmt.Errorf("the virtio NIC never appeared as eth0 (interfaces: %v)", found)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if iface != "eth0" {
		if err := ifRename("eth0", iface); err != nil {
			return fmt.Errorf("renaming eth0 to %s: %w", iface, err)
		}
	}
	if err := ifUp(iface); err != nil {
		return fmt.Errorf("bringing %s up: %w", iface, err)
	}
	return nil
}

type ifreq struct {
	Name [16]byte
	Data [24]byte
}

func ioctlIf(req uintptr, r *ifreq) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(r))); e != 0 {
		return e
	}
	return nil
}

func ifUp(name string) error {
	var r ifreq
	copy(r.Name[:], name)
	if err := ioctlIf(syscall.SIOCGIFFLAGS, &r); err != nil {
		return err
	}
	flags := *(*uint16)(unsafe.Pointer(&r.Data[0]))
	*(*uint16)(unsafe.Pointer(&r.Data[0])) = flags | syscall.IFF_UP
	return ioctlIf(syscall.SIOCSIFFLAGS, &r)
}

func ifIndex(name string) (int, error) {
	var r ifreq
	copy(r.Name[:], name)
	if err := ioctlIf(syscall.SIOCGIFINDEX, &r); err != nil {
		return 0, fmt.Errorf("the index of %s: %w", name, err)
	}
	return int(*(*int32)(unsafe.Pointer(&r.Data[0]))), nil
}

func ifRename(from, to string) error {
	if len(to) > 15 {
		return fmt.Errorf("interface name %q longer than 15 bytes", to)
	}
	var r ifreq
	copy(r.Name[:], from)
	copy(r.Data[:16], to)
	return ioctlIf(syscall.SIOCSIFNAME, &r)
}

// run starts the app, reports it started, and relays its output and exit.
func run(cfg guestwire.Run, personality string) {
	if len(cfg.Args) == 0 {
		fail("the image config gives no entrypoint or cmd to run")
	}
	env := cfg.Env
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	hasPath := false
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path, hasPath = v, true
		}
	}
	if !hasPath {
		env = append(env, "PATH="+path)
	}
	argv0 := cfg.Args[0]
	if !strings.Contains(argv0, "/") {
		found := ""
		for _, d := range filepath.SplitList(path) {
			p := filepath.Join(d, argv0)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				found = p
				break
			}
		}
		if found == "" {
			exitWith(127, fmt.Sprintf("exec %s: executable file not found in $PATH (%s)", argv0, path))
		}
		argv0 = found
	}
	cmd := &exec.Cmd{Path: argv0, Args: cfg.Args, Env: env, Dir: cfg.Dir}
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cred, err := credential(cfg.User)
	if err != nil {
		exitWith(126, err.Error())
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setsid: true}
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	var wg sync.WaitGroup
	pump := func(kind string, r interface{ Read([]byte) (int, error) }) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			report(kind, sc.Text())
		}
	}
	if err := startApp(cmd, personality); err != nil {
		// The kernel's own words (e.g. ENOENT when the ELF interpreter is
		// missing), as a shell would print them.
		exitWith(127, fmt.Sprintf("exec %s: %v", argv0, err))
	}
	appMu.Lock()
	appPid = cmd.Process.Pid
	appMu.Unlock()
	report("started", fmt.Sprintf("%d %d", cmd.Process.Pid, time.Now().UnixNano()))
	wg.Add(2)
	go pump("out", stdout)
	go pump("err", stderr)
	wg.Wait()
	cmd.Wait()
	st := cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		report("signal", signalName(ws.Signal()))
	} else {
		report("exit", strconv.Itoa(st.ExitCode()))
	}
	finish()
}

// perLinux32 is PER_LINUX32 from <linux/personality.h>.
const perLinux32 = 0x0008

// startApp starts cmd, under the personality asked for. A personality
// belongs to the thread that sets it and is inherited by what it forks,
// so the thread is locked while it sets it and forks.
func startApp(cmd *exec.Cmd, personality string) error {
	if personality == "" {
		return cmd.Start()
	}
	if personality != "linux32" {
		return fmt.Errorf("unknown personality %q (want linux32)", personality)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if _, _, e := syscall.RawSyscall(syscall.SYS_PERSONALITY, perLinux32, 0, 0); e != 0 {
		return fmt.Errorf("personality(PER_LINUX32): %w", e)
	}
	return cmd.Start()
}

func exitWith(code int, msg string) {
	report("err", "hil-init: "+msg)
	report("exit", strconv.Itoa(code))
	finish()
}

// finish waits for the harness to acknowledge the exit report (so nothing
// is lost in the port's queue) and powers off.
func finish() {
	select {
	case <-powerOff:
	case <-time.After(3 * time.Second):
	}
	poweroff()
}

func credential(user string) (*syscall.Credential, error) {
	if user == "" || user == "root" || user == "0" {
		return nil, nil
	}
	name, group, _ := strings.Cut(user, ":")
	uid, gid := -1, -1
	if n, err := strconv.Atoi(name); err == nil {
		uid = n
	} else if e := lookup("/etc/passwd", name); e != nil && len(e) > 3 {
		uid, _ = strconv.Atoi(e[2])
		gid, _ = strconv.Atoi(e[3])
	} else {
		return nil, fmt.Errorf("user %q not found in the image's /etc/passwd", name)
	}
	if group != "" {
		if n, err := strconv.Atoi(group); err == nil {
			gid = n
		} else if e := lookup("/etc/group", group); e != nil && len(e) > 2 {
			gid, _ = strconv.Atoi(e[2])
		} else {
			return nil, fmt.Errorf("group %q not found in the image's /etc/group", group)
		}
	}
	if gid < 0 {
		gid = uid
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func lookup(file, name string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 0 && f[0] == name {
			return f
		}
	}
	return nil
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGILL: "SIGILL", syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT",
	syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL",
	syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
}

func signalName(s syscall.Signal) string {
	if n, ok := signalNames[s]; ok {
		return n
	}
	return "SIG" + strconv.Itoa(int(s))
}
