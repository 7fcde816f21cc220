//go:build linux

package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hilproject/hil/internal/jsonfmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/api/pkg/stdcopy"
	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/link/veth"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/emu"
	"github.com/hilproject/hil/harness/target/internal/imgrun"
)

const (
	inContainerDir  = "/.hil"
	hostBusybox     = "/bin/busybox"
	capturePriv1    = "NET_RAW"
	capturePriv2    = "NET_ADMIN"
	engineOpTimeout = 60 * time.Second
)

type config struct {
	busybox   string
	mtu       int
	keepImage bool
}

// Option configures the target.
type Option func(*config)

// WithMTU sets the MTU of the app's interface (default 1500).
func WithMTU(n int) Option { return func(c *config) { c.mtu = n } }

// WithKeepImage leaves the image hil loaded on the engine after Close, so
// that later boots of the same digest skip the load (about half a second
// for the sample image). The tag names the manifest digest, so a kept image
// is never mistaken for another. Default: hil removes what it loaded.
func WithKeepImage() Option { return func(c *config) { c.keepImage = true } }

// WithBusybox names the host's static busybox that waits, inside the
// container, for the app's interface before it execs the entrypoint;
// default /bin/busybox (Debian busybox-static).
func WithBusybox(path string) Option { return func(c *config) { c.busybox = path } }

// Target boots images on a Docker engine.
type Target struct{ cfg config }

var _ target.Target = (*Target)(nil)

// New returns the container target. The engine is the one of DOCKER_HOST
// (with DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and DOCKER_API_VERSION, as the
// docker CLI reads them) or the local socket, asked at every Boot. Every
// Container removes what it made on Close.
func New(opts ...Option) *Target {
	t := &Target{cfg: config{busybox: hostBusybox}}
	for _, o := range opts {
		o(&t.cfg)
	}
	return t
}

// Name is "container".
func (t *Target) Name() string { return "container" }

// Importing the package registers the target as "container", with default
// options: a program (or a test suite) that runs scenarios on the
// container target imports it, for its side effect at least.
func init() {
	target.Register("container", func(target.Params) ([]target.Target, error) { return []target.Target{New()}, nil })
}

// loaded counts, per tag, the devices of this process that use an image hil
// loaded, so that the last Close removes it and no Close pulls it from under
// another device.
var (
	loadedMu sync.Mutex
	loaded   = map[string]*loadedImage{}
)

type loadedImage struct {
	refs    int
	byUs    bool
	loading chan struct{}
	err     error
}

// localEngine reports whether the engine at host runs on this machine (a
// unix socket, or TCP on loopback): only then can hil move a veth end into
// its containers' namespaces and bind-mount host binaries.
func localEngine(host string) bool {
	u, err := url.Parse(host)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "unix":
		return true
	case "tcp", "http", "https":
		ip := net.ParseIP(u.Hostname())
		return u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback())
	}
	return false
}

// engineArch maps the engine's uname -m to GOARCH.
func engineArch(m string) string {
	switch m {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "armv7l", "armv6l", "armhf", "arm":
		return "arm"
	case "i686", "i386":
		return "386"
	}
	return m
}

