package images_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/internal/testenv"
)

// The docker-save tarballs load into a real Docker engine with one tag per
// platform, and the amd64 images run there natively: pcapwatch becomes
// ready and stops cleanly on `docker stop`, crash-on-start exits 1.
func TestDockerLoadsAndRunsTheTarballs(t *testing.T) {
	dir, _ := built(t)
	dockerBin, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("docker client not found (Debian package docker.io): run make deps")
	}
	host := testenv.Dockerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	docker := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, dockerBin, append([]string{"-H", host}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	for _, img := range []string{"pcapwatch", "crash-on-start", "pcapwatch-rs"} {
		if out, err := docker("load", "-i", filepath.Join(dir, img+".tar")); err != nil {
			t.Fatalf("docker load %s.tar: %v\n%s", img, err, out)
		}
	}
	for tag, want := range map[string]string{
		"hil.local/pcapwatch:arm-v7":    `linux arm v7 ["/opt/pcapwatch"]`,
		"hil.local/pcapwatch:amd64":     `linux amd64  ["/opt/pcapwatch"]`,
		"hil.local/pcapwatch-rs:arm-v7": `linux arm v7 ["/usr/local/bin/pcapwatch-rs"]`,
		"hil.local/pcapwatch-rs:amd64":  `linux amd64  ["/usr/local/bin/pcapwatch-rs"]`,
	} {
		got, err := docker("image", "inspect", "-f", "{{.Os}} {{.Architecture}} {{.Variant}} {{json .Config.Entrypoint}}", tag)
		if err != nil || got != want {
			t.Errorf("%s: expected %q, found %q (%v)", tag, want, got, err)
		}
	}

	out, err := docker("run", "--rm", "hil.local/crash-on-start:amd64")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "pcapwatch: fatal:") {
		t.Errorf("crash-on-start under Docker: expected exit 1 and the fatal message, found %v: %q", err, out)
	}

	for _, img := range []string{"pcapwatch", "pcapwatch-rs"} {
		t.Run(img, func(t *testing.T) { runUntilStopped(t, docker, dockerBin, host, img) })
	}
}

// runUntilStopped runs the amd64 image detached, waits for ready, stops it
// the way Docker (and Watchtower) do and expects a summary and exit 0.
func runUntilStopped(t *testing.T, docker func(...string) (string, error), dockerBin, host, img string) {
	name := "hil-pcapwatch-" + strings.ReplaceAll(t.Name(), "/", "-")
	if out, err := docker("run", "-d", "--name", name, "hil.local/"+img+":amd64", "--iface", "lo"); err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(dockerBin, "-H", host, "rm", "-f", name).Run() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		logs, _ := docker("logs", name)
		if strings.Contains(logs, "ready iface=lo") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pcapwatch under Docker not ready within 20 s; logs %q", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := docker("stop", "-t", "10", name); err != nil {
		t.Fatalf("docker stop: %v\n%s", err, out)
	}
	code, _ := docker("inspect", "-f", "{{.State.ExitCode}}", name)
	logs, _ := docker("logs", name)
	if code != "0" || !strings.Contains(logs, `"event":"summary"`) {
		t.Errorf("after docker stop: expected exit 0 and a summary line, found exit %s, logs %q", code, logs)
	}
}
