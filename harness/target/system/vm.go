package system

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"golang.org/x/sys/unix"

	"github.com/hilproject/hil/internal/jsonfmt"

	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/link/qemustream"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/system/guestwire"
	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/owner"
)

// VM is one running guest.
type VM struct {
	t     *Target
	p     *plan
	level bootLevel // how it came up: cold, base or app snapshot

	tmp     string
	net     *qemustream.Link
	repLn   *net.UnixListener
	rep     net.Conn
	repMu   sync.Mutex // serialises writes to rep
	cmd     *exec.Cmd
	qmpPath string

	// Liveness (liveness.go): a QMP monitor of the check's own, the time of
	// the guest's last sign of life, and the windows in which hil itself
	// paused the VM or stopped reading the report port.
	livePath  string
	liveMu    sync.Mutex
	liveMon   *qmpMonitor
	liveHung  error // sticky: QEMU once failed to answer in time
	liveReady chan error
	lastSign  atomic.Int64 // unix nanos
	pausing   atomic.Int32 // > 0 while hil pauses the VM (snapshot)
	pauses    atomic.Uint64
	readBusy  atomic.Int32 // > 0 while the report reader waits on the host side

	consoleLog  *os.File
	consolePath string
	tailMu      sync.Mutex
	tail        []string // last console lines, for error messages
	panicLine   string

	out       chan target.Line
	outMu     sync.Mutex
	outClosed bool
	stop      chan struct{} // closed by Close

	started  chan struct{} // app started (cold) or guest answered (warm)
	startErr error
	startOne sync.Once

	exited   chan struct{}
	exit     target.Exit
	exitErr  error
	exitOnce sync.Once

	qemuDone chan struct{}
	qemuErr  error

	readySeen bool
	bootStart time.Time
	// runSent is when the app's command line went to hil-init (zero on an
	// app-level restore, where the app runs already).
	runSent time.Time
	// startedAt is when the start ended (hil-init's "started", or a failure).
	startedAt time.Time

	idle     chan struct{} // hil-init is idle, waiting for "run" (cold boot)
	idleOnce sync.Once

	// Receive counters: "stats SEQ" answered by "stats SEQ JSON".
	statsMu   sync.Mutex
	statsSeq  int
	statsWait map[int]chan string

	infoMu sync.Mutex
	info   target.Info

	closeOnce sync.Once
	closeErr  error
}

var (
	_ target.App             = (*VM)(nil)
	_ target.DeliveryCounter = (*VM)(nil)
)

// start launches QEMU for p: cold (meta nil), or restoring the snapshot of
// level (base or app) whose metadata is meta.
func (t *Target) start(ctx context.Context, p *plan, level bootLevel, meta *snapshotMeta) (_ *VM, err error) {
	t0 := time.Now()
	d := newVM(t, p, level, t0)
	// Every phase below records what it made in d (temp dir, sockets,
	// console log, QEMU), so Close undoes exactly what exists on any failure.
	defer func() {
		if err != nil {
			if meta != nil && d.killedFromOutside() {
				err = &restoreKilledError{err}
			}
			d.Close()
		}
	}()
	repPath, err := d.makeSockets()
	if err != nil {
		return nil, err
	}
	if err := d.launchQEMU(repPath); err != nil {
		return nil, err
	}

	timeout := t.o.bootTimeout
	if meta != nil && timeout > 10*time.Second {
		// A restore either works in well under a second or not at all;
		// fail fast so that Boot can fall back to a cold boot.
		timeout = 10 * time.Second
	}
	bootCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := d.connectQEMU(bootCtx); err != nil {
		return nil, err
	}
	if err := d.runApp(bootCtx, meta); err != nil {
		return nil, err
	}
	if err := d.waitStarted(bootCtx); err != nil {
		return nil, err
	}
	d.describeBoot(t0, meta)
	return d, nil
}

