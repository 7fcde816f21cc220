//go:build linux && cgo

package recorded

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/hilproject/hil/internal/nspair"
)

// downloadSize is the HTTP body: about 1,450 full-size segments, a
// recording of about 2.3 MB.
const downloadSize = 2 << 20

// httpDownload serves a 2 MiB body from B with net/http and downloads it
// from A with net/http's client.
func httpDownload(ctx context.Context, p *nspair.Pair) error {
	body := make([]byte, downloadSize)
	rng := mrand.New(mrand.NewPCG(1, 2)) // fixed content; the rest of a recording is not
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	ln, err := p.B.Listen("tcp", net.JoinHostPort(p.B.IPv4.String(), "80"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	tr := &http.Transport{DialContext: p.A.Dial, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.B.IPv4.String()+"/firmware.bin", nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != downloadSize {
		return fmt.Errorf("download: %d of %d bytes: %v", n, downloadSize, err)
	}
	// Close the connection from the client so the recording ends with FINs.
	tr.CloseIdleConnections()
	return nil
}

// tlsSession runs a TLS 1.3 server on B with a fresh ECDSA certificate
// and a client on A that verifies it, sends a request and reads the reply.
func tlsSession(ctx context.Context, p *nspair.Pair) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "device.home.arpa"},
		DNSNames:     []string{"device.home.arpa"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	ln, err := p.B.Listen("tcp", net.JoinHostPort(p.B.IPv4.String(), "443"))
	if err != nil {
		return err
	}
	defer ln.Close()
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}, MinVersion: tls.VersionTLS13})
	served := make(chan error, 1)
	go func() {
		c, err := tln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			served <- err
			return
		}
		_, err = io.WriteString(c, "pong "+line)
		served <- err
	}()
	raw, err := p.A.Dial(ctx, "tcp", net.JoinHostPort(p.B.IPv4.String(), "443"))
	if err != nil {
		return err
	}
	c := tls.Client(raw, &tls.Config{ServerName: "device.home.arpa", RootCAs: pool, MinVersion: tls.VersionTLS13})
	defer c.Close()
	if err := c.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || reply != "pong ping\n" {
		return fmt.Errorf("TLS reply %q: %v", reply, err)
	}
	if err := <-served; err != nil {
		return fmt.Errorf("TLS server: %w", err)
	}
	return c.Close() // close_notify, then FIN
}

// dnsQueries starts dnsmasq on B as the resolver of home.arpa and asks it
// with Go's own DNS client from A.
func dnsQueries(ctx context.Context, p *nspair.Pair) error {
	srv := p.B.IPv4.String()
	cmd := p.B.Command(ctx, "dnsmasq",
		"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
		"--log-facility=-", "--log-queries", "--user=root", "--group=root",
		"--bind-interfaces", "--listen-address="+srv, "--port=53",
		"--local=/home.arpa/", "--domain=home.arpa",
		"--host-record=sensor.home.arpa,10.77.0.20,fd00:77::20",
		"--host-record=mqtt.home.arpa,10.77.0.5",
		"--host-record=printer.home.arpa,10.77.0.30",
		"--txt-record=config.home.arpa,\"interval=60\"",
		"--mx-host=home.arpa,mail.home.arpa,10",
		"--host-record=mail.home.arpa,10.77.0.25",
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dnsmasq (Debian package dnsmasq-base): %w", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if err := waitLine(stderr, "started, version", 10*time.Second); err != nil {
		return fmt.Errorf("dnsmasq: %w", err)
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return p.A.Dial(ctx, network, net.JoinHostPort(srv, "53"))
	}}
	// Fully qualified names: the host's search domains must not add
	// queries of their own.
	if addrs, err := r.LookupHost(ctx, "sensor.home.arpa."); err != nil || len(addrs) != 2 {
		return fmt.Errorf("lookup sensor.home.arpa: %v %v", addrs, err)
	}
	if ips, err := r.LookupIP(ctx, "ip4", "mqtt.home.arpa."); err != nil || len(ips) != 1 {
		return fmt.Errorf("lookup mqtt.home.arpa: %v %v", ips, err)
	}
	if names, err := r.LookupAddr(ctx, "10.77.0.30"); err != nil || len(names) != 1 {
		return fmt.Errorf("reverse lookup 10.77.0.30: %v %v", names, err)
	}
	if txt, err := r.LookupTXT(ctx, "config.home.arpa."); err != nil || len(txt) != 1 {
		return fmt.Errorf("TXT config.home.arpa: %v %v", txt, err)
	}
	if mx, err := r.LookupMX(ctx, "home.arpa."); err != nil || len(mx) != 1 {
		return fmt.Errorf("MX home.arpa: %v %v", mx, err)
	}
	var dnsErr *net.DNSError
	if _, err := r.LookupIP(ctx, "ip4", "nonexistent.home.arpa."); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		return fmt.Errorf("lookup nonexistent.home.arpa: expected NXDOMAIN, found %v", err)
	}
	return nil
}

