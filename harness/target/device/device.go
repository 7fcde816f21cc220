// Package device is hil's target for a real board (a Raspberry Pi running
// Docker) reached over SSH: the last word before promotion and the nightly
// check. The image is loaded onto the board (or pulled by digest), run as a
// container whose network namespace is held by hil's agent, and the agent
// creates the app's capture interface and relays fixture frames from the
// harness over the SSH channel.
package device

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hilproject/hil/internal/jsonfmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/crypto/ssh"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/link/framed"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/device/agent"
	"github.com/hilproject/hil/harness/target/internal/imgrun"
)

const cleanupTimeout = 30 * time.Second

// Option configures the device target.
type Option func(*Target)

// WithDialTimeout bounds the SSH connection (default 10 s).
func WithDialTimeout(d time.Duration) Option { return func(t *Target) { t.dialTimeout = d } }

// WithPull makes the board pull the image from its registry by digest
// instead of receiving it over SSH (for boards that reach the registry).
func WithPull() Option { return func(t *Target) { t.pull = true } }

// Target boots images on one board.
type Target struct {
	board       Machine
	dialTimeout time.Duration
	pull        bool
}

var _ target.Target = (*Target)(nil)

// New returns the device target for board.
func New(board Machine, opts ...Option) *Target {
	t := &Target{board: board, dialTimeout: 10 * time.Second}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Name is "device".
func (t *Target) Name() string { return "device" }

// Machine is the board this target drives.
func (t *Target) Machine() Machine { return t.board }

// Targets are the device targets for a board selection in the inventory
// file inventory: a name, names separated by commas, or "tag:LABEL". One
// board is the target "device"; several are "device@NAME" each, which the
// scenario runner runs side by side, one case at a time per board.
func Targets(inventory, selection string, opts ...Option) ([]target.Target, error) {
	if selection == "" {
		return nil, errors.New("the device target needs a board: give the inventory and the board's name (--devices FILE --device NAME)")
	}
	inv, err := LoadInventory(inventory)
	if err != nil {
		return nil, err
	}
	boards, err := inv.Resolve(selection)
	if err != nil {
		return nil, err
	}
	if len(boards) == 1 {
		return []target.Target{New(boards[0], opts...)}, nil
	}
	var ts []target.Target
	for _, b := range boards {
		ts = append(ts, target.Instance(New(b, opts...), b.Name))
	}
	return ts, nil
}

// Importing the package registers the target as "device": target.Params
// name the inventory and the board selection (see Targets).
func init() {
	target.Register("device", func(p target.Params) ([]target.Target, error) { return Targets(p.Inventory, p.Boards) })
}

// Boot connects to the board, brings the image and the agent there, starts
// the network holder, creates the app's interface and starts the app.
func (t *Target) Boot(ctx context.Context, img *image.Image, cfg target.RunConfig) (_ target.App, err error) {
	start := time.Now()
	c, err := dial(ctx, t.board, t.dialTimeout)
	if err != nil {
		return nil, err
	}
	d := &RemoteApp{conn: c, board: t.board, output: make(chan target.Line, 1024), info: target.Info{"board": t.board.Name},
		sshDone: make(chan struct{}), dialTimeout: t.dialTimeout}
	go func() {
		d.sshErr = c.client.Wait()
		close(d.sshDone)
	}()
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	// One round trip for every fact: sessions cost a few hundred ms on a Pi.
	facts, err := c.run(ctx, nil, "command -v docker >/dev/null || { echo 'docker: command not found' >&2; exit 127; }; uname -m; uname -r; docker version --format '{{.Server.Version}}'; "+boardFactsCmd())
	if err != nil {
		if ctx.Err() == nil && strings.Contains(err.Error(), "docker: command not found") {
			return nil, target.Infra(fmt.Errorf("board %s has no docker in PATH for user %s: install Docker on the board (or fix PATH)", t.board.Name, c.client.User()))
		}
		return nil, target.Infra(fmt.Errorf("asking board %s for its architecture and Docker version: %w", t.board.Name, err))
	}
	f := strings.Split(strings.TrimSpace(facts), "\n")
	if len(f) < 3 {
		return nil, target.Infra(fmt.Errorf("board %s: unexpected answer to uname/docker version: %q", t.board.Name, facts))
	}
	plat, err := boardPlatform(f[0])
	if err != nil {
		return nil, target.Infra(err)
	}
	d.info["board_arch"], d.info["kernel"], d.info["docker_version"] = plat.String(), f[1], f[2]
	bf := parseBoardFacts(f[3:])
	if bf.model != "" {
		d.info["board_model"] = bf.model
	}
	if cfg.Board != nil {
		// Before anything is brought to the board: a board of another
		// model runs nothing of this case.
		verified, err := checkBoard(t.board, cfg.Board, bf)
		if err != nil {
			return nil, err
		}
		d.info["board_profile"], d.info["board_check"] = cfg.Board.String(), verified
	}
	if img.Platform.Architecture != plat.Architecture {
		// Docker would run it through binfmt if the board had it, which is
		// not what the fleet does: say so instead.
		return nil, fmt.Errorf("image platform %s does not match board %s (%s)", img.Platform.String(), t.board.Name, plat)
	}

	id := make([]byte, 4)
	rand.Read(id)
	d.id = hex.EncodeToString(id)

	bin, err := agentBinary(ctx, plat)
	if err != nil {
		return nil, target.Infra(err)
	}
	agentImg, err := agentImage(bin, plat)
	if err != nil {
		return nil, target.Infra(fmt.Errorf("packing hil-agent: %w", err))
	}
	agentTag, err := localTag("agent", agentImg)
	if err != nil {
		return nil, target.Infra(err)
	}
	agentRef, err := d.holdImage(ctx, agentTag, agentImg)
	if err != nil {
		return nil, target.Infra(err)
	}

	appRef, err := t.bringApp(ctx, d, img)
	if err != nil {
		return nil, err
	}

	d.name = "hil-" + d.id
	iface := cfg.Iface
	if iface == "" {
		iface = "eth0"
	}
	// The holder owns the network namespace; IPv6 off so the app captures
	// none of the kernel's own solicitations.
	if _, err := c.run(ctx, nil, "docker run -d --name "+d.name+"-net --network none --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_ADMIN"+
		" --sysctl net.ipv6.conf.all.disable_ipv6=1 --sysctl net.ipv6.conf.default.disable_ipv6=1 "+quote(agentRef)); err != nil {
		return nil, target.Infra(fmt.Errorf("starting the network holder on board %s: %w", t.board.Name, err))
	}
	d.iface = iface
	if err := d.startLink(ctx, iface); err != nil {
		return nil, target.Infra(err)
	}

	args := []string{"docker", "run", "-d", "--name", d.name, "--network", "container:" + d.name + "-net",
		"--cap-add", "NET_RAW", "--cap-add", "NET_ADMIN"}
	for _, e := range cfg.Env {
		args = append(args, "-e", e)
	}
	if cfg.WorkingDir != "" {
		args = append(args, "-w", cfg.WorkingDir)
	}
	if cfg.User != "" {
		args = append(args, "-u", cfg.User)
	}
	argv := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	if len(cfg.Entrypoint) > 0 {
		args = append(args, "--entrypoint", cfg.Entrypoint[0])
		argv = argv[1:]
	}
	args = append(append(args, appRef), argv...)
	if _, err := c.run(ctx, nil, quoteAll(args)); err != nil {
		// docker run -d fails for an entrypoint that cannot be executed
		// (wrong arch, missing loader): that is the app's fault.
		return nil, fmt.Errorf("starting the app on board %s: %w", t.board.Name, err)
	}
	d.info["container"] = d.name
	d.info["boot_ms"] = jsonfmt.Millis(time.Since(start))
	if ni, err := d.netInfo(ctx); err != nil {
		d.info["rx_offload"] = "unknown (" + err.Error() + ")"
	} else {
		d.info["rx_offload"], d.info["rx_offload_features"] = ni.RxOffload, ni.Features
	}
	if err := d.followLogs(); err != nil {
		return nil, target.Infra(err)
	}
	return d, nil
}

// bringApp makes the app image available on the board and returns the
// reference to run.
func (t *Target) bringApp(ctx context.Context, d *RemoteApp, img *image.Image) (string, error) {
	if t.pull {
		ref, err := name.ParseReference(img.Ref)
		if err != nil {
			return "", fmt.Errorf("pulling on the board needs a registry reference, got %q: %w", img.Ref, err)
		}
		byDigest := ref.Context().Digest(img.ManifestDigest.String()).String()
		if _, err := d.conn.run(ctx, nil, "docker pull "+quote(byDigest)); err != nil {
			return "", target.Infra(err)
		}
		d.info["image"] = byDigest
		return byDigest, nil
	}
	tag, err := localTag("app", img.Image)
	if err != nil {
		return "", target.Infra(err)
	}
	ref, err := d.holdImage(ctx, tag, img.Image)
	if err != nil {
		return "", target.Infra(err)
	}
	d.info["image"] = tag.String()
	return ref, nil
}

// holdImage makes img available on the board as tag and gives this boot a
// tag of its own on it, which is what the boot runs and what Close removes
// (with tag itself when this boot loaded it). Boots that share a board (a
// parallel suite) so never remove an image another one still uses: Docker
// deletes it only with its last tag.
func (d *RemoteApp) holdImage(ctx context.Context, tag name.Tag, img v1.Image) (string, error) {
	own := tag.String() + "-" + d.id
	for attempt := 0; ; attempt++ {
		loaded, err := d.conn.ensureImage(ctx, tag, img)
		if err != nil {
			return "", err
		}
		if loaded {
			d.untag = append(d.untag, tag.String())
		}
		_, err = d.conn.run(ctx, nil, "docker tag "+quote(tag.String())+" "+quote(own))
		if err == nil {
			d.untag = append(d.untag, own)
			return own, nil
		}
		if attempt > 0 || ctx.Err() != nil {
			return "", err
		}
		// Another boot removed tag between our look and our tag: load again.
	}
}

// RemoteApp is an app running on a board.
type RemoteApp struct {
	conn  *conn
	board Machine
	name  string
	info  target.Info
	iface string // the app's interface on the board

	id    string
	untag []string // tags Close removes: this boot's own, and those it loaded

	link    *framed.Conn
	linkSes *ssh.Session
	logSes  *ssh.Session
	output  chan target.Line

	// Liveness: the SSH connection's end, the app's exit once Wait saw it,
	// the signals hil sent.
	sshDone     chan struct{}
	sshErr      error
	dialTimeout time.Duration
	exitMu      sync.Mutex
	exit        *target.Exit
	sent        imgrun.Sent

	closeOnce sync.Once
}

var (
	_ target.App             = (*RemoteApp)(nil)
	_ target.Liveness        = (*RemoteApp)(nil)
	_ target.DeliveryCounter = (*RemoteApp)(nil)
)

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// agentTimeout bounds one liveness round trip through the agent: its echo
// waits behind the frames queued before it, a few hundred milliseconds'
// worth at most on a Pi.
const agentTimeout = 10 * time.Second

// sshPingTimeout bounds one keepalive round trip to the board's sshd.
const sshPingTimeout = 5 * time.Second

// Alive checks the channel to the board: the SSH connection is up and
// hil's agent answers a round trip through its frame relay (a sync marker
// it echoes after everything before it). Nil once the app's own exit was
// seen. The app container killed by a SIGKILL hil did not send (docker
// kill on the board) is a dead device too.
func (d *RemoteApp) Alive(ctx context.Context) error {
	d.exitMu.Lock()
	exit := d.exit
	d.exitMu.Unlock()
	if exit != nil {
		if how := imgrun.KilledFromOutside(*exit, &d.sent); how != "" {
			return target.Dead(fmt.Sprintf("the app container %s on board %s", d.name, d.board.Name), how)
		}
		return nil
	}
	if err := d.sshAlive(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, agentTimeout)
	defer cancel()
	if err := d.link.Drain(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return err
		}
		// The agent's channel rides on the SSH connection: when that went,
		// say so rather than blame the agent.
		if serr := d.sshAlive(); serr != nil {
			return serr
		}
		return target.Dead(fmt.Sprintf("hil's agent on board %s (in container %s-net)", d.board.Name, d.name), "does not answer: "+err.Error())
	}
	return nil
}

