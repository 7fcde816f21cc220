package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/hilproject/hil/harness/target"
)

// conn is an SSH connection to a board.
type conn struct {
	board  Machine
	client *ssh.Client
}

// dial connects to the board. Every failure here is the board's or the
// lab's, not the app's, so it comes back as a target.InfraError.
func dial(ctx context.Context, b Machine, timeout time.Duration) (*conn, error) {
	auth, err := authMethods(b)
	if err != nil {
		return nil, target.Infra(err)
	}
	hostKey, err := hostKeyCallback(b)
	if err != nil {
		return nil, target.Infra(err)
	}
	user := b.User
	if user == "" {
		user = os.Getenv("USER")
	}
	cfg := &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: hostKey, Timeout: timeout}
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", b.Addr())
	if err != nil {
		return nil, target.Infra(fmt.Errorf("board %s (%s) does not answer: %w", b.Name, b.Addr(), err))
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_ = nc.SetDeadline(time.Now().Add(timeout))
	c, chans, reqs, err := ssh.NewClientConn(nc, b.Addr(), cfg)
	if err != nil {
		nc.Close()
		var keyErr *knownhosts.KeyError
		if errors.As(err, &keyErr) {
			if len(keyErr.Want) > 0 {
				return nil, target.Infra(fmt.Errorf("board %s (%s) presented a host key that does not match %s (it may have been reinstalled, or this is not the board): refusing to connect", b.Name, b.Addr(), b.knownHostsPath()))
			}
			return nil, target.Infra(fmt.Errorf("board %s (%s) is not in %s: add its host key (ssh-keyscan -p PORT HOST >> FILE, after checking it)", b.Name, b.Addr(), b.knownHostsPath()))
		}
		return nil, target.Infra(fmt.Errorf("SSH to board %s (%s) as %s: %w", b.Name, b.Addr(), user, err))
	}
	_ = nc.SetDeadline(time.Time{})
	return &conn{board: b, client: ssh.NewClient(c, chans, reqs)}, nil
}

func (b Machine) knownHostsPath() string {
	if b.KnownHosts != "" {
		return b.KnownHosts
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".ssh", "known_hosts")
}

func hostKeyCallback(b Machine) (ssh.HostKeyCallback, error) {
	if b.InsecureIgnoreHostKey {
		fmt.Fprintf(os.Stderr, "hil: WARNING: not checking the host key of board %s (insecure_ignore_host_key)\n", b.Name)
		return ssh.InsecureIgnoreHostKey(), nil
	}
	cb, err := knownhosts.New(b.knownHostsPath())
	if err != nil {
		return nil, fmt.Errorf("reading known hosts for board %s: %w (host keys are always checked; set known_hosts in the inventory)", b.Name, err)
	}
	return cb, nil
}

func authMethods(b Machine) ([]ssh.AuthMethod, error) {
	if b.Key != "" {
		pem, err := os.ReadFile(b.Key)
		if err != nil {
			return nil, fmt.Errorf("reading the SSH key of board %s: %w", b.Name, err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return nil, fmt.Errorf("parsing the SSH key %s of board %s (passphrase-protected keys go through ssh-agent): %w", b.Key, b.Name, err)
		}
		return []ssh.AuthMethod{ssh.PublicKeys(signer)}, nil
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, fmt.Errorf("board %s has no key in the inventory and no ssh-agent is running (SSH_AUTH_SOCK is empty)", b.Name)
	}
	ac, err := net.Dial("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("connecting to ssh-agent at %s: %w", sock, err)
	}
	return []ssh.AuthMethod{ssh.PublicKeysCallback(agent.NewClient(ac).Signers)}, nil
}

// run runs a command on the board and returns its stdout. A non-zero exit
// becomes an error carrying stderr.
func (c *conn) run(ctx context.Context, stdin io.Reader, cmd string) (string, error) {
	s, err := c.client.NewSession()
	if err != nil {
		return "", target.Infra(fmt.Errorf("opening an SSH session on board %s: %w", c.board.Name, err))
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &out, &errb, stdin
	stop := context.AfterFunc(ctx, func() { s.Signal(ssh.SIGKILL); s.Close() })
	defer stop()
	err = s.Run(cmd)
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("%s on board %s: %w", firstWords(cmd), c.board.Name, ctx.Err())
	}
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return out.String(), fmt.Errorf("%s on board %s: %w: %s", firstWords(cmd), c.board.Name, err, msg)
	}
	return out.String(), nil
}

func (c *conn) close() error { return c.client.Close() }

// ping is one round trip on the SSH connection itself (a keepalive request;
// any answer, even a refusal, means the board's sshd is there).
func (c *conn) ping(timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("no answer to an SSH keepalive within %s", timeout)
	}
}

// quote makes s one word for the board's POSIX shell.
func quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = quote(a)
	}
	return strings.Join(q, " ")
}

func firstWords(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}
