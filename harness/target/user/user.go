//go:build linux

package user

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hilproject/hil/internal/jsonfmt"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/link/veth"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/emu"
	"github.com/hilproject/hil/harness/target/internal/imgrun"
)

type config struct {
	hostArch string
	mtu      int
}

// Option configures the target.
type Option func(*config)

// WithMTU sets the MTU of the app's interface (default 1500).
func WithMTU(n int) Option { return func(c *config) { c.mtu = n } }

// Target boots images as host processes (see the package doc).
type Target struct{ cfg config }

var _ target.Target = (*Target)(nil)

// New returns the user target.
func New(opts ...Option) *Target {
	t := &Target{}
	for _, o := range opts {
		o(&t.cfg)
	}
	return t
}

// Name is "user".
func (t *Target) Name() string { return "user" }

// The user target registers itself as "user" with default options.
func init() {
	target.Register("user", func(target.Params) ([]target.Target, error) { return []target.Target{New()}, nil })
}

// EmulatorGap reports whether an output line of an emulated app is the
// symptom of qemu-user's capture gap (e.g. libpcap's "SIOCETHTOOL(
// ETHTOOL_GET_TS_INFO) ioctl failed: Function not implemented") rather than
// a bug of the app, and says which gap.
func EmulatorGap(line string) (reason string, ok bool) { return emu.Gap(line) }

// Boot flattens img, creates the namespace and veth pair, and starts the
// program. It returns once the process runs.
func (t *Target) Boot(ctx context.Context, img *image.Image, cfg target.RunConfig) (_ target.App, err error) {
	if img == nil {
		return nil, errors.New("user target: no image")
	}
	begin := time.Now()
	d, rootfs, em, err := t.newProcess(ctx, img, cfg)
	if err != nil {
		return nil, err
	}
	cmd, prog, err := d.command(rootfs, em, cfg)
	if err != nil {
		return nil, err
	}

	// The link outlives Boot's ctx: it is the device's, released by Close.
	devCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	// From here on d owns what it made (the cancel, the link, the process):
	// Close undoes whatever of it exists.
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err := d.makeLink(devCtx, cfg.Iface, t.cfg.mtu); err != nil {
		return nil, err
	}
	if err := d.start(cmd, rootfs, prog, begin); err != nil {
		return nil, err
	}
	return d, nil
}

// newProcess flattens img and picks the emulator (none on a matching host),
// then records what it chose in the new Process's info. Nothing it does needs
// undoing: the rootfs is the shared cache's.
func (t *Target) newProcess(ctx context.Context, img *image.Image, cfg target.RunConfig) (*Process, string, emu.Emulator, error) {
	rootfs, err := img.RootFS(ctx)
	if err != nil {
		return nil, "", emu.Emulator{}, fmt.Errorf("user target: flattening %s: %w", img.Ref, err)
	}
	em, err := emu.For(img.Platform, t.cfg.hostArch)
	if err != nil {
		return nil, "", emu.Emulator{}, target.Infra(fmt.Errorf("user target: %w", err))
	}
	if cfg.Board != nil {
		if em, err = em.WithBoard(img.Platform, cfg.Board); err != nil {
			return nil, "", emu.Emulator{}, &target.UnsupportedError{Target: "user", What: "the " + img.Platform.String() + " image on " + cfg.Board.String(), Reason: err.Error()}
		}
	}
	d := &Process{status: imgrun.NewStatus("the app", target.Info{"target": "user", "rootfs": rootfs, "platform": img.Platform.String()})}
	em.Describe(d.status.Set)
	d.status.ProbeEmulator(ctx, em, "native (chroot into the image rootfs)", "qemu-user")
	return d, rootfs, em, nil
}