// newVM is the VM of one boot of p, before anything is made for it.
func newVM(t *Target, p *plan, level bootLevel, t0 time.Time) *VM {
	return &VM{
		t: t, p: p, level: level, bootStart: t0,
		idle:      make(chan struct{}),
		statsWait: map[int]chan string{},
		out:       make(chan target.Line, 4096),
		stop:      make(chan struct{}),
		started:   make(chan struct{}),
		exited:    make(chan struct{}),
		qemuDone:  make(chan struct{}),
		liveReady: make(chan error, 1),
		info:      target.Info{},
	}
}

// makeSockets makes the VM's temp dir with the NIC's and the report port's
// listening sockets, names the QMP and liveness sockets QEMU will listen
// on, and opens the console log. It returns the report socket's path for
// QEMU's command line. What it made is in d, for Close.
func (d *VM) makeSockets() (repPath string, err error) {
	// Short paths: unix socket names are limited to 108 bytes. The name
	// records this process as the owner, so that the next hil removes the
	// dir if this one is killed (internal/owner).
	if d.tmp, err = owner.MkdirTemp("", TempPrefix); err != nil {
		return "", target.Infra(err)
	}
	if d.net, err = qemustream.Listen(filepath.Join(d.tmp, "net.sock")); err != nil {
		return "", target.Infra(err)
	}
	repPath = filepath.Join(d.tmp, "rep.sock")
	if d.repLn, err = net.ListenUnix("unix", &net.UnixAddr{Name: repPath, Net: "unix"}); err != nil {
		return "", target.Infra(fmt.Errorf("listening for the guest report port: %w", err))
	}
	d.qmpPath = filepath.Join(d.tmp, "qmp.sock")
	d.livePath = filepath.Join(d.tmp, "live.sock")
	logDir := d.t.o.logDir
	if logDir == "" {
		if logDir, err = cache.Dir("logs", "system"); err != nil {
			return "", target.Infra(err)
		}
	}
	pruneLogs(logDir, 100)
	if d.consoleLog, err = os.CreateTemp(logDir, time.Now().Format("20060102-150405-")+"*.console.log"); err != nil {
		return "", target.Infra(fmt.Errorf("creating the console log: %w", err))
	}
	d.consolePath = d.consoleLog.Name()
	return repPath, nil
}

// launchQEMU starts QEMU (cold, or loading the snapshot of d.level) with its
// output read into the console log, and a watcher that closes d.qemuDone
// when it exits.
func (d *VM) launchQEMU(repPath string) error {
	p := d.p
	l := launch{
		m: p.m, cpus: d.t.o.cpus, kernel: p.kernelFile, initrd: p.initramfs, append: p.appendArgs,
		netdev: d.net.NetdevArg("n0"), report: repPath, qmp: d.qmpPath, live: d.livePath,
	}
	switch d.level {
	case bootApp:
		l.incoming = p.snapshot
	case bootBase:
		l.incoming = p.base
	}
	args := qemuArgs(l)
	d.cmd = exec.Command(p.qemu, args...)
	d.cmd.SysProcAttr = qemuProcAttr()
	d.cmd.Stdin = nil
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		return target.Infra(err)
	}
	d.cmd.Stderr = d.cmd.Stdout
	if l.incoming != "" {
		f, err := os.Open(l.incoming)
		if err != nil {
			return target.Infra(fmt.Errorf("opening the snapshot: %w", err))
		}
		// QEMU has its own copy after Start.
		defer f.Close()
		d.cmd.ExtraFiles = []*os.File{f}
	}
	fmt.Fprintf(d.consoleLog, "# %s %s\n", p.qemu, strings.Join(args, " "))
	if l.incoming != "" {
		fmt.Fprintf(d.consoleLog, "# restoring %s (fd 3)\n", l.incoming)
	}
	if err := d.cmd.Start(); err != nil {
		return target.Infra(fmt.Errorf("starting %s: %w", p.qemu, err))
	}
	consoleDone := make(chan struct{})
	go d.readConsole(stdout, consoleDone)
	go func() {
		err := d.cmd.Wait()
		<-consoleDone
		d.qemuErr = err
		close(d.qemuDone)
		d.onQEMUExit()
	}()
	return nil
}