// waitLine reads r until a line contains want.
func waitLine(r io.Reader, want string, d time.Duration) error {
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		var seen []string
		for sc.Scan() {
			if strings.Contains(sc.Text(), want) {
				found <- nil
				io.Copy(io.Discard, r)
				return
			}
			seen = append(seen, sc.Text())
		}
		found <- fmt.Errorf("ended before %q: %q", want, seen)
	}()
	select {
	case err := <-found:
		return err
	case <-time.After(d):
		return fmt.Errorf("no %q within %s", want, d)
	}
}

func run(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// noNote adapts traffic that needs no note in the recording's provenance.
func noNote(f func(context.Context, *nspair.Pair) error) func(context.Context, *nspair.Pair) (string, error) {
	return func(ctx context.Context, p *nspair.Pair) (string, error) { return "", f(ctx, p) }
}

// ping is iputils ping from A to B.
func ping(ctx context.Context, p *nspair.Pair) error {
	return run(p.A.Command(ctx, "ping", "-n", "-c", "4", "-i", "0.2", "-W", "2", p.B.IPv4.String()))
}

// vlanPing adds VLAN 100 on both ends and pings across it. On a kernel
// without 802.1Q links the kernel still tags every frame of eth0, through
// tc programs (nspair.TagVLAN), and the recording says so.
func vlanPing(ctx context.Context, p *nspair.Pair) (string, error) {
	note := ""
	a, b, err := p.AddVLAN(ctx, 100, "192.168.100.1/24", "192.168.100.2/24")
	if errors.Is(err, nspair.ErrNo8021Q) {
		note = "iputils ping -c 3 from 192.168.100.1 to 192.168.100.2 on a veth pair whose frames the kernel tags with VLAN 100 " +
			"(bpf_skb_vlan_push at tc egress, bpf_skb_vlan_pop at tc ingress: the recording kernel had no 8021q module), captured on eth0"
		a, b, err = p.TagVLAN(ctx, 100, "192.168.100.1/24", "192.168.100.2/24")
	}
	if err != nil {
		return "", err
	}
	return note, run(a.Command(ctx, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-I", a.IPv4.String(), b.IPv4.String()))
}

// ipv6ND turns IPv6 on at both ends, waits until duplicate address
// detection is over, and pings B's address from A: the kernels do the
// neighbour discovery.
func ipv6ND(ctx context.Context, p *nspair.Pair) error {
	if err := p.EnableIPv6(ctx, "fd00:77::1/64", "fd00:77::2/64"); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, ns := range []nspair.NS{p.A, p.B} {
		for {
			out, err := exec.CommandContext(ctx, "ip", "-n", ns.Name, "-6", "addr", "show", "dev", ns.Iface, "tentative").Output()
			if err != nil {
				return err
			}
			if len(strings.TrimSpace(string(out))) == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: addresses still tentative after 10 s: %s", ns.Name, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := run(p.A.Command(ctx, "ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "2", p.B.IPv6.String())); err != nil {
		return err
	}
	// The kernels' remaining router solicitations and reports.
	time.Sleep(time.Second)
	return nil
}