// command finds the image's program and builds the command that runs it as
// the image's user, with the image's environment: chrooted on a matching
// host, under qemu-user otherwise. It returns the program's path in the
// rootfs for the error that explains a failed exec.
func (d *Process) command(rootfs string, em emu.Emulator, cfg target.RunConfig) (*exec.Cmd, string, error) {
	p, err := imgrun.FindProgram(rootfs, cfg)
	if err != nil {
		return nil, "", err
	}
	argv, workdir, prog, ident := p.Argv, p.Workdir, p.Path, p.User
	env := append([]string{}, cfg.Env...)
	if imgrun.Getenv(env, "PATH") == "" {
		env = append(env, "PATH="+imgrun.DefaultPath)
	}
	if imgrun.Getenv(env, "HOME") == "" {
		home := ident.Home
		if home == "" {
			home = "/"
		}
		env = append(env, "HOME="+home)
	}
	d.status.Set("program", prog)
	d.status.Set("argv", strings.Join(argv, " "))
	d.status.Set("user", fmt.Sprintf("%s (uid %d gid %d)", cfg.User, ident.UID, ident.GID))
	d.status.Set("workdir", workdir)

	var cmd *exec.Cmd
	if em.Native {
		// The kernel resolves the ELF interpreter and the loader the image's
		// libraries inside the chroot: exactly what a container would see,
		// minus /proc, /sys and /dev, which the app does not need to start.
		cmd = &exec.Cmd{Path: prog, Args: argv, Dir: workdir}
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	} else {
		// -L makes the guest's absolute paths (its ELF interpreter, its
		// libraries, /etc) resolve inside the rootfs first; -0 keeps argv[0]
		// as the image gives it. The emulator itself cannot be chrooted
		// without writing it into the shared rootfs.
		if blocker, ok := imgrun.Reachable(rootfs, ident.UID, ident.GID); !ok {
			return nil, "", target.Infra(fmt.Errorf("user target: the image user %q (uid %d) cannot reach the rootfs %s under qemu-user: %s is not searchable by it; put the hil cache where that user can read it (HIL_CACHE=/var/cache/hil)", cfg.User, ident.UID, rootfs, blocker))
		}
		eargs, err := imgrun.EmulatedArgv(rootfs, prog, argv, func(p string) string { return filepath.Join(rootfs, p) })
		if err != nil {
			return nil, "", err
		}
		args := append(append([]string{em.Path}, em.Args()...), "-L", rootfs)
		args = append(args, eargs...)
		dir, rerr := imgrun.Resolve(rootfs, workdir)
		hostDir := filepath.Join(rootfs, dir)
		if fi, serr := os.Stat(hostDir); rerr != nil || serr != nil || !fi.IsDir() {
			hostDir = rootfs
			d.status.Set("workdir", workdir+" (missing in the image; running in /)")
		}
		cmd = &exec.Cmd{Path: em.Path, Args: args, Dir: hostDir}
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.Env = env
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if ident.UID != 0 || ident.GID != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: ident.UID, Gid: ident.GID}
	}
	return cmd, prog, nil
}

// makeLink creates the veth pair and the namespace the app runs in, named
// iface (eth0 by default) on the app's side. d.link holds it as soon as it
// exists, so the caller's Close removes it on a later failure.
func (d *Process) makeLink(devCtx context.Context, iface string, mtu int) error {
	if iface == "" {
		iface = "eth0"
	}
	vopts := []veth.Option{veth.WithName(iface)}
	if mtu != 0 {
		vopts = append(vopts, veth.WithMTU(mtu))
	}
	l, err := veth.New(devCtx, vopts...)
	if err != nil {
		return target.Infra(fmt.Errorf("user target: creating the app's interface %s: %w", iface, err))
	}
	d.link = l
	d.status.Set("netns", l.NetNSPath())
	d.status.Set("host_iface", l.HostIface())
	d.status.Set("iface", iface)
	imgrun.CoalescingOff(d.status, l)
	return nil
}