// Compiled on first use, not at package init, which every hil process pays for.
var nameChars = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^a-z0-9._-]+`) })

// localTag is the tag hil loads img under: hil.local/<name>:<12 hex of the
// platform manifest digest>.
func localTag(img *image.Image) string {
	ref := img.Ref
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	ref = strings.TrimPrefix(ref, "oci:")
	ref = strings.TrimPrefix(ref, "docker-archive:")
	ref = strings.TrimRight(ref, "/")
	base := filepath.Base(ref)
	if i := strings.LastIndex(base, ":"); i > 0 {
		base = base[:i]
	}
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".tar"), ".oci")
	base = strings.Trim(nameChars().ReplaceAllString(strings.ToLower(base), "-"), "-._")
	if base == "" {
		base = "image"
	}
	hex := img.ManifestDigest.Hex
	if len(hex) > 12 {
		hex = hex[:12]
	}
	if hex == "" {
		hex = "latest"
	}
	return "hil.local/" + base + ":" + hex
}

// Boot loads the image, starts the app container and moves the veth end
// into its namespace. It returns once the container runs.
func (t *Target) Boot(ctx context.Context, img *image.Image, cfg target.RunConfig) (_ target.App, err error) {
	if img == nil {
		return nil, errors.New("container target: no image")
	}
	begin := time.Now()
	d := &Container{
		status: imgrun.NewStatus("the app container", target.Info{"target": "container", "platform": img.Platform.String()}),
		begin:  begin,
		keep:   t.cfg.keepImage,
	}
	devCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.ctx, d.cancel = devCtx, cancel
	// Every phase below records what it made in d (client, image, container,
	// link), so Close undoes exactly what exists on any failure.
	defer func() {
		if err != nil {
			d.Close()
		}
	}()

	arch, err := d.connect(ctx)
	if err != nil {
		return nil, err
	}
	em, err := t.emulator(ctx, d, img, cfg, arch)
	if err != nil {
		return nil, err
	}
	// The rootfs answers what Docker would only say at start, and better:
	// the entrypoint's program (the qemu wrapper needs its path) and the user.
	rootfs, err := img.RootFS(ctx)
	if err != nil {
		return nil, fmt.Errorf("container target: flattening %s: %w", img.Ref, err)
	}
	p, err := imgrun.FindProgram(rootfs, cfg)
	if err != nil {
		return nil, err
	}

	d.phase("prepare")
	tag := localTag(img)
	if err := d.loadImage(ctx, img, tag); err != nil {
		return nil, err
	}

	d.phase("image")
	iface := cfg.Iface
	if iface == "" {
		iface = "eth0"
	}
	if !ifaceName().MatchString(iface) {
		return nil, fmt.Errorf("container target: interface name %q: expected 1-15 of [A-Za-z0-9_.-]", iface)
	}
	if err := t.create(ctx, d, tag, iface, rootfs, p, em, cfg); err != nil {
		return nil, err
	}
	d.phase("create")
	if err := t.startWired(ctx, d, tag, iface, cfg.User); err != nil {
		return nil, err
	}
	d.phase("veth")
	d.status.Set("iface", iface)
	d.started = time.Now()
	d.status.Set("boot_ms", jsonfmt.Millis(d.started.Sub(begin)))
	// The json-file log keeps everything from the first line, so following
	// it after start loses nothing; the stream ends when the container stops.
	d.follow()
	d.describe(ctx)
	d.waiting = true
	go d.wait()
	return d, nil
}

// connect opens the Docker client (d.cli, closed by Close) and checks that
// the engine runs on this host, where hil can reach the container's
// namespace. It returns the engine's architecture as a Go GOARCH.
func (d *Container) connect(ctx context.Context) (string, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return "", target.Infra(fmt.Errorf("container target: connecting to the Docker engine: %w", err))
	}
	d.cli = cli
	host := cli.DaemonHost()
	d.status.Set("docker_host", host)
	if !localEngine(host) {
		return "", &target.UnsupportedError{Target: "container", What: "a remote Docker engine (" + host + ")",
			Reason: "hil wires the app's interface with a veth pair moved into the container's network namespace, which needs the engine on this host (a unix socket or loopback TCP)"}
	}
	sys, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return "", target.Infra(fmt.Errorf("container target: docker info on %s: %w", host, err))
	}
	d.status.Set("engine", fmt.Sprintf("Docker %s on %s/%s", sys.Info.ServerVersion, sys.Info.OSType, sys.Info.Architecture))
	return engineArch(sys.Info.Architecture), nil
}

// emulator picks how img runs on an engine of arch (natively or under a
// bind-mounted qemu-user) and checks the host busybox that waits for the
// interface is there.
func (t *Target) emulator(ctx context.Context, d *Container, img *image.Image, cfg target.RunConfig, arch string) (emu.Emulator, error) {
	em, err := emu.For(img.Platform, arch)
	if err != nil {
		return em, target.Infra(fmt.Errorf("container target: %w", err))
	}
	if cfg.Board != nil {
		if em, err = em.WithBoard(img.Platform, cfg.Board); err != nil {
			return em, &target.UnsupportedError{Target: "container", What: "the " + img.Platform.String() + " image on " + cfg.Board.String(), Reason: err.Error()}
		}
	}
	em.Describe(d.status.Set)
	d.status.ProbeEmulator(ctx, em, "native", "bind-mounted qemu-user entrypoint wrapper")
	if _, err := os.Stat(t.cfg.busybox); err != nil {
		return em, target.Infra(fmt.Errorf("container target: the interface wait needs a static busybox at %s (Debian package busybox-static): %w", t.cfg.busybox, err))
	}
	return em, nil
}

// create creates the app container from tag (d.id, removed by Close), with
// network none and the entrypoint wrapped to wait for iface.
func (t *Target) create(ctx context.Context, d *Container, tag, iface, rootfs string, p imgrun.Program, em emu.Emulator, cfg target.RunConfig) error {
	// The app container has network none; hil moves the veth end into its
	// namespace right after start. So that the app never runs without its
	// interface, a bind-mounted static busybox waits for it and then execs
	// the real entrypoint: the app still is PID 1 (when it runs natively;
	// see Init below) with the image's user, env and workdir, and nothing
	// is written into the image.
	entrypoint, cmd := cfg.Entrypoint, cfg.Cmd
	binds := []string{t.cfg.busybox + ":" + wrapperBusybox + ":ro"}
	emulated := !em.Native
	if emulated {
		// qemu-user does not search PATH: give it the program's path, and
		// keep argv[0] as the image says with -0.
		qemu := inContainerDir + "/" + filepath.Base(em.Path)
		binds = append(binds, em.Path+":"+qemu+":ro")
		eargs, err := imgrun.EmulatedArgv(rootfs, p.Path, p.Argv, func(p string) string { return p })
		if err != nil {
			return err
		}
		// The board's CPU model as an option of the wrapper rather than
		// QEMU_CPU in the environment: the app's environment stays the
		// image's.
		entrypoint = append(append([]string{qemu}, em.Args()...), eargs...)
		cmd = []string{}
	}
	entrypoint = append(waitFor(iface), entrypoint...)
	if cmd == nil {
		cmd = []string{}
	}
	// Network mode none: the namespace holds only lo and, once hil moves
	// it in, the veth end.
	created, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &dcontainer.Config{
			Image:      tag,
			Entrypoint: entrypoint,
			Cmd:        cmd,
			Env:        append([]string{}, cfg.Env...),
			User:       cfg.User,
			WorkingDir: cfg.WorkingDir,
			Labels:     map[string]string{"hil.role": "app"},
		},
		HostConfig: &dcontainer.HostConfig{
			NetworkMode: "none",
			CapAdd:      []string{capturePriv1, capturePriv2},
			Binds:       binds,
			// Under qemu-user, the engine's init (tini) is PID 1 and
			// qemu its child: qemu dies of a guest's fatal signal
			// (SIGILL on a board's CPU, SIGSEGV) by sending it to
			// itself, which the kernel ignores for a namespace's PID 1,
			// and then waits for it forever.
			Init: &emulated,
		},
	})
	if err != nil {
		return target.Infra(fmt.Errorf("container target: creating the app container: %w", err))
	}
	d.id = created.ID
	return nil
}

// startWired starts the created container and moves the veth end named
// iface into its namespace (d.link, removed by Close). A container that
// exited already gets no link: its log and exit status say why, which
// Boot's caller reads rather than an error from here.
func (t *Target) startWired(ctx context.Context, d *Container, tag, iface, user string) error {
	id := d.id
	d.lines = imgrun.NewLines(d.status.Observe)
	if _, err := d.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("container target: starting the app container (image %s, user %q): %w", tag, user, err)
	}
	d.phase("start")
	ci, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || ci.Container.State == nil || ci.Container.State.Pid == 0 {
		// Exited already (e.g. the wrapper could not run as the image user):
		// the log and the exit status say why.
		d.status.Set("veth", fmt.Sprintf("not created: the container was not running (%v)", err))
		return nil
	}
	vopts := []veth.Option{veth.WithName(iface), veth.WithNetNSPath(fmt.Sprintf("/proc/%d/ns/net", ci.Container.State.Pid))}
	if t.cfg.mtu != 0 {
		vopts = append(vopts, veth.WithMTU(t.cfg.mtu))
	}
	l, err := veth.New(d.ctx, vopts...)
	if err != nil {
		return target.Infra(fmt.Errorf("container target: moving the app's interface %s into the container: %w", iface, err))
	}
	d.link = l
	d.status.Set("host_iface", l.HostIface())
	imgrun.CoalescingOff(d.status, l)
	return nil
}

const (
	wrapperBusybox = inContainerDir + "/busybox"
	wrapperName    = "hil-wait-for-iface"
	// ifaceWaitLoops x 2 ms bounds how long the app waits for its interface.
	ifaceWaitLoops = 5000
)

var ifaceName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`) })