// connectQEMU accepts QEMU's connections to the report port and the NIC,
// and starts connecting the liveness monitor meanwhile (waitStarted
// collects it). A QEMU that exits or a bootCtx that ends stops the wait.
func (d *VM) connectQEMU(bootCtx context.Context) error {
	// Connected while the guest boots (or the snapshot loads): no wait.
	go func() { d.liveReady <- d.connectLive(bootCtx) }()
	stopWatch := context.AfterFunc(bootCtx, func() { d.repLn.SetDeadline(time.Unix(1, 0)) })
	go func() {
		<-d.qemuDone
		d.repLn.SetDeadline(time.Unix(1, 0))
	}()
	netErr := make(chan error, 1)
	go func() { netErr <- d.net.Accept(bootCtx) }()
	rep, err := d.repLn.AcceptUnix()
	stopWatch()
	if err != nil {
		return d.bootFailure(bootCtx, "waiting for QEMU to open the report port", err)
	}
	d.rep = rep
	if err := <-netErr; err != nil {
		return d.bootFailure(bootCtx, "waiting for QEMU to connect the NIC", err)
	}
	go d.readReports(rep)
	return nil
}

// runApp gets the app running for d.level: a restored guest is resumed
// (meta non-nil) and, at the base level, given the app's command line; a
// cold guest gets it once hil-init is idle (startApp).
func (d *VM) runApp(bootCtx context.Context, meta *snapshotMeta) error {
	if meta != nil {
		// The snapshot was taken with the CPUs stopped, so the restored VM
		// stays paused until told to run.
		if err := d.resume(bootCtx); err != nil {
			return d.bootFailure(bootCtx, "restoring the snapshot", err)
		}
		d.setInfo(target.Info{"restored_ms": jsonfmt.Millis(time.Since(d.bootStart))})
		// The restored guest's clock stopped when the snapshot was taken.
		d.send(fmt.Sprintf("time %d", time.Now().UnixNano()))
	}
	switch d.level {
	case bootApp:
		d.send("ping") // the app runs already: its pong says the guest does
	case bootBase:
		// hil-init waits for its app, as when the snapshot was taken.
		d.runSent = time.Now()
		if err := d.send("run " + string(d.p.run)); err != nil {
			return d.bootFailure(bootCtx, "sending the app's command line to the guest", err)
		}
	case bootCold:
		if err := d.startApp(bootCtx); err != nil {
			return err
		}
	}
	return nil
}

// waitStarted waits for the guest to report the app started and for the
// liveness monitor to be connected.
func (d *VM) waitStarted(bootCtx context.Context) error {
	select {
	case <-d.started:
	case <-bootCtx.Done():
		return d.bootFailure(bootCtx, "waiting for the guest to start the app", bootCtx.Err())
	case <-d.qemuDone:
		return d.bootFailure(bootCtx, "booting", errors.New("QEMU exited"))
	}
	if d.startErr != nil {
		return d.startErr
	}
	select {
	case err := <-d.liveReady:
		if err != nil {
			return d.bootFailure(bootCtx, "connecting the liveness monitor", err)
		}
	case <-bootCtx.Done():
		return d.bootFailure(bootCtx, "connecting the liveness monitor", bootCtx.Err())
	}
	return nil
}

// kernelImageKind says what -kernel was, for the device facts.
func (p *plan) kernelImageKind() string {
	if p.kernelFile != p.kernel.Image {
		return "direct"
	}
	if p.kernel.Arch == "armhf" {
		return "zimage"
	}
	return "image"
}

