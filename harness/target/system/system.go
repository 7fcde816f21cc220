// Package system is hil's high-fidelity target: the image's own userland on
// a real ARM Linux kernel under qemu-system-arm (`-M virt`, TCG, no root, no
// KVM). A Go init (hil-init) runs the app and reports its stdout, stderr and
// exit over a virtio serial port; the app's capture interface is a
// virtio-net NIC whose backend is a qemustream link served by the harness,
// with receive coalescing (GRO and the like) off unless the case asks for
// it (RunConfig.RxOffload), and its receive counters read by hil-init
// (VM.RxCounters). Boots restore snapshots saved over QMP at two
// levels (snapshot.go): the base, with hil-init idle before any app, for
// any app arguments; and the app level, with the app ready, for a case
// that matches it exactly. Info()["boot"] says cold, base or app.
//
// A VM is alive (target.Liveness) while three things hold: the QEMU
// process has not exited, QEMU answers QMP query-status on a monitor of
// the liveness check's own within the liveness timeout and says the VM is
// running, and hil-init (PID 1 of the guest) gave a sign of life within
// that timeout: it writes "beat" on the report port every 200 ms. A
// SIGSTOPped or hung QEMU fails the QMP check, a hung guest (QEMU fine,
// the kernel or init not scheduled) the heartbeat. The snapshot pauses the
// VM on purpose; the check does not count that time.
package system

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hilproject/hil/harness/activity"
	"github.com/hilproject/hil/harness/target/system/guestwire"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/kernel"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/cache"
)

// DefaultKernelArgs keep the boot short and the guest quiet: the self-tests
// of the crypto manager cost ~1.8 s under TCG, and IPv6 would make the
// guest send router solicitations the app would capture.
const DefaultKernelArgs = "console=ttyAMA0 quiet cryptomgr.notests ipv6.disable=1 panic=-1 rdinit=/.hil/init"

type options struct {
	memoryMB    int
	cpus        int
	kernel      *kernel.Kernel
	kernelArgs  []string
	qemu        string
	snapshots   bool
	snapshotDir string
	logDir      string
	rootfs      string
	gzip        bool
	consoleSink io.Writer
	bootTimeout time.Duration
	hostname    string
	liveTimeout time.Duration

	// snapshotCacheMax: see WithSnapshotCacheMax (snapcache.go).
	snapshotCacheMax int64
}

// Option configures the system target.
type Option func(*options)

// WithMemory sets guest RAM in MiB (by default the board's memory, or 512
// without a board; it is also the size of a snapshot's upper bound).
func WithMemory(mb int) Option { return func(o *options) { o.memoryMB = mb } }

// WithCPUs sets the guest's CPU count (2 by default, 1 on a single-core
// host). TCG runs one host thread per vCPU; with two, the guest kernel's
// receive path and the app's capture loop run side by side, which is what
// lets a Go libpcap app keep up with a 100k-frame burst.
func WithCPUs(n int) Option { return func(o *options) { o.cpus = n } }

// WithKernel boots k instead of the newest cached Debian kernel (fetched
// when none is cached). Use kernel.Local for a kernel of your own.
func WithKernel(k *kernel.Kernel) Option { return func(o *options) { o.kernel = k } }

// WithKernelArgs appends to DefaultKernelArgs (later arguments win).
func WithKernelArgs(args ...string) Option {
	return func(o *options) { o.kernelArgs = append(o.kernelArgs, args...) }
}

// WithQEMU sets the emulator binary (by default qemu-system-arm or
// qemu-system-aarch64 from PATH, as the machine needs).
func WithQEMU(path string) Option { return func(o *options) { o.qemu = path } }

// WithSnapshots turns warm boots on or off (on by default).
func WithSnapshots(on bool) Option { return func(o *options) { o.snapshots = on } }

// WithSnapshotDir keeps snapshots in dir (default: the hil cache).
func WithSnapshotDir(dir string) Option { return func(o *options) { o.snapshotDir = dir } }