// waitFor is the entrypoint prefix that waits until iface is in the
// container's namespace and up, then execs the rest of the command line.
// Up, not only there: the interface appears when it is moved in and comes
// up a moment later, and libpcap refuses an interface that is down
// ("Interface Not Up"). flags is read with the shell's own read, as the
// image may have no cat.
func waitFor(iface string) []string {
	return []string{wrapperBusybox, "sh", "-c", waitScript(iface, ifaceWaitLoops, wrapperBusybox), wrapperName}
}

func waitScript(iface string, loops int, busybox string) string {
	return fmt.Sprintf(`i=0; while :; do f=; [ -e /sys/class/net/%[1]s/flags ] && read f < /sys/class/net/%[1]s/flags; [ -n "$f" ] && [ $((f & 1)) -eq 1 ] && break; i=$((i+1)); if [ $i -gt %[2]d ]; then echo "hil: interface %[1]s never appeared or never came up in the container (flags: ${f:-none})" >&2; exit 125; fi; %[3]s usleep 2000; done; exec "$@"`,
		iface, loops, busybox)
}

// phase records how long the boot step that just ended took (Info
// "boot_phases"), to see where a container boot spends its time.
func (d *Container) phase(name string) {
	now := time.Now()
	if d.last.IsZero() {
		d.last = d.begin
	}
	d.phases = append(d.phases, fmt.Sprintf("%s %.0fms", name, float64(now.Sub(d.last).Microseconds())/1000))
	d.last = now
	d.status.Set("boot_phases", strings.Join(d.phases, ", "))
}

