package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/debian"
)

// target is one Go cross-compilation target of pcapwatch.
type target struct {
	Platform  string // OCI platform, e.g. linux/arm/v7
	GOARCH    string
	GOARM     string
	CC        string
	Triplet   string // Debian multiarch triplet of the sysroot
	Sysroot   []string
	Interpret string // the ELF interpreter the binary asks for
}

var targets = map[string]target{
	"linux/arm/v7": {Platform: "linux/arm/v7", GOARCH: "arm", GOARM: "7", CC: "arm-linux-gnueabihf-gcc",
		Triplet: "arm-linux-gnueabihf", Sysroot: []string{"sysroot-armhf", "runtime-armhf"}, Interpret: "/lib/ld-linux-armhf.so.3"},
	// ARMv5TE soft-float on Debian's armel: GOARM=5 (Go's software
	// floating point), the armel cross compiler; runs on every Pi.
	"linux/arm/v5": {Platform: "linux/arm/v5", GOARCH: "arm", GOARM: "5", CC: "arm-linux-gnueabi-gcc",
		Triplet: "arm-linux-gnueabi", Sysroot: []string{"sysroot-armel", "runtime-armel"}, Interpret: "/lib/ld-linux.so.3"},
	"linux/arm64": {Platform: "linux/arm64", GOARCH: "arm64", CC: "aarch64-linux-gnu-gcc",
		Triplet: "aarch64-linux-gnu", Sysroot: []string{"sysroot-arm64", "runtime-arm64"}, Interpret: "/lib/ld-linux-aarch64.so.1"},
	// amd64 builds natively against the host's libpcap-dev.
	"linux/amd64": {Platform: "linux/amd64", GOARCH: "amd64", CC: "gcc", Triplet: "x86_64-linux-gnu", Interpret: "/lib64/ld-linux-x86-64.so.2"},
}

// binary is one build of the app: a platform plus the fault baked in.
type binary struct {
	Name     string // file name under bin/
	Target   target
	LDFlagsX []string // -X settings
	Tags     []string // build tags (a variant's extra source files)
}

func platformSlug(p string) string {
	return strings.ReplaceAll(strings.TrimPrefix(p, "linux/"), "/", "-")
}

// sysroot unpacks the given .debs into a cached directory keyed by their
// sha256s, so that it is built once per lock.
func sysroot(ctx context.Context, name string, pkgs []debian.Package, debs []string) (string, error) {
	key := ""
	for _, p := range pkgs {
		key += p.SHA256
	}
	dir, err := cache.Dir("images", "sysroot", name+"-"+shortHash([]byte(key)))
	if err != nil {
		return "", err
	}
	done := filepath.Join(dir, ".complete")
	if _, err := os.Stat(done); err == nil {
		return dir, nil
	}
	for _, d := range debs {
		if err := debian.Extract(ctx, d, dir); err != nil {
			return "", err
		}
	}
	return dir, os.WriteFile(done, nil, 0o644)
}

// compile builds one binary into outDir/bin and returns its path.
func compile(ctx context.Context, repo, outDir string, b binary, sysroot string) (string, error) {
	t := b.Target
	if _, err := exec.LookPath(t.CC); err != nil {
		return "", fmt.Errorf("building %s for %s needs the C cross compiler %s (Debian package %s): %w", b.Name, t.Platform, t.CC, ccPackage(t.CC), err)
	}
	out := filepath.Join(outDir, "bin", b.Name)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	// An empty Go build ID: the default one hashes the CGO flags, which
	// hold the cache's absolute path, so the same sources would give other
	// bytes on another machine.
	ld := "-s -w -buildid="
	for _, x := range b.LDFlagsX {
		ld += " -X '" + x + "'"
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ld}
	if len(b.Tags) > 0 {
		args = append(args, "-tags", strings.Join(b.Tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", out, "./images/pcapwatch")...)
	cmd.Dir = repo
	env := append(os.Environ(), "CGO_ENABLED=1", "GOOS=linux", "GOARCH="+t.GOARCH, "CC="+t.CC)
	if t.GOARM != "" {
		env = append(env, "GOARM="+t.GOARM)
	}
	if sysroot != "" {
		// Not --sysroot: the cross toolchain keeps its own glibc; only
		// libpcap's headers and libraries (and, for the linker's checks,
		// libpcap's own dependencies) come from the Debian sysroot.
		var ldflags []string
		for _, d := range []string{"usr/lib/" + t.Triplet, "lib/" + t.Triplet} {
			p := filepath.Join(sysroot, d)
			ldflags = append(ldflags, "-L"+p, "-Wl,-rpath-link,"+p)
		}
		env = append(env, "CGO_CFLAGS=-I"+filepath.Join(sysroot, "usr/include"), "CGO_LDFLAGS="+strings.Join(ldflags, " "))
	}
	cmd.Env = env
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s for %s (CC=%s): %w\n%s", b.Name, t.Platform, t.CC, err, errb.String())
	}
	return out, nil
}

func ccPackage(cc string) string {
	switch cc {
	case "arm-linux-gnueabihf-gcc":
		return "gcc-arm-linux-gnueabihf"
	case "aarch64-linux-gnu-gcc":
		return "gcc-aarch64-linux-gnu"
	case "arm-linux-gnueabi-gcc":
		return "gcc-arm-linux-gnueabi"
	}
	return "gcc"
}