// WithLogDir keeps each boot's full console log in dir (default: the hil
// cache, logs/system). VM.Info()["console_log"] names the file.
func WithLogDir(dir string) Option { return func(o *options) { o.logDir = dir } }

// WithConsole copies the guest console to w as it arrives.
func WithConsole(w io.Writer) Option { return func(o *options) { o.consoleSink = w } }

// WithRootFS boots dir as the guest's root filesystem instead of the
// image's flattened layers (for tests and for images flattened elsewhere).
// The image's digest and config are still used.
func WithRootFS(dir string) Option { return func(o *options) { o.rootfs = dir } }

// WithGzip compresses the initramfs (smaller cache, slower boot under TCG).
func WithGzip(on bool) Option { return func(o *options) { o.gzip = on } }

// WithBootTimeout bounds a boot from QEMU start to the app started (30 s by
// default; the caller's context can cut it shorter).
func WithBootTimeout(d time.Duration) Option { return func(o *options) { o.bootTimeout = d } }

// WithHostname sets the guest's hostname ("hil" by default).
func WithHostname(h string) Option { return func(o *options) { o.hostname = h } }

// DefaultLivenessTimeout is how long a guest may give no sign of life
// (hil-init's heartbeat, or any line on its report port) and QEMU may take
// to answer QMP before VM.Alive calls the device dead. hil-init beats
// every 200 ms: the margin is for a host so loaded that the emulator's
// threads wait to be scheduled.
const DefaultLivenessTimeout = 3 * time.Second

// WithLivenessTimeout sets DefaultLivenessTimeout's value for this target.
func WithLivenessTimeout(d time.Duration) Option { return func(o *options) { o.liveTimeout = d } }

// Target boots images under qemu-system-arm.
type Target struct {
	o options
}

// New returns the system target.
func New(opts ...Option) *Target {
	cpus := 2
	if runtime.NumCPU() < 2 {
		cpus = 1
	}
	o := options{cpus: cpus, snapshots: true, bootTimeout: 30 * time.Second, hostname: "hil", liveTimeout: DefaultLivenessTimeout}
	for _, f := range opts {
		f(&o)
	}
	return &Target{o: o}
}

// Name is "system".
func (t *Target) Name() string { return "system" }

// The system target registers itself as "system" with default options.
func init() {
	target.Register("system", func(target.Params) ([]target.Target, error) { return []target.Target{New()}, nil })
}

// maxInitramfs bounds the initramfs cache (one per image and run config,
// each about the size of the image's rootfs).
const maxInitramfs = 32

// pruneOldest removes the least recently modified files matching pattern in
// dir beyond keep.
func pruneOldest(dir, pattern string, keep int, remove func(string)) {
	files, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(files) <= keep {
		return
	}
	mtime := map[string]time.Time{}
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			mtime[f] = st.ModTime()
		}
	}
	sort.Slice(files, func(i, j int) bool { return mtime[files[i]].Before(mtime[files[j]]) })
	for _, f := range files[:len(files)-keep] {
		remove(f)
	}
}

type rootFSer interface {
	RootFS(ctx context.Context) (string, error)
}

var qemuVersions sync.Map

func qemuVersion(ctx context.Context, bin string) (string, error) {
	if v, ok := qemuVersions.Load(bin); ok {
		return v.(string), nil
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("running %s --version (is qemu-system-arm installed?): %w", bin, err)
	}
	v := strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	qemuVersions.Store(bin, v)
	return v, nil
}

// plan is everything a boot needs, resolved before QEMU starts.
type plan struct {
	m           machine
	qemu        string
	qemuVersion string
	kernel      *kernel.Kernel
	// kernelFile is -kernel: the kernel's direct-boot image when there is
	// one (directKernel), else its own image.
	kernelFile string
	initramfs  string
	// ownInitramfs: initramfs is private to one boot (explicit rootfs).
	ownInitramfs bool
	initHash     string
	appendArgs   string
	// run is hil-init's "run" command for this case.
	run []byte
	// snapshotKey/snapshot: the app-level snapshot (the app ready, its
	// arguments included); baseKey/base: the base snapshot (hil-init idle,
	// before any app). Paths may not exist yet; both empty without
	// snapshots (snapshot.go).
	snapshotKey, snapshot string
	baseKey, base         string
	cfg                   target.RunConfig
	img                   *image.Image
}