// loadImage makes tag exist on the engine: already there (by an earlier
// device or the user) or loaded now from a docker-save tarball of img.
func (d *Container) loadImage(ctx context.Context, img *image.Image, tag string) error {
	loadedMu.Lock()
	li := loaded[tag]
	if li != nil {
		li.refs++
		loadedMu.Unlock()
		<-li.loading
		d.tag = tag
		if li.err != nil {
			return li.err
		}
		d.status.Set("image", tag)
		return nil
	}
	li = &loadedImage{refs: 1, loading: make(chan struct{})}
	loaded[tag] = li
	loadedMu.Unlock()
	d.tag = tag
	defer close(li.loading)

	if _, err := d.cli.ImageInspect(ctx, tag); err == nil {
		d.status.Set("image", tag+" (already on the engine)")
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		li.err = target.Infra(fmt.Errorf("container target: inspecting %s on the engine: %w", tag, err))
		return li.err
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		li.err = fmt.Errorf("container target: tag %s: %w", tag, err)
		return li.err
	}
	pr, pw := io.Pipe()
	writeErr := make(chan error, 1)
	go func() {
		err := tarball.Write(ref, img.Image, pw)
		writeErr <- err
		pw.CloseWithError(err)
	}()
	lctx, cancel := context.WithTimeout(ctx, engineOpTimeout)
	defer cancel()
	// A failure to read the image surfaces in the client as a broken
	// request; say what really failed.
	failed := func(err error) error {
		pr.CloseWithError(err)
		if werr := <-writeErr; werr != nil {
			return target.Infra(fmt.Errorf("container target: reading %s to load it into the engine: %w", img.Ref, werr))
		}
		return target.Infra(fmt.Errorf("container target: loading %s into the engine: %w", tag, err))
	}
	res, err := d.cli.ImageLoad(lctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		li.err = failed(err)
		return li.err
	}
	body, err := io.ReadAll(res)
	res.Close()
	if err != nil {
		li.err = failed(err)
		return li.err
	}
	pr.Close()
	if werr := <-writeErr; werr != nil {
		li.err = target.Infra(fmt.Errorf("container target: reading %s to load it into the engine: %w", img.Ref, werr))
		return li.err
	}
	li.byUs = true
	if strings.Contains(string(body), `"error"`) {
		li.err = target.Infra(fmt.Errorf("container target: the engine refused %s: %s", tag, strings.TrimSpace(string(body))))
		return li.err
	}
	if _, err := d.cli.ImageInspect(ctx, tag); err != nil {
		li.err = target.Infra(fmt.Errorf("container target: %s is not on the engine after loading it: %w", tag, err))
		return li.err
	}
	d.status.Set("image", tag+" (loaded by hil)")
	return nil
}

