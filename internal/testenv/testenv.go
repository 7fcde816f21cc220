// Package testenv starts the real services hil's tests need (a registry
// server, a Docker engine) on loopback or private sockets, and finds the
// repository's built artifacts. Every service it starts is stopped by the
// test's cleanup; nothing is left running.
package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot returns the directory holding go.mod, searching up from the
// working directory (go test runs each package in its own directory).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// ImagesDir returns the directory with the built sample images
// ($HIL_IMAGES, else <repo>/build/images). It fails the test when they have
// not been built, saying how to build them.
func ImagesDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("HIL_IMAGES")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "build", "images")
	}
	if _, err := os.Stat(filepath.Join(dir, "pcapwatch", "index.json")); err != nil {
		t.Fatalf("the sample images are not built in %s (%v): run `make images`", dir, err)
	}
	return dir
}

// RequireRoot skips the test when not running as root (network namespaces,
// dockerd). In CI (CI=true) it fails instead: CI runs as root, so a skip
// there would hide a broken setup.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("this test needs root and CI is supposed to run as root")
	}
	t.Skip("needs root (network namespaces, dockerd)")
}

// RequireCommand fails the test when a program the test drives is missing,
// naming the Debian package that provides it (make deps installs them all).
func RequireCommand(t testing.TB, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s not found (Debian package %s): run `make deps`", path, pkg)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