func (t *Target) plan(ctx context.Context, img *image.Image, cfg target.RunConfig) (*plan, error) {
	if img == nil {
		return nil, errNoImage
	}
	m, err := machineFor(img.Platform, cfg.Board, t.o.memoryMB)
	if err != nil {
		return nil, err
	}
	k := t.o.kernel
	if k != nil && k.Arch != "" && k.Arch != m.kernelArch {
		return nil, fmt.Errorf("system target: the kernel given is for %s but the image %s (%s) boots the %s kernel on %s %s",
			k.Arch, img.Ref, img.Platform.String(), m.kernelArch, m.emulator, m.cpu)
	}
	if k == nil {
		if k, err = guestKernel(ctx, m); err != nil {
			return nil, target.Infra(err)
		}
	}
	kernelFile := directKernel(ctx, k, m)
	qemuBin := m.emulator
	if t.o.qemu != "" {
		qemuBin = t.o.qemu
	}
	qv, err := qemuVersion(ctx, qemuBin)
	if err != nil {
		return nil, target.Infra(err)
	}
	initPath, initHash, err := initBinary(ctx, m.initArch)
	if err != nil {
		return nil, target.Infra(err)
	}
	rootfs := t.o.rootfs
	if rootfs == "" {
		r, ok := any(img).(rootFSer)
		if !ok {
			return nil, target.Infra(errors.New("this build of harness/image cannot flatten a rootfs; pass system.WithRootFS"))
		}
		if rootfs, err = r.RootFS(ctx); err != nil {
			return nil, target.Infra(fmt.Errorf("flattening %s for the guest: %w", img.Ref, err))
		}
	}
	gc := guestwire.Config{Iface: cfg.Iface, Hostname: t.o.hostname}
	run, err := json.Marshal(guestwire.Run{Args: append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...),
		Env: cfg.Env, Dir: cfg.WorkingDir, User: cfg.User, RxOffload: cfg.RxOffload})
	if err != nil {
		return nil, err
	}
	if m.linux32 {
		gc.Personality = "linux32"
	}
	if gc.Iface == "" {
		gc.Iface = "eth0"
	}
	for _, m := range k.Modules {
		gc.Modules = append(gc.Modules, "/.hil/modules/"+m.Name+".ko")
	}
	cfgJSON, _ := json.Marshal(gc)
	appendArgs := strings.Join(append([]string{DefaultKernelArgs}, t.o.kernelArgs...), " ")

	// The initramfs depends on the rootfs (by manifest digest, or the
	// explicit dir), the init, the modules and the run config.
	ih := sha256.New()
	fmt.Fprintf(ih, "manifest=%s\nrootfs=%s\ninit=%s\nkernel=%s\ngzip=%v\n", img.ManifestDigest, t.o.rootfs, initHash, k.ID(), t.o.gzip)
	ih.Write(cfgJSON)
	irKey := hex.EncodeToString(ih.Sum(nil))[:24]
	irDir, err := cache.Dir("initramfs")
	if err != nil {
		return nil, target.Infra(err)
	}
	ir := filepath.Join(irDir, irKey+".cpio")
	ownIR := false
	if t.o.rootfs != "" {
		// An explicit rootfs dir may change under the same name: build a
		// private initramfs for this boot, removed by VM.Close.
		f, err := os.CreateTemp("", "hil-initramfs-*.cpio")
		if err != nil {
			return nil, target.Infra(err)
		}
		f.Close()
		ir, ownIR = f.Name(), true
	}
	if _, err := os.Stat(ir); err != nil || ownIR {
		activity.Report(ctx, "building the boot image (initramfs of %s with hil-init and the kernel's modules)", img.Ref)
		spec := initramfsSpec{rootfs: rootfs, init: initPath, modules: k.Modules, config: cfgJSON, gzip: t.o.gzip}
		if err := buildInitramfs(ctx, spec, ir); err != nil {
			if ownIR {
				os.Remove(ir)
			}
			return nil, target.Infra(fmt.Errorf("building the initramfs: %w", err))
		}
		if !ownIR {
			pruneOldest(irDir, "*.cpio", maxInitramfs, func(f string) { os.Remove(f) })
		}
	} else {
		// Mark it used, so pruning keeps what is in use.
		now := time.Now()
		os.Chtimes(ir, now, now)
	}

	p := &plan{m: m, qemu: qemuBin, qemuVersion: qv, kernel: k, kernelFile: kernelFile, initramfs: ir, ownInitramfs: ownIR, initHash: initHash,
		appendArgs: appendArgs, run: run, cfg: cfg, img: img}
	if t.o.snapshots {
		// What the machine is: everything QEMU is started with. A snapshot
		// restores only into the emulator, machine, CPU and memory it was
		// taken on, so every board gets its own.
		machine := fmt.Sprintf("ir=%s\nappend=%s\nqemu=%s\nmem=%d\ncpus=%d\nemulator=%s\nmachine=%s\ncpu=%s\nkernel-file=%s\n",
			irKey, appendArgs, qv, m.memoryMB, t.o.cpus, qemuBin, m.machine, m.cpu, filepath.Base(kernelFile))
		if err := t.snapshotPaths(p, machine); err != nil {
			return nil, target.Infra(err)
		}
	}
	return p, nil
}