// start runs cmd inside the link's namespace with its output read into
// d.lines, and watches for its exit. The pipes' write ends are closed here
// once the child has them; the read ends close when the readers are done.
func (d *Process) start(cmd *exec.Cmd, rootfs, prog string, begin time.Time) error {
	d.lines = imgrun.NewLines(d.status.Observe)
	outR, outW, err := os.Pipe()
	if err != nil {
		return target.Infra(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return target.Infra(err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	startErr := startInNetNS(d.link.NetNSPath(), cmd)
	outW.Close()
	errW.Close()
	d.lines.Read(target.Stdout, outR)
	d.lines.Read(target.Stderr, errR)
	go func() { d.lines.WaitReaders(); outR.Close(); errR.Close() }()
	if startErr != nil {
		d.lines.Finish()
		d.status.RecordExit(target.NotObserved("the app did not start"), nil)
		if target.IsInfra(startErr) {
			return startErr
		}
		return imgrun.ExplainExecError(rootfs, prog, startErr)
	}
	d.cmd = cmd
	d.started = time.Now()
	d.status.Set("boot_ms", jsonfmt.Millis(d.started.Sub(begin)))
	d.status.Set("pid", cmd.Process.Pid)
	go func() {
		werr := cmd.Wait()
		d.status.RecordExit(exitOf(cmd.ProcessState, werr))
		d.lines.Finish()
	}()
	return nil
}

// startInNetNS starts cmd with the network namespace at nsPath: the child
// inherits the namespace of the OS thread that forks it, so this thread
// enters the namespace for the fork and leaves it right after.
func startInNetNS(nsPath string, cmd *exec.Cmd) error {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return target.Infra(fmt.Errorf("opening network namespace %s: %w", nsPath, err))
	}
	defer ns.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return target.Infra(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return target.Infra(fmt.Errorf("entering network namespace %s: %w", nsPath, err))
	}
	startErr := cmd.Start()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime then ends it with the
		// goroutine instead of reusing a thread in the wrong namespace.
		// Pdeathsig is bound to that thread, so stop the child ourselves.
		if startErr == nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
		return target.Infra(fmt.Errorf("leaving network namespace %s: %w", nsPath, err))
	}
	runtime.UnlockOSThread()
	return startErr
}

// exitOf maps a finished process to target.Exit. qemu-user re-raises a
// guest's fatal signal on itself, so a signal shows through the emulator.
func exitOf(ps *os.ProcessState, werr error) (target.Exit, error) {
	if ps == nil {
		return target.NotObserved("waiting for the process failed"), target.Infra(fmt.Errorf("waiting for the app: %w", werr))
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return target.KilledBy(unix.SignalName(ws.Signal()), 128+int(ws.Signal())), nil
	}
	return target.Exited(ps.ExitCode()), nil
}

// Process is a running app under the user target.
type Process struct {
	cmd     *exec.Cmd
	link    *veth.Link
	lines   *imgrun.Lines
	cancel  context.CancelFunc
	started time.Time
	status  *imgrun.Status
	sent    imgrun.Sent

	closeOnce sync.Once
	closeErr  error
}

var (
	_ target.App                = (*Process)(nil)
	_ target.CapabilityReporter = (*Process)(nil)
	_ target.Liveness           = (*Process)(nil)
	_ target.GapReporter        = (*Process)(nil)
	_ target.DeliveryCounter    = (*Process)(nil)
)

// Output streams the app's stdout and stderr lines.
func (d *Process) Output() <-chan target.Line { return d.lines.C() }

// Alive reports whether the app's process still runs (and is not stopped),
// or ended on its own: nil then. A process that hil could not wait for,
// that is stopped, or that was killed by a SIGKILL hil did not send is a
// dead device, not the app's failure.
func (d *Process) Alive(ctx context.Context) error {
	what := fmt.Sprintf("the app's process %s (pid %d)", filepath.Base(d.cmd.Path), d.cmd.Process.Pid)
	if ex, err, done := d.status.Exit(); done {
		if err != nil {
			return &target.DeadError{What: what, How: "ended, but hil could not learn how", Detail: err.Error()}
		}
		if how := imgrun.KilledFromOutside(ex, &d.sent); how != "" {
			return target.Dead(what, how)
		}
		return nil
	}
	if st := imgrun.ProcState(d.cmd.Process.Pid); strings.HasPrefix(st, "stopped") {
		return target.Dead(what, "is "+st+", and hil did not stop it")
	}
	return ctx.Err()
}

// Link is the host end of the app's veth pair.
func (d *Process) Link() link.Link { return d.link }

// Capabilities says whether capture works here and, if not, the emulator's
// reason (from the once-per-QEMU-version probe).
func (d *Process) Capabilities() target.Capabilities { return d.status.Capabilities() }

// EmulatorGap returns the first output line that showed the app failing
// only because of the emulator's capture gap.
func (d *Process) EmulatorGap() (reason string, ok bool) { return d.status.EmulatorGap() }

// Signal delivers sig to the app (under qemu-user, to the emulator, which
// forwards it to the guest).
func (d *Process) Signal(sig syscall.Signal) error {
	if err := d.status.AlreadyExited("signal " + unix.SignalName(sig)); err != nil {
		return err
	}
	d.sent.Add(sig)
	if err := d.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s to pid %d: %w", unix.SignalName(sig), d.cmd.Process.Pid, err)
	}
	return nil
}

// Wait blocks until the app exits or ctx is done.
func (d *Process) Wait(ctx context.Context) (target.Exit, error) { return d.status.Wait(ctx) }

// Info describes the device: mode, emulator and version, capture support,
// program, user, namespace, boot time.
func (d *Process) Info() target.Info { return d.status.Info() }

// RxCounters reads the receive counters of the app's end of the veth pair.
func (d *Process) RxCounters(ctx context.Context) (link.Counters, error) {
	if d.link == nil {
		return link.Counters{}, errors.New("the app has no interface (it ended before hil made one)")
	}
	return d.link.Counters()
}

// Close kills the app's process group, then removes the veth pair and the
// namespace.
func (d *Process) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		d.status.Stopping()
		if d.cmd != nil && d.cmd.Process != nil {
			// The whole group: the app's own children must not outlive it.
			d.sent.Add(syscall.SIGKILL)
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-d.status.Exited():
			case <-time.After(10 * time.Second):
				errs = append(errs, fmt.Errorf("user target: pid %d did not exit 10s after SIGKILL", d.cmd.Process.Pid))
			}
		}
		if d.lines != nil {
			d.lines.Abort()
		}
		if d.link != nil {
			if err := d.link.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.cancel != nil {
			d.cancel()
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}