// describeBoot records the booted VM in its Info and, for an app-level
// restore, replays the app's ready line recorded at snapshot time.
func (d *VM) describeBoot(t0 time.Time, meta *snapshotMeta) {
	p, level := d.p, d.level
	d.lastSign.Store(time.Now().UnixNano())
	mode := string(level)
	d.setInfo(target.Info{
		"target": "system", "emulator": p.qemuVersion, "kernel": p.kernel.Release,
		"kernel_package": p.kernel.Package, "kernel_args": p.appendArgs, "kernel_image": p.kernelImageKind(), "init": p.initHash,
		"boot": mode, "boot_ms": jsonfmt.Millis(time.Since(t0)),
		"console_log": d.consolePath, "memory_mb": p.m.memoryMB,
		"machine": p.m.machine, "cpu": p.m.cpu, "kernel_arch": p.m.kernelArch,
		"snapshot_key": p.snapshotKey, "base_snapshot_key": p.baseKey, "pid": d.cmd.Process.Pid,
		"liveness": fmt.Sprintf("QEMU process, QMP query-status and hil-init's heartbeat; dead after %s without an answer", d.t.o.liveTimeout),
	})
	if p.m.board != "" {
		d.setInfo(target.Info{"board": p.m.board})
	}
	if p.m.linux32 {
		d.setInfo(target.Info{"personality": "linux32 (uname -m: armv8l)"})
	}
	if !d.runSent.IsZero() && d.startedAt.After(d.runSent) {
		d.setInfo(target.Info{"app_start_ms": jsonfmt.Millis(d.startedAt.Sub(d.runSent))})
	}
	if level == bootApp {
		// hil-init reported the interface before the snapshot.
		d.setInfo(meta.Net)
	}
	if level == bootApp && meta.Ready != nil {
		// The app printed its ready line before the snapshot was taken, so
		// the restored guest will not print it again: replay the recorded
		// line, after a console note saying so.
		d.emit(target.Line{Stream: target.Console, Text: "hil: restored from snapshot " + p.snapshotKey + "; replaying the app's ready line recorded at snapshot time", Time: time.Now()})
		l := *meta.Ready
		l.Time = time.Now()
		d.emit(l)
		d.setInfo(target.Info{"ready_replayed": true})
	}
}

// startApp waits on a cold boot for hil-init to be idle, saves the base
// snapshot there when there is none yet, and sends the app's command.
func (d *VM) startApp(ctx context.Context) error {
	select {
	case <-d.idle:
	case <-d.started: // hil-init failed
		return d.bootFailure(ctx, "waiting for the guest init", d.startErr)
	case <-ctx.Done():
		return d.bootFailure(ctx, "waiting for the guest init to be ready for the app", ctx.Err())
	case <-d.qemuDone:
		return d.bootFailure(ctx, "booting", errors.New("QEMU exited"))
	}
	d.setInfo(target.Info{"init_idle_ms": jsonfmt.Millis(time.Since(d.bootStart))})
	if d.p.base != "" {
		if _, err := os.Stat(d.p.base); err != nil {
			d.snapshotAt(d.p.base, snapshotMeta{Key: d.p.baseKey, Level: bootBase}, "base")
		}
	}
	d.runSent = time.Now()
	if err := d.send("run " + string(d.p.run)); err != nil {
		return d.bootFailure(ctx, "sending the app's command line to the guest", err)
	}
	return nil
}

// snapshotAt saves the VM to path, pausing it: that is no death
// (liveness.go). A failure is noted, not fatal: the boot goes on without.
func (d *VM) snapshotAt(path string, meta snapshotMeta, what string) {
	// The app level keeps the facts' names from before there were two
	// levels (snapshot_saved_ms); the base level's are base_snapshot_*.
	prefix := ""
	if what != "app" {
		prefix = what + "_"
	}
	t0 := time.Now()
	d.pausing.Add(1)
	d.pauses.Add(1)
	err := d.saveSnapshot(path, meta)
	d.lastSign.Store(time.Now().UnixNano())
	d.pauses.Add(1)
	d.pausing.Add(-1)
	// The guest's clock stood still while the VM was stopped: set it again,
	// so that the pause hil made does not show in the app's timestamps.
	d.send(fmt.Sprintf("time %d", time.Now().UnixNano()))
	if err != nil {
		d.setInfo(target.Info{prefix + "snapshot_error": err.Error()})
		d.emit(target.Line{Stream: target.Console, Text: "hil: " + what + " snapshot not saved: " + err.Error(), Time: time.Now()})
		return
	}
	d.setInfo(target.Info{prefix + "snapshot_saved_ms": jsonfmt.Millis(time.Since(t0))})
}