// releaseImage drops this device's use of its tag; the last user removes
// it when hil loaded it.
func (d *Container) releaseImage(ctx context.Context) error {
	if d.tag == "" {
		return nil
	}
	loadedMu.Lock()
	li := loaded[d.tag]
	if li == nil {
		loadedMu.Unlock()
		return nil
	}
	li.refs--
	last := li.refs == 0
	if last {
		delete(loaded, d.tag)
	}
	loadedMu.Unlock()
	if !last || !li.byUs || d.keep {
		return nil
	}
	_, err := d.cli.ImageRemove(ctx, d.tag, client.ImageRemoveOptions{PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("container target: removing %s: %w", d.tag, err)
	}
	return nil
}

// follow streams the container log (stdout and stderr demultiplexed).
func (d *Container) follow() {
	rc, err := d.cli.ContainerLogs(d.ctx, d.id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		d.lines.Push(target.Line{Stream: target.Console, Text: "hil: following the container log failed: " + err.Error(), Time: time.Now()})
		d.lines.Finish()
		return
	}
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	d.lines.Read(target.Stdout, outR)
	d.lines.Read(target.Stderr, errR)
	go func() {
		_, err := stdcopy.StdCopy(outW, errW, rc)
		rc.Close()
		outW.CloseWithError(err)
		errW.CloseWithError(err)
	}()
}

// describe records the container-level facts a plain image check misses:
// what Docker actually runs (entrypoint and cmd after its merge with the
// image), the user, env, exposed ports and healthcheck.
func (d *Container) describe(ctx context.Context) {
	res, err := d.cli.ContainerInspect(ctx, d.id, client.ContainerInspectOptions{})
	if err != nil {
		d.status.Set("inspect_error", err.Error())
		return
	}
	d.status.Update(func(info target.Info) { describeContainer(info, res.Container) })
}

func describeContainer(info target.Info, c dcontainer.InspectResponse) {
	info["container"] = c.ID
	runs := append([]string{c.Path}, c.Args...)
	if len(runs) > 5 && runs[0] == wrapperBusybox && runs[4] == wrapperName {
		runs = runs[5:]
		info["wrapper"] = wrapperBusybox + " waits for the interface, then execs what follows"
	}
	info["docker_runs"] = strings.Join(runs, " ")
	if c.Config != nil {
		ep := c.Config.Entrypoint
		if len(ep) >= 5 && ep[0] == wrapperBusybox && ep[4] == wrapperName {
			ep = ep[5:]
		}
		info["entrypoint"] = strings.Join(ep, " ")
		info["cmd"] = strings.Join(c.Config.Cmd, " ")
		info["user"] = c.Config.User
		if info["user"] == "" {
			info["user"] = "root (image sets none)"
		}
		info["workdir"] = c.Config.WorkingDir
		info["env"] = strings.Join(c.Config.Env, " ")
		var ports []string
		for p := range c.Config.ExposedPorts {
			ports = append(ports, fmt.Sprint(p))
		}
		sort.Strings(ports)
		info["exposed_ports"] = strings.Join(ports, " ")
		if hc := c.Config.Healthcheck; hc != nil && len(hc.Test) > 0 {
			info["healthcheck"] = fmt.Sprintf("%s (interval %s, timeout %s, retries %d)", strings.Join(hc.Test, " "), hc.Interval, hc.Timeout, hc.Retries)
		} else {
			info["healthcheck"] = "none"
		}
	}
	if c.State != nil {
		info["pid"] = c.State.Pid
	}
}

// wait records the exit once the container stops.
func (d *Container) wait() {
	exit := target.NotObserved("the engine did not say")
	var werr error
	res := d.cli.ContainerWait(d.ctx, d.id, client.ContainerWaitOptions{Condition: dcontainer.WaitConditionNotRunning})
	select {
	case r := <-res.Result:
		exit = imgrun.DockerExit(int(r.StatusCode))
		if r.Error != nil && r.Error.Message != "" {
			werr = target.Infra(fmt.Errorf("container wait: %s", r.Error.Message))
		}
	case err := <-res.Error:
		werr = target.Infra(fmt.Errorf("waiting for container %s: %w", d.id, err))
	}
	d.lines.Finish()
	d.status.RecordExit(exit, werr)
}

// Container is an app running in a container.
type Container struct {
	ctx     context.Context
	cancel  context.CancelFunc
	cli     *client.Client
	id      string
	tag     string
	link    *veth.Link
	lines   *imgrun.Lines
	status  *imgrun.Status
	sent    imgrun.Sent
	started time.Time
	waiting bool
	begin   time.Time
	last    time.Time
	phases  []string
	keep    bool

	closeOnce sync.Once
	closeErr  error
}

var (
	_ target.App                = (*Container)(nil)
	_ target.CapabilityReporter = (*Container)(nil)
	_ target.Liveness           = (*Container)(nil)
	_ target.GapReporter        = (*Container)(nil)
	_ target.DeliveryCounter    = (*Container)(nil)
)

// Output streams the container's stdout and stderr lines.
func (d *Container) Output() <-chan target.Line { return d.lines.C() }

// Link is the host end of the veth pair inside the container's namespace
// (nil when the container stopped before hil could move it in).
func (d *Container) Link() link.Link {
	if d.link == nil {
		return nil
	}
	return d.link
}

// Capabilities says whether capture works and, under the qemu wrapper, why
// not.
func (d *Container) Capabilities() target.Capabilities { return d.status.Capabilities() }

// EmulatorGap returns the first output line that showed the app failing
// only because of the emulator's capture gap.
func (d *Container) EmulatorGap() (string, bool) { return d.status.EmulatorGap() }

// livenessTimeout bounds one Alive: an engine that does not answer
// inspect within it is as good as gone for the case.
const livenessTimeout = 10 * time.Second

// Alive asks the engine about the app container: nil while it runs or once
// it ended on its own. A container that was removed, paused or OOM-killed,
// or killed by a SIGKILL hil did not send (docker kill, kill -9), and an
// engine that does not answer, are a dead device, not the app's failure.
func (d *Container) Alive(ctx context.Context) error {
	what := "the app container " + shortID(d.id)
	ctx, cancel := context.WithTimeout(ctx, livenessTimeout)
	defer cancel()
	res, err := d.cli.ContainerInspect(ctx, d.id, client.ContainerInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return target.Dead(what, "was removed from the engine (docker rm -f?) while hil ran it")
	case err != nil:
		return target.Dead("the Docker engine at "+d.status.Get("docker_host"), "does not answer about "+what+": "+err.Error())
	}
	st := res.Container.State
	switch {
	case st == nil:
		return target.Dead(what, "has no state in the engine's answer")
	case st.OOMKilled:
		return target.Dead(what, "was killed by the kernel's OOM killer")
	case st.Paused:
		return target.Dead(what, "is paused (docker pause), and hil did not pause it")
	case st.Running || st.Restarting:
		return nil
	case st.Status == dcontainer.StateRemoving:
		return target.Dead(what, "is being removed from the engine (docker rm -f?) while hil runs it")
	case st.Status == dcontainer.StateDead:
		return target.Dead(what, "is dead in the engine (its removal failed)")
	}
	// It stopped: on its own, or killed from outside.
	if how := imgrun.KilledFromOutside(imgrun.DockerExit(st.ExitCode), &d.sent); how != "" {
		return target.Dead(what, how)
	}
	return nil
}

// gone waits until the engine no longer knows the app container, and
// reports whether that happened before ctx ended.
func (d *Container) gone(ctx context.Context) bool {
	for {
		if _, err := d.cli.ContainerInspect(ctx, d.id, client.ContainerInspectOptions{}); cerrdefs.IsNotFound(err) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Signal sends sig to the container's main process through the engine.
func (d *Container) Signal(sig syscall.Signal) error {
	if err := d.status.AlreadyExited("signal " + unix.SignalName(sig)); err != nil {
		return err
	}
	d.sent.Add(sig)
	if _, err := d.cli.ContainerKill(d.ctx, d.id, client.ContainerKillOptions{Signal: unix.SignalName(sig)}); err != nil {
		return fmt.Errorf("signal %s to container %s: %w", unix.SignalName(sig), d.id, err)
	}
	return nil
}

// Wait blocks until the container stops or ctx is done.
func (d *Container) Wait(ctx context.Context) (target.Exit, error) { return d.status.Wait(ctx) }

// Info describes the device, including the container-level facts.
func (d *Container) Info() target.Info { return d.status.Info() }

// RxCounters reads the receive counters of the app's end of the veth pair.
func (d *Container) RxCounters(ctx context.Context) (link.Counters, error) {
	if d.link == nil {
		return link.Counters{}, errors.New("the app has no interface (it ended before hil made one)")
	}
	return d.link.Counters()
}

// Close removes the app container, the veth pair and (when hil loaded it
// and no other device uses it) the image.
func (d *Container) Close() error {
	d.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineOpTimeout)
		defer cancel()
		var errs []error
		d.status.Stopping()
		if d.id != "" {
			d.sent.Add(syscall.SIGKILL)
			// A container removed from outside meanwhile ("removal already
			// in progress") is as good as removed once it is gone.
			if _, err := d.cli.ContainerRemove(ctx, d.id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) && !d.gone(ctx) {
				errs = append(errs, fmt.Errorf("container target: removing the app container: %w", err))
			}
		}
		if d.link != nil {
			if err := d.link.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.cli != nil {
			if err := d.releaseImage(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if d.lines != nil {
			if d.waiting {
				select {
				case <-d.status.Exited():
				case <-time.After(5 * time.Second):
				}
			}
			d.lines.Abort()
		}
		if d.cancel != nil {
			d.cancel()
		}
		if d.cli != nil {
			d.cli.Close()
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}