// sshAlive is nil while the SSH connection to the board answers.
func (d *RemoteApp) sshAlive() error {
	what := fmt.Sprintf("the SSH connection to board %s (%s)", d.board.Name, d.board.Addr())
	if isClosed(d.sshDone) {
		how := "closed"
		if d.sshErr != nil {
			how += ": " + d.sshErr.Error()
		}
		return target.Dead(what, how)
	}
	if err := d.conn.ping(sshPingTimeout); err != nil {
		return target.Dead(what, "does not answer: "+err.Error())
	}
	return nil
}

func (d *RemoteApp) startLink(ctx context.Context, iface string) error {
	s, err := d.conn.client.NewSession()
	if err != nil {
		return fmt.Errorf("opening the agent channel on board %s: %w", d.board.Name, err)
	}
	d.linkSes = s
	stdin, err := s.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	s.Stderr = &stderr
	if err := s.Start("docker exec -i " + d.name + "-net /hil-agent link --iface " + quote(iface)); err != nil {
		return fmt.Errorf("starting the agent on board %s: %w", d.board.Name, err)
	}
	br := bufio.NewReaderSize(stdout, 256<<10)
	ready := make(chan error, 1)
	go func() {
		b, err := framed.ReadFrom(br)
		if err == nil && len(b) != 0 {
			err = fmt.Errorf("expected the empty ready frame, got %d bytes", len(b))
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			return fmt.Errorf("the agent on board %s did not create %s: %v: %s", d.board.Name, iface, err, strings.TrimSpace(stderr.String()))
		}
	case <-ctx.Done():
		return fmt.Errorf("waiting for the agent on board %s: %w", d.board.Name, ctx.Err())
	}
	d.link, err = framed.New(br, stdin, stdin, framed.WithName("the agent on "+d.board.Name))
	return err
}