// RxCounters reads the capture interface's receive counters in the guest
// (hil-init answers "stats" from sysfs and its counting sockets).
func (d *VM) RxCounters(ctx context.Context) (link.Counters, error) {
	d.statsMu.Lock()
	d.statsSeq++
	seq := d.statsSeq
	ch := make(chan string, 1)
	d.statsWait[seq] = ch
	d.statsMu.Unlock()
	defer func() {
		d.statsMu.Lock()
		delete(d.statsWait, seq)
		d.statsMu.Unlock()
	}()
	var c link.Counters
	if err := d.send(fmt.Sprintf("stats %d", seq)); err != nil {
		return c, fmt.Errorf("asking the guest for its interface counters: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select {
	case js := <-ch:
		if err := json.Unmarshal([]byte(js), &c); err != nil {
			return c, fmt.Errorf("the guest's interface counters %q: %w", js, err)
		}
		return c, nil
	case <-d.exited:
		return c, errors.New("the guest's interface counters: the app has ended and the guest is powering off")
	case <-ctx.Done():
		return c, fmt.Errorf("the guest did not answer for its interface counters: %w", ctx.Err())
	}
}

// onNet records hil-init's report of the capture interface.
func (d *VM) onNet(js string) {
	var n guestwire.Net
	if err := json.Unmarshal([]byte(js), &n); err != nil {
		d.setInfo(target.Info{"rx_offload": "unknown (hil-init said " + js + ")"})
		return
	}
	d.setInfo(target.Info{"rx_offload": n.RxOffload, "rx_offload_features": n.Features, "iface": n.Iface,
		"iface_mtu": n.MTU, "ethtool_ms": float64(n.EthtoolUS) / 1000, "guest_boot_ms": n.BootMS})
}

// netInfo is what onNet recorded, for an app-level snapshot's metadata.
func (d *VM) netInfo() target.Info {
	info := d.Info()
	m := target.Info{}
	for _, k := range []string{"rx_offload", "rx_offload_features", "iface", "iface_mtu"} {
		if v, ok := info[k]; ok {
			m[k] = v
		}
	}
	return m
}

// bootFailure turns a failed boot into the clearest infra error: a kernel
// panic seen on the console, QEMU's own exit, or the deadline.
func (d *VM) bootFailure(ctx context.Context, what string, err error) error {
	if d.startErr != nil {
		return d.startErr
	}
	select {
	case <-d.qemuDone:
	case <-time.After(200 * time.Millisecond):
	}
	if pl := d.panic(); pl != "" {
		return target.Infra(fmt.Errorf("guest kernel panic while %s: %s (console log %s)", what, pl, d.consolePath))
	}
	select {
	case <-d.qemuDone:
		// Named as the liveness check names a death: what died and how
		// ("the emulator qemu-system-arm (pid 4242) was killed by signal 9
		// (SIGKILL)"), also when onQEMUExit has not said so yet.
		de := d.qemuDeath()
		return target.Infra(fmt.Errorf("%s %s while %s; %s", de.What, de.How, what, de.Detail))
	default:
	}
	if ctx.Err() != nil {
		return target.Infra(fmt.Errorf("guest did not get there in time while %s: %w; last console lines:\n%s\n(console log %s)", what, ctx.Err(), d.consoleTail(), d.consolePath))
	}
	return target.Infra(fmt.Errorf("%s: %w", what, err))
}

func (d *VM) setInfo(m target.Info) {
	d.infoMu.Lock()
	defer d.infoMu.Unlock()
	for k, v := range m {
		d.info[k] = v
	}
}

func (d *VM) readConsole(r io.Reader, done chan struct{}) {
	defer close(done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		d.consoleLog.WriteString(line + "\n")
		if d.t.o.consoleSink != nil {
			fmt.Fprintln(d.t.o.consoleSink, line)
		}
		d.tailMu.Lock()
		d.tail = append(d.tail, line)
		if len(d.tail) > 20 {
			d.tail = d.tail[len(d.tail)-20:]
		}
		if d.panicLine == "" && strings.Contains(line, "Kernel panic - not syncing") {
			d.panicLine = strings.TrimSpace(line)
		}
		d.tailMu.Unlock()
		d.emit(target.Line{Stream: target.Console, Text: line, Time: time.Now()})
	}
}

func (d *VM) panic() string {
	d.tailMu.Lock()
	defer d.tailMu.Unlock()
	return d.panicLine
}

func (d *VM) consoleTail() string {
	d.tailMu.Lock()
	defer d.tailMu.Unlock()
	return "  " + strings.Join(d.tail, "\n  ")
}

// emit delivers a line to Output unless Output is closed; it blocks while
// the consumer is behind, until Close.
func (d *VM) emit(l target.Line) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	if d.outClosed {
		return
	}
	select {
	case d.out <- l:
		return
	default:
	}
	// The consumer is behind: while we wait for it, nobody reads the
	// guest's beats, and their absence says nothing about the guest.
	d.readBusy.Add(1)
	defer func() {
		d.lastSign.Store(time.Now().UnixNano())
		d.readBusy.Add(-1)
	}()
	select {
	case d.out <- l:
	case <-d.stop:
	}
}

