//go:build linux

// Command hil-init is PID 1 inside hil's system-target guests. It prepares a
// minimal Linux userland around the image's rootfs (mounts, NIC modules,
// interface name, hostname), runs the app with the image config, and reports
// to the harness over a virtio serial port, separate from the kernel console:
//
//	guest → harness: "hello <version>", "started <pid> <unixnano>",
//	                 "out <text>", "err <text>", "exit <code>",
//	                 "signal <name>", "fail <text>", "pong", "beat"
//	harness → guest: "signal <number>", "time <unixnano>", "ping",
//	                 "poweroff"
//
// "beat" comes every beatInterval from the moment the port is open: the
// harness takes any line as a sign of life and calls a guest that gave
// none for a few seconds dead (hung kernel, starved init), even while QEMU
// itself still runs. The beat loop is part of the guest's memory, so a
// snapshot restored later beats on by itself.
//
// It uses only the standard library so that the harness can build it on
// demand with nothing but the Go toolchain.
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
)

const version = "2"

// beatInterval is how often hil-init tells the harness it is alive. A
// beat wakes the idle guest, which under TCG costs QEMU about 4 ms of host
// CPU (measured: an idle guest costs ~120 ms/s without beats, ~145 with
// one every 200 ms, ~165 every 100 ms); the harness calls a guest dead
// only after 3 s without a sign, so 200 ms leaves a wide margin.
const beatInterval = 200 * time.Millisecond

// config is /.hil/config.json, written by the harness's initramfs builder.
type config struct {
	Args     []string `json:"args"`
	Env      []string `json:"env"`
	Dir      string   `json:"dir"`
	User     string   `json:"user"`
	Iface    string   `json:"iface"`
	Hostname string   `json:"hostname"`
	Modules  []string `json:"modules"` // load order, paths inside the rootfs
	// Personality "linux32" starts the app under PER_LINUX32: 32-bit
	// userland on a 64-bit kernel as a 32-bit Raspberry Pi OS runs it
	// (uname -m says armv8l, not aarch64).
	Personality string `json:"personality,omitempty"`
}

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
	var cfg config
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
	if err := setupNet(cfg.Iface); err != nil {
		fail("setting up the network: %v", err)
	}
	run(cfg)
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
	}
}

func setupNet(iface string) error {
	if err := ifUp("lo"); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	if iface == "" {
		iface = "eth0"
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

func ifRename(from, to string) error {
	if len(to) > 15 {
		return fmt.Errorf("interface name %q longer than 15 bytes", to)
	}
	var r ifreq
	copy(r.Name[:], from)
	copy(r.Data[:16], to)
	return ioctlIf(syscall.SIOCSIFNAME, &r)
}

func run(cfg config) {
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
	if err := startApp(cmd, cfg.Personality); err != nil {
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
