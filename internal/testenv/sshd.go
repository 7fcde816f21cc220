package testenv

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const sshdBin = "/usr/sbin/sshd"

// SSHServer is a real OpenSSH server on loopback standing in for a board:
// its own host key, config and authorized_keys, nothing of the system's.
type SSHServer struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// User is the login user (the user running the test).
	User string
	// ClientKey is the path of a private key the server accepts.
	ClientKey string
	// KnownHosts is the path of a known_hosts file with the server's key.
	KnownHosts string
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey

	cmd    *exec.Cmd
	waitCh chan error
	log    *bytes.Buffer
}

// SSHDOption configures StartSSHD.
type SSHDOption func(*sshdConfig)

type sshdConfig struct {
	env  []string
	path string
}

// WithSessionEnv sets environment variables in every session (sshd's
// SetEnv), e.g. DOCKER_HOST to point the board's docker at a private engine.
func WithSessionEnv(kv ...string) SSHDOption {
	return func(c *sshdConfig) { c.env = append(c.env, kv...) }
}

// WithSessionPath sets PATH in every session, e.g. a PATH without docker to
// play a board where Docker is missing.
func WithSessionPath(path string) SSHDOption {
	return func(c *sshdConfig) { c.path = path }
}

// StartSSHD starts sshd on a free loopback port with files under dir.
func StartSSHD(ctx context.Context, dir string, opts ...SSHDOption) (*SSHServer, error) {
	if _, err := os.Stat(sshdBin); err != nil {
		return nil, fmt.Errorf("%s not found (Debian package openssh-server): run `make deps`", sshdBin)
	}
	var cfg sshdConfig
	for _, o := range opts {
		o(&cfg)
	}
	// sshd insists on its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("creating /run/sshd: %w", err)
	}
	s := &SSHServer{User: currentUser()}
	hostPub, err := writeKey(filepath.Join(dir, "host_ed25519"))
	if err != nil {
		return nil, err
	}
	s.HostKey = hostPub
	s.ClientKey = filepath.Join(dir, "client_ed25519")
	clientPub, err := writeKey(s.ClientKey)
	if err != nil {
		return nil, err
	}
	authKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authKeys, ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s", port, ssh.MarshalAuthorizedKey(hostPub))
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		return nil, err
	}
	env := cfg.env
	if cfg.path != "" {
		env = append(env, "PATH="+cfg.path)
	}
	conf := []string{
		"Port " + fmt.Sprint(port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "host_ed25519"),
		"AuthorizedKeysFile " + authKeys,
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"StrictModes no",
		"UsePAM no",
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"Subsystem sftp internal-sftp",
	}
	if len(env) > 0 {
		conf = append(conf, "SetEnv "+strings.Join(env, " "))
	}
	confPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(sshdBin, "-D", "-e", "-f", confPath)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = serviceProcAttr()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting sshd: %w", err)
	}
	s.waitCh = make(chan error, 1)
	go func() { s.waitCh <- s.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.waitCh:
			s.waitCh = nil
			return nil, fmt.Errorf("sshd exited at start (%v): %s", err, s.log.String())
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(30 * time.Millisecond):
		}
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
	}
	s.Stop()
	return nil, fmt.Errorf("sshd did not listen on %s within 10s: %s", s.Addr, s.log.String())
}

// Stop kills sshd and every session it started.
func (s *SSHServer) Stop() {
	if s.cmd == nil || s.waitCh == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.waitCh
	s.waitCh = nil
}

// DropConnections kills the processes serving the server's connections, as
// a board that reboots or drops off the network would end them, and leaves
// sshd listening for new ones.
func (s *SSHServer) DropConnections() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return errors.New("sshd is not running")
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at ')'.
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(s.cmd.Process.Pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return nil
}

// Log returns what sshd printed.
func (s *SSHServer) Log() string { return s.log.String() }

// SSHD starts an sshd for the test and stops it at cleanup.
func SSHD(t testing.TB, opts ...SSHDOption) *SSHServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := StartSSHD(ctx, t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("starting sshd: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func writeKey(path string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return sshPub, os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644)
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if os.Geteuid() == 0 {
		return "root"
	}
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