func (d *VM) closeOutput() {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	if !d.outClosed {
		d.outClosed = true
		close(d.out)
	}
}

func (d *VM) markStarted(err error) {
	d.startOne.Do(func() {
		// Set before d.started closes, read by describeBoot after.
		d.startErr, d.startedAt = err, time.Now()
		close(d.started)
	})
}

func (d *VM) finish(e target.Exit, err error) {
	d.exitOnce.Do(func() {
		d.exit, d.exitErr = e, err
		close(d.exited)
		d.closeOutput()
	})
}

// readReports handles hil-init's line protocol (see hilinit/main.go).
func (d *VM) readReports(c net.Conn) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 2<<20)
	for sc.Scan() {
		kind, text, _ := strings.Cut(sc.Text(), " ")
		now := time.Now()
		// Every line is a sign of life; "beat" says nothing else.
		d.lastSign.Store(now.UnixNano())
		switch kind {
		case "hello":
			d.send(fmt.Sprintf("time %d", now.UnixNano()))
		case "started":
			d.markStarted(nil)
		case "pong":
			d.markStarted(nil)
		case "idle":
			d.onIdle(text)
			d.idleOnce.Do(func() { close(d.idle) })
		case "net":
			d.onNet(text)
		case "stats":
			seqText, js, _ := strings.Cut(text, " ")
			seq, _ := strconv.Atoi(seqText)
			d.statsMu.Lock()
			if ch, ok := d.statsWait[seq]; ok {
				ch <- js
			}
			d.statsMu.Unlock()
		case "out", "err":
			l := target.Line{Stream: target.Stdout, Text: text, Time: now}
			if kind == "err" {
				l.Stream = target.Stderr
			}
			d.onAppLine(l)
			d.emit(l)
		case "exit":
			code, _ := strconv.Atoi(text)
			d.markStarted(nil)
			d.finish(target.Exited(code), nil)
			d.send("poweroff")
		case "signal":
			code := 0
			if n := unix.SignalNum(text); n != 0 {
				code = 128 + int(n)
			}
			d.markStarted(nil)
			d.finish(target.KilledBy(text, code), nil)
			d.send("poweroff")
		case "fail":
			err := target.Infra(fmt.Errorf("guest init failed: %s (console log %s)", text, d.consolePath))
			d.markStarted(err)
			d.finish(target.NotObserved("hil-init failed"), err)
		}
	}
}

// onIdle records how hil-init got to idle (a cold boot's).
func (d *VM) onIdle(js string) {
	var idle guestwire.Idle
	if js == "" {
		js = "nothing"
	}
	if err := json.Unmarshal([]byte(js), &idle); err != nil {
		d.setInfo(target.Info{"module_init_free": "unknown (hil-init said " + js + ")"})
		return
	}
	d.setInfo(target.Info{"module_init_free": idle.ModuleInitFree, "module_init_free_ms": jsonfmt.Millis(time.Duration(idle.ModuleInitFreeUS) * time.Microsecond)})
}