// netInfo asks hil's agent on the board for the app interface's receive
// coalescing and counters.
func (d *RemoteApp) netInfo(ctx context.Context) (agent.NetInfo, error) {
	var ni agent.NetInfo
	out, err := d.conn.run(ctx, nil, "docker exec "+d.name+"-net /hil-agent netinfo --iface "+quote(d.iface))
	if err != nil {
		return ni, fmt.Errorf("reading %s on board %s: %w", d.iface, d.board.Name, err)
	}
	if err := json.Unmarshal([]byte(out), &ni); err != nil {
		return ni, fmt.Errorf("reading %s on board %s: the agent said %q: %w", d.iface, d.board.Name, out, err)
	}
	return ni, nil
}

// RxCounters reads the receive counters of the app's interface on the
// board (through hil's agent).
func (d *RemoteApp) RxCounters(ctx context.Context) (link.Counters, error) {
	ni, err := d.netInfo(ctx)
	return ni.Counters, err
}

// followLogs streams the container's stdout and stderr as Lines; Output is
// closed when both end (the container exited and its logs are drained).
func (d *RemoteApp) followLogs() error {
	s, err := d.conn.client.NewSession()
	if err != nil {
		return fmt.Errorf("opening the log channel on board %s: %w", d.board.Name, err)
	}
	d.logSes = s
	stdout, err := s.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := s.StderrPipe()
	if err != nil {
		return err
	}
	if err := s.Start("docker logs -f " + d.name); err != nil {
		return fmt.Errorf("following the app's logs on board %s: %w", d.board.Name, err)
	}
	var wg sync.WaitGroup
	pump := func(r io.Reader, stream target.Stream) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.output <- target.Line{Stream: stream, Text: sc.Text(), Time: time.Now()}
		}
	}
	wg.Add(2)
	go pump(stdout, target.Stdout)
	go pump(stderr, target.Stderr)
	go func() {
		wg.Wait()
		s.Wait()
		close(d.output)
	}()
	return nil
}