// Boot boots img and starts its app: from the app-level snapshot when one
// matches the case exactly (same app arguments and environment; the app's
// ready line is replayed), else from the base snapshot of the image (hil-init
// idle, the app started after the restore with the case's own arguments),
// else cold. It returns once the app has started (cold, base) or the
// restored guest answered (app).
func (t *Target) Boot(ctx context.Context, img *image.Image, cfg target.RunConfig) (target.App, error) {
	p, err := t.plan(ctx, img, cfg)
	if err != nil {
		return nil, err
	}
	for _, lv := range []struct {
		level bootLevel
		path  string
	}{{bootApp, p.snapshot}, {bootBase, p.base}} {
		if lv.path == "" {
			continue
		}
		d, err := t.restore(ctx, p, lv.level, lv.path)
		if d != nil || err != nil {
			return d, err
		}
	}
	if p.snapshot != "" {
		activity.Report(ctx, "booting the kernel %s cold (snapshots taken at hil-init idle and at ready make the next boots warm)", p.kernel.Release)
	} else {
		activity.Report(ctx, "booting the kernel %s", p.kernel.Release)
	}
	return t.start(ctx, p, bootCold, nil)
}

// restore boots p from the snapshot at path. It returns no device and no
// error when there is no such snapshot or it did not restore (then it is
// dropped as stale, and the caller goes on to the next level).
func (t *Target) restore(ctx context.Context, p *plan, level bootLevel, path string) (target.App, error) {
	// Held (and marked used) until the restore is done: no other process
	// removes it meanwhile (snapcache.go).
	meta, release, err := holdSnapshot(path)
	if err != nil {
		return nil, nil
	}
	// A failed restore must not delete a private initramfs that the next
	// level still needs.
	warm := *p
	warm.ownInitramfs = false
	activity.Report(ctx, "restoring the guest from its %s snapshot (%s)", level, filepath.Base(path))
	d, err := t.start(ctx, &warm, level, meta)
	release()
	if err == nil {
		warm.ownInitramfs = p.ownInitramfs
		return d, nil
	}
	var killed *restoreKilledError
	if ctx.Err() != nil || errors.As(err, &killed) {
		if p.ownInitramfs {
			os.Remove(p.initramfs)
		}
		return nil, err
	}
	// A snapshot that does not restore is stale: drop it.
	dropSnapshot(path)
	return nil, nil
}