// onAppLine takes the app-level snapshot when the app first reports ready
// on a cold or base boot, before the ready line reaches Output: the runner
// starts the scenario only after the VM is saved and running again.
func (d *VM) onAppLine(l target.Line) {
	if d.level == bootApp || d.p.snapshot == "" || d.p.cfg.Ready == nil {
		return
	}
	// Only readReports calls this: no lock needed for readySeen.
	if d.readySeen || !d.p.cfg.Ready(l) {
		return
	}
	d.readySeen = true
	if _, err := os.Stat(d.p.snapshot); err == nil {
		return // another boot saved it meanwhile
	}
	d.snapshotAt(d.p.snapshot, snapshotMeta{Key: d.p.snapshotKey, Level: bootApp, Ready: &l, Net: d.netInfo()}, "app")
}

// restoreKilledError is a restore that failed because QEMU was killed by
// a signal hil did not send (kill -9 from outside, the OOM killer): it says
// nothing about the snapshot, so Boot neither drops it nor boots cold
// behind the runner's back; the case is an infra-error, retried.
type restoreKilledError struct{ err error }

func (e *restoreKilledError) Error() string { return e.err.Error() }
func (e *restoreKilledError) Unwrap() error { return e.err }

// killedFromOutside reports whether QEMU has ended on a signal that hil
// did not send (hil stops it only through Close, which closes stop).
func (d *VM) killedFromOutside() bool {
	select {
	case <-d.qemuDone:
	default:
		return false
	}
	select {
	case <-d.stop:
		return false
	default:
	}
	ws, ok := d.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// onQEMUExit ends the device when QEMU goes away before the app reported
// its exit: that is the host's or the guest kernel's failure, not the app's.
func (d *VM) onQEMUExit() {
	select {
	case <-d.exited:
		return
	default:
	}
	select {
	case <-d.stop:
		err := target.Infra(errors.New("device closed before the app exited"))
		d.markStarted(err)
		d.finish(target.NotObserved("stopped by hil"), err)
	default:
		err := target.Infra(d.qemuDeath())
		d.markStarted(err)
		d.finish(target.NotObserved("the emulator died first"), err)
	}
}

func (d *VM) send(line string) error {
	d.repMu.Lock()
	defer d.repMu.Unlock()
	if d.rep == nil {
		return errors.New("the guest report port is not connected")
	}
	d.rep.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(d.rep, line+"\n")
	return err
}

// Output streams app stdout/stderr and console lines.
func (d *VM) Output() <-chan target.Line { return d.out }

// Link is the app's capture interface.
func (d *VM) Link() link.Link { return d.net }

// Signal asks hil-init to deliver sig to the app.
func (d *VM) Signal(sig syscall.Signal) error {
	select {
	case <-d.exited:
		return fmt.Errorf("signal %v: the app already ended (%s)", sig, d.exit)
	default:
	}
	if err := d.send(fmt.Sprintf("signal %d", int(sig))); err != nil {
		return target.Infra(fmt.Errorf("sending %v to the guest init: %w", sig, err))
	}
	return nil
}

// Wait blocks until the app exits (or the guest fails) or ctx is done.
func (d *VM) Wait(ctx context.Context) (target.Exit, error) {
	select {
	case <-d.exited:
		return d.exit, d.exitErr
	case <-ctx.Done():
		return target.Exit{}, fmt.Errorf("waiting for the app to exit in the system guest: %w", ctx.Err())
	}
}

// Info describes the boot.
func (d *VM) Info() target.Info {
	d.infoMu.Lock()
	defer d.infoMu.Unlock()
	return d.info.Clone()
}

// ConsoleLog is the path of this boot's full console log.
func (d *VM) ConsoleLog() string { return d.consolePath }

// Close kills QEMU's whole process group and removes sockets and temp dir.
func (d *VM) Close() error {
	d.closeOnce.Do(func() {
		close(d.stop)
		if d.cmd != nil && d.cmd.Process != nil {
			select {
			case <-d.qemuDone:
			default:
				syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
				select {
				case <-d.qemuDone:
				case <-time.After(10 * time.Second):
					d.closeErr = fmt.Errorf("QEMU (pid %d) did not die after SIGKILL", d.cmd.Process.Pid)
				}
			}
		}
		d.markStarted(target.Infra(errors.New("device closed")))
		d.finish(target.NotObserved("stopped by hil"), target.Infra(errors.New("device closed before the app exited")))
		d.closeLive()
		d.repMu.Lock()
		if d.rep != nil {
			d.rep.Close()
		}
		d.repMu.Unlock()
		if d.repLn != nil {
			d.repLn.Close()
		}
		if d.net != nil {
			d.net.Close()
		}
		if d.consoleLog != nil {
			d.consoleLog.Close()
		}
		if d.p.ownInitramfs {
			os.Remove(d.p.initramfs)
		}
		if d.tmp != "" {
			if err := os.RemoveAll(d.tmp); err != nil && d.closeErr == nil {
				d.closeErr = err
			}
		}
	})
	return d.closeErr
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func pruneLogs(dir string, keep int) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.console.log"))
	if len(logs) <= keep {
		return
	}
	// Names start with a timestamp: the oldest sort first.
	for _, l := range logs[:len(logs)-keep] {
		os.Remove(l)
	}
}

// DeliveryDiagnosis reads QEMU's virtio-net receive queue (whether the
// frames that did not reach the guest's interface wait in QEMU for
// buffers the guest did not post, or QEMU was not told of, or were handed
// to a guest that did not take them) and its receive filter. A QEMU that
// does not answer within 2 s (or ctx) gets "".
func (d *VM) DeliveryDiagnosis(ctx context.Context) (string, bool) {
	type answer struct {
		where   string
		filters bool
	}
	mon, err := d.qmp()
	if err != nil {
		return "", false
	}
	ch := make(chan answer, 1)
	go func() {
		where, filters := virtioNetRx(mon)
		ch <- answer{where, filters}
	}()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	select {
	case a := <-ch:
		mon.Disconnect()
		return a.where, a.filters
	case <-ctx.Done():
		// Closing the connection ends the QMP call the goroutine waits in.
		mon.Disconnect()
		return "", false
	}
}

// virtioNetRx describes the guest NIC's receive queue and says whether its
// receive filter drops unicast frames for other MACs (not promiscuous).
func virtioNetRx(mon *qmp.SocketMonitor) (string, bool) {
	var where string
	raw, err := qmpRun(mon, "x-query-virtio", nil)
	if err != nil {
		return "", false
	}
	var devs []struct{ Name, Path string }
	json.Unmarshal(raw, &devs)
	for _, dev := range devs {
		if dev.Name != "virtio-net" {
			continue
		}
		raw, err := qmpRun(mon, "x-query-virtio-queue-status", map[string]any{"path": dev.Path, "queue": 0})
		if err != nil {
			break
		}
		var q struct {
			Avail     uint16 `json:"shadow-avail-idx"`
			Taken     uint16 `json:"last-avail-idx"`
			Used      uint16 `json:"used-idx"`
			Signalled uint16 `json:"signalled-used"`
			InUse     uint32 `json:"inuse"`
		}
		if json.Unmarshal(raw, &q) == nil {
			where = fmt.Sprintf("QEMU's virtio-net receive queue: avail index %d, taken %d, used index %d, signalled %d, in use %d", q.Avail, q.Taken, q.Used, q.Signalled, q.InUse)
		}
		break
	}
	raw, err = qmpRun(mon, "query-rx-filter", nil)
	if err != nil {
		return where, false
	}
	var nics []struct {
		Promiscuous bool   `json:"promiscuous"`
		Unicast     string `json:"unicast"`
		MAC         string `json:"main-mac"`
	}
	json.Unmarshal(raw, &nics)
	if len(nics) == 1 && !nics[0].Promiscuous && nics[0].Unicast != "all" {
		filter := fmt.Sprintf("the guest's NIC is not promiscuous: QEMU drops unicast frames not for %s", nics[0].MAC)
		if where == "" {
			return filter, true
		}
		return where + "; " + filter, true
	}
	return where, false
}