// Output streams the app's stdout and stderr lines.
func (d *RemoteApp) Output() <-chan target.Line { return d.output }

// Link is the agent's relay to the app's interface.
func (d *RemoteApp) Link() link.Link { return d.link }

// Signal sends sig to the app through Docker.
func (d *RemoteApp) Signal(sig syscall.Signal) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	d.sent.Add(sig)
	_, err := d.conn.run(ctx, nil, "docker kill -s "+strconv.Itoa(int(sig))+" "+d.name)
	return err
}

// Wait blocks until the app's container exits.
func (d *RemoteApp) Wait(ctx context.Context) (target.Exit, error) {
	out, err := d.conn.run(ctx, nil, "docker wait "+d.name)
	if err != nil {
		if ctx.Err() != nil {
			return target.NotObserved("stopped waiting"), err
		}
		return target.NotObserved("the board did not say"), target.Infra(err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return target.NotObserved("the board did not say"), target.Infra(fmt.Errorf("docker wait on board %s printed %q: expected an exit code", d.board.Name, out))
	}
	exit := imgrun.DockerExit(code)
	d.exitMu.Lock()
	d.exit = &exit
	d.exitMu.Unlock()
	return exit, nil
}

// Info describes the board and the run.
func (d *RemoteApp) Info() target.Info { return d.info.Clone() }

// Close removes the app and holder containers, the images hil loaded, and
// closes every channel to the board.
func (d *RemoteApp) Close() error {
	var errs []error
	d.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		conn := d.conn
		if isClosed(d.sshDone) || d.conn.ping(sshPingTimeout) != nil {
			// The connection dropped (the board rebooted, the network
			// went): what hil started there must still go.
			c, err := dial(ctx, d.board, d.dialTimeout)
			if err != nil {
				errs = append(errs, fmt.Errorf("reconnecting to board %s to remove what hil started there: %w", d.board.Name, err))
			} else {
				conn = c
				defer c.close()
			}
		}
		if d.link != nil {
			d.link.Close()
		}
		if d.linkSes != nil {
			d.linkSes.Close()
		}
		if d.name != "" {
			d.sent.Add(syscall.SIGKILL)
			if _, err := conn.run(ctx, nil, "docker rm -f "+d.name+" "+d.name+"-net >/dev/null 2>&1; true"); err != nil {
				errs = append(errs, err)
			}
		}
		if d.logSes != nil {
			d.logSes.Close()
		}
		if len(d.untag) > 0 {
			// A tag another boot removed first (both loaded it at once) is
			// not an error; any other refusal is.
			script := "fail=0; for t in " + quoteAll(d.untag) + `; do out=$(docker rmi "$t" 2>&1) || case $out in *"No such image"*) ;; *) echo "$out" >&2; fail=1 ;; esac; done; exit $fail`
			if _, err := conn.run(ctx, nil, script); err != nil {
				errs = append(errs, err)
			}
		}
		if d.logSes == nil {
			close(d.output) // no log follower will
		}
		if err := d.conn.close(); err != nil && !isClosed(d.sshDone) {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}
