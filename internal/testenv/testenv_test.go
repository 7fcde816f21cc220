package testenv

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRegistryServesAndStops(t *testing.T) {
	r := Registry(t, WithHtpasswd("ci", "s3cret"))
	resp, err := http.Get("http://" + r.Host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v2/ without credentials: got %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+r.Host+"/v2/", nil)
	req.SetBasicAuth("ci", "s3cret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ with credentials: got %d, want 200", resp.StatusCode)
	}
	r.Stop()
	if _, err := http.Get("http://" + r.Host + "/v2/"); err == nil {
		t.Fatal("registry still answers after Stop")
	}
}

func TestDockerdAnswersAndLeavesNoBridge(t *testing.T) {
	RequireRoot(t)
	dir, err := os.MkdirTemp("", "hil-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := StartDockerd(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	out, err := exec.Command("docker", "-H", e.Host, "info", "--format", "{{.Driver}}").CombinedOutput()
	if err != nil {
		t.Fatalf("docker info: %v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) == "" {
		t.Fatal("docker info printed no storage driver")
	}
	// A bridge network, as testcontainers makes: its Linux bridge must go
	// with the engine.
	out, err = exec.Command("docker", "-H", e.Host, "network", "create", "-o", "com.docker.network.bridge.name=hiltestbr0", "hil-test").CombinedOutput()
	if err != nil {
		t.Fatalf("docker network create: %v: %s", err, out)
	}
	if _, err := net.InterfaceByName("hiltestbr0"); err != nil {
		t.Fatalf("the network's bridge is not there: %v", err)
	}
	e.Stop()
	if _, err := net.InterfaceByName("hiltestbr0"); err == nil {
		t.Fatal("the engine's bridge outlived it")
	}
}

func TestSSHDAcceptsTheClientKeyOnly(t *testing.T) {
	RequireRoot(t)
	s := SSHD(t, WithSessionEnv("HIL_BOARD=yes"))
	out, err := exec.Command("ssh", "-i", s.ClientKey, "-o", "UserKnownHostsFile="+s.KnownHosts,
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-p", strings.Split(s.Addr, ":")[1], s.User+"@127.0.0.1", "echo $HIL_BOARD").CombinedOutput()
	if err != nil {
		t.Fatalf("ssh: %v: %s\nsshd: %s", err, out, s.Log())
	}
	if !strings.Contains(string(out), "yes") {
		t.Fatalf("session env not set: %q", out)
	}
	// A key the server does not know is refused.
	other := filepath.Join(t.TempDir(), "other")
	if _, err := writeKey(other); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command("ssh", "-i", other, "-o", "UserKnownHostsFile="+s.KnownHosts,
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-p", strings.Split(s.Addr, ":")[1], s.User+"@127.0.0.1", "true").CombinedOutput()
	if err == nil {
		t.Fatalf("ssh with an unknown key succeeded: %s", out)
	}
}
