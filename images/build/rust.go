package main

// The Rust sample, pcapwatch-rs, built the way a team ships a Rust app
// that links libpcap: Debian's rustc cross-compiles for
// armv7-unknown-linux-gnueabihf against Debian's armhf standard library
// (libstd-rust-dev:armhf, pinned in images/debs.lock) with
// arm-linux-gnueabihf-gcc as the linker; amd64 is native. The image is
// COPY-only: a distroless/cc-style Debian runtime (libc6, libgcc-s1), then
// libpcap.so.0.8 and the libraries it needs in turn, copied in by hand,
// then the binary. Nothing is run for the target architecture.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/debian"
)

// rustc is Debian's compiler, by absolute path: a rustup toolchain earlier
// in PATH would not match the pinned armhf standard library.
const rustc = "/usr/bin/rustc"

// rustEntrypoint is where a Rust team's Dockerfile puts the binary.
const rustEntrypoint = "/usr/local/bin/pcapwatch-rs"

// rustVariant is one image of the Rust sample.
type rustVariant struct {
	Name      string
	Breaks    string
	Platforms []string
	// FaultAfter, when set, bakes the late-crash fault into the binary:
	// seconds after ready at which its housekeeping panics.
	FaultAfter string
	// OnlyLibpcap copies libpcap.so.0.8 alone into /lib, not the
	// libraries it needs in turn: the recipe's classic mistake.
	OnlyLibpcap bool
}

// lateCrashAfter is the late-crash delay. The gate's bundled scenarios
// must all pass before it: the longest, burst-100k, sends SIGTERM about
// 4 s after ready (1 s of replay at 100,000 pps, then a 3 s wait), and the
// fault never fires once the app is stopping, so 10 s leaves a loaded
// host more than twice that while a health window of 15 s or more sees
// the crash.
const lateCrashAfter = "10"

var rustVariants = []rustVariant{
	{Name: "pcapwatch-rs", Platforms: both},
	{Name: "rs-no-deps", Breaks: "only libpcap.so.0.8 was copied (into /lib), not libdbus-1.so.3 and the rest it needs, onto a base that lacks them", Platforms: both, OnlyLibpcap: true},
	{Name: "late-crash", Breaks: "passes the bundled scenarios, then panics (exit 101) " + lateCrashAfter + " s after ready", Platforms: both, FaultAfter: lateCrashAfter},
}

// rustTarget is how pcapwatch-rs is compiled for one platform.
type rustTarget struct {
	Triple string // rustc --target
	Linker string
	// Std is the deb set holding the target's standard library ("" for
	// the host's own, from Debian's rustc).
	Std string
	// Base is the deb set of the runtime image; Libs the set the copied
	// libraries come from.
	Base, Libs string
	Triplet    string // Debian multiarch triplet
}

var rustTargets = map[string]rustTarget{
	"linux/arm/v7": {Triple: "armv7-unknown-linux-gnueabihf", Linker: "arm-linux-gnueabihf-gcc", Std: "rust-std-armhf",
		Base: "runtime-armhf-cc", Libs: "runtime-armhf", Triplet: "arm-linux-gnueabihf"},
	"linux/amd64": {Triple: "x86_64-unknown-linux-gnu", Linker: "gcc",
		Base: "runtime-amd64-cc", Libs: "runtime-amd64", Triplet: "x86_64-linux-gnu"},
}

// buildRustImages compiles pcapwatch-rs and writes the Rust images.
func buildRustImages(ctx context.Context, repo, out string, sets map[string]fetched, sysroots map[string]string) ([]*builtImage, error) {
	if _, err := os.Stat(rustc); err != nil {
		return nil, fmt.Errorf("building pcapwatch-rs needs Debian's rustc at %s (Debian package rustc; make deps installs it): %w", rustc, err)
	}
	bins := map[string]string{} // platform|fault → binary
	binFor := func(v rustVariant, plat string) (string, error) {
		key := plat + "|" + v.FaultAfter
		if p, ok := bins[key]; ok {
			return p, nil
		}
		nm := "pcapwatch-rs"
		if v.FaultAfter != "" {
			nm += "-" + v.Name
		}
		p, err := compileRust(ctx, repo, filepath.Join(out, "bin", nm+"-"+strings.ReplaceAll(plat, "/", "-")), plat, v.FaultAfter, sets, sysroots[plat])
		if err != nil {
			return "", err
		}
		bins[key] = p
		return p, nil
	}
	var built []*builtImage
	for _, v := range rustVariants {
		imgs := map[string]v1.Image{}
		vbins := map[string]string{}
		pkgsUsed := map[string][]string{}
		for _, plat := range v.Platforms {
			bin, err := binFor(v, plat)
			if err != nil {
				return nil, err
			}
			img, names, err := assembleRust(ctx, v, plat, sets, bin)
			if err != nil {
				return nil, fmt.Errorf("image %s %s: %w", v.Name, plat, err)
			}
			imgs[plat], vbins[plat], pkgsUsed[plat] = img, bin, names
		}
		bi, err := writeImage(out, v.Name, v.Platforms, imgs, false)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", v.Name, err)
		}
		bi.Breaks, bi.Binaries, bi.Packages = v.Breaks, vbins, pkgsUsed
		built = append(built, bi)
	}
	return built, nil
}

// rustSources are the app's source files, sorted.
func rustSources(repo string) ([]string, error) {
	srcs, err := filepath.Glob(filepath.Join(repo, "images", "pcapwatch-rs", "*.rs"))
	if err == nil && len(srcs) == 0 {
		err = errors.New("no .rs files in images/pcapwatch-rs")
	}
	sort.Strings(srcs)
	return srcs, err
}

// compileRust builds pcapwatch-rs for plat into dst. Outputs are cached
// under $HIL_CACHE by a hash of everything that goes into them (sources,
// flags, toolchain versions, the pinned debs), so a forced rebuild with
// nothing changed costs no compile.
func compileRust(ctx context.Context, repo, dst, plat, faultAfter string, sets map[string]fetched, sysroot string) (string, error) {
	t, ok := rustTargets[plat]
	if !ok {
		return "", fmt.Errorf("pcapwatch-rs has no Rust target for %s", plat)
	}
	if _, err := exec.LookPath(t.Linker); err != nil {
		return "", fmt.Errorf("linking pcapwatch-rs for %s needs %s (Debian package %s): %w", plat, t.Linker, ccPackage(t.Linker), err)
	}
	srcs, err := rustSources(repo)
	if err != nil {
		return "", err
	}
	args := []string{"--edition", "2021", "--crate-name", "pcapwatch_rs", "--crate-type", "bin",
		"-C", "opt-level=2", "-C", "codegen-units=1", "-C", "debuginfo=0", "-C", "strip=symbols",
		"--target", t.Triple, "-C", "linker=" + t.Linker,
		// Panic messages name the source file: the same path on every
		// machine.
		"--remap-path-prefix", repo + "=."}
	h := sha256.New()
	if t.Std != "" {
		std, err := rustStd(ctx, repo, t, sets)
		if err != nil {
			return "", err
		}
		args = append(args, "--sysroot", std)
		for _, p := range sets[t.Std].pkgs {
			fmt.Fprintf(h, "std %s\n", p.SHA256)
		}
	}
	if sysroot != "" {
		// Like the Go build: libpcap's link-time library (and, for the
		// linker's checks, its own dependencies) from the Debian sysroot;
		// glibc from the cross toolchain.
		for _, d := range []string{"usr/lib/" + t.Triplet, "lib/" + t.Triplet} {
			p := filepath.Join(sysroot, d)
			args = append(args, "-L", "native="+p, "-C", "link-arg=-Wl,-rpath-link,"+p)
		}
		fmt.Fprintf(h, "sysroot %s\n", filepath.Base(sysroot))
	}
	main := filepath.Join(repo, "images", "pcapwatch-rs", "main.rs")
	for _, s := range srcs {
		b, err := os.ReadFile(s)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "src %s %d\n", filepath.Base(s), len(b))
		h.Write(b)
	}
	for _, tool := range [][]string{{rustc, "-vV"}, {t.Linker, "--version"}} {
		o, err := exec.CommandContext(ctx, tool[0], tool[1:]...).Output()
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", tool[0], tool[1], err)
		}
		h.Write(o)
	}
	fmt.Fprintf(h, "args %q fault %q\n", args, faultAfter)
	key := hex.EncodeToString(h.Sum(nil))[:24]
	cdir, err := cache.Dir("images", "rust", key)
	if err != nil {
		return "", err
	}
	cached := filepath.Join(cdir, "pcapwatch-rs")
	if _, err := os.Stat(cached); err != nil {
		tmp, err := os.MkdirTemp(cdir, "build-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(tmp)
		cmd := exec.CommandContext(ctx, rustc, append(args, "-o", filepath.Join(tmp, "pcapwatch-rs"), main)...)
		cmd.Dir = repo
		// Only the builder decides whether the fault is baked in.
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "PCAPWATCH_RS_") {
				env = append(env, kv)
			}
		}
		if faultAfter != "" {
			env = append(env, "PCAPWATCH_RS_HOUSEKEEPING_FAULT_AFTER="+faultAfter)
		}
		cmd.Env = env
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &errb, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("rustc pcapwatch-rs for %s (%s, linker %s): %w\n%s", plat, t.Triple, t.Linker, err, errb.String())
		}
		if err := os.Rename(filepath.Join(tmp, "pcapwatch-rs"), cached); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	b, err := os.ReadFile(cached)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(dst+".tmp", b, 0o755); err != nil {
		return "", err
	}
	return dst, os.Rename(dst+".tmp", dst)
}

// rustStd unpacks the target's standard library (cached) and returns the
// --sysroot for rustc. The library must come from the very rustc build
// that compiles against it, so the pinned package is checked against the
// installed compiler first.
func rustStd(ctx context.Context, repo string, t rustTarget, sets map[string]fetched) (string, error) {
	pkgs := sets[t.Std].pkgs
	var std *debian.Package
	for i := range pkgs {
		if pkgs[i].Name == "libstd-rust-dev" {
			std = &pkgs[i]
		}
	}
	if std == nil {
		return "", fmt.Errorf("deb set %s has no libstd-rust-dev", t.Std)
	}
	o, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", "rustc").Output()
	if err != nil {
		return "", fmt.Errorf("asking dpkg for the installed rustc's version (Debian package rustc): %w", err)
	}
	if have := strings.TrimSpace(string(o)); have != std.Version {
		return "", fmt.Errorf("Debian's rustc is %s but images/debs.lock pins libstd-rust-dev:%s %s; the standard library must come from the same rustc build: install rustc=%s, or run `go run ./images/build --relock` after upgrading rustc",
			have, std.Arch, std.Version, std.Version)
	}
	dir, err := sysroot(ctx, "rust-std-"+t.Triple, sets[t.Std].pkgs, sets[t.Std].debs)
	if err != nil {
		return "", fmt.Errorf("unpacking the %s standard library: %w", t.Triple, err)
	}
	return filepath.Join(dir, "usr"), nil
}

// copiedLib is a shared library copied into the image by hand.
type copiedLib struct {
	Soname string
	Data   []byte
	From   string // the package it came from: "name version arch sha256"
}

// libpcapClosure returns libpcap.so.0.8 and, unless onlyLibpcap, every
// library it needs in turn that the base image lacks, read from the
// packages of the libs set (each unpacked on its own, cached, so that the
// package a file came from is known).
func libpcapClosure(ctx context.Context, t rustTarget, sets map[string]fetched, onlyLibpcap bool) ([]copiedLib, error) {
	libDirs := []string{"lib/" + t.Triplet, "usr/lib/" + t.Triplet}
	base := sets[t.Base]
	baseDir, err := sysroot(ctx, "rs-base-"+t.Triplet, base.pkgs, base.debs)
	if err != nil {
		return nil, err
	}
	inBase := func(so string) bool {
		for _, d := range append(libDirs, "lib", "usr/lib") {
			if _, err := os.Stat(filepath.Join(baseDir, d, so)); err == nil {
				return true
			}
		}
		return false
	}
	type pkgDir struct {
		p   debian.Package
		dir string
	}
	var dirs []pkgDir
	src := sets[t.Libs]
	for i, p := range src.pkgs {
		d, err := sysroot(ctx, "pkg-"+p.Name+"-"+p.Arch, []debian.Package{p}, []string{src.debs[i]})
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, pkgDir{p, d})
	}
	find := func(so string) (copiedLib, error) {
		for _, pd := range dirs {
			for _, d := range libDirs {
				p := filepath.Join(pd.dir, d, so)
				real, err := filepath.EvalSymlinks(p)
				if err != nil {
					continue
				}
				// Debian's library symlinks are relative; one that leads out
				// of the package is not used.
				if rel, err := filepath.Rel(pd.dir, real); err != nil || strings.HasPrefix(rel, "..") {
					return copiedLib{}, fmt.Errorf("%s in %s points outside the package (%s)", so, pd.p, real)
				}
				b, err := os.ReadFile(real)
				if err != nil {
					return copiedLib{}, err
				}
				pk := pd.p
				return copiedLib{Soname: so, Data: b, From: fmt.Sprintf("%s %s %s %s", pk.Name, pk.Version, pk.Arch, pk.SHA256)}, nil
			}
		}
		return copiedLib{}, fmt.Errorf("%s: in neither the base image (%s) nor the packages of %s", so, t.Base, t.Libs)
	}
	var libs []copiedLib
	seen := map[string]bool{}
	queue := []string{"libpcap.so.0.8"}
	for len(queue) > 0 {
		so := queue[0]
		queue = queue[1:]
		if seen[so] || (so != "libpcap.so.0.8" && inBase(so)) {
			continue
		}
		seen[so] = true
		l, err := find(so)
		if err != nil {
			return nil, fmt.Errorf("collecting libpcap.so.0.8 and what it needs: %w", err)
		}
		libs = append(libs, l)
		if onlyLibpcap {
			break
		}
		f, err := elf.NewFile(bytes.NewReader(l.Data))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", so, err)
		}
		needed, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the DT_NEEDED entries of %s: %w", so, err)
		}
		queue = append(queue, needed...)
	}
	sort.Slice(libs, func(i, j int) bool { return libs[i].Soname < libs[j].Soname })
	return libs, nil
}

// assembleRust makes one platform's image of a Rust variant: the runtime
// base, the copied libraries, the binary. It returns the packages it holds.
func assembleRust(ctx context.Context, v rustVariant, plat string, sets map[string]fetched, bin string) (v1.Image, []string, error) {
	t := rustTargets[plat]
	base, _, err := rootfsLayer(ctx, sets[t.Base].debs, nil)
	if err != nil {
		return nil, nil, err
	}
	libs, err := libpcapClosure(ctx, t, sets, v.OnlyLibpcap)
	if err != nil {
		return nil, nil, err
	}
	libDir := "usr/lib/" + t.Triplet
	if v.OnlyLibpcap {
		libDir = "lib"
	}
	var names []string
	for _, p := range sets[t.Base].pkgs {
		names = append(names, fmt.Sprintf("%s %s %s %s", p.Name, p.Version, p.Arch, p.SHA256))
	}
	var files []layerFile
	var copied []string
	from := map[string]bool{}
	for _, l := range libs {
		files = append(files, layerFile{Path: libDir + "/" + l.Soname, Mode: 0o644, Data: l.Data})
		copied = append(copied, l.Soname)
		if !from[l.From] {
			from[l.From] = true
			names = append(names, l.From)
		}
	}
	libLayer, err := filesLayer(files)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, nil, err
	}
	app, err := filesLayer([]layerFile{{Path: strings.TrimPrefix(rustEntrypoint, "/"), Mode: 0o755, Data: b}})
	if err != nil {
		return nil, nil, err
	}
	s := setByName(t.Base)
	labels := map[string]string{
		"org.opencontainers.image.title": v.Name,
		"io.hil.variant":                 v.Name,
		"io.hil.debian":                  s.Suite + "/" + s.Arch,
	}
	if v.Breaks != "" {
		labels["io.hil.breaks"] = v.Breaks
	}
	p := parsePlatform(plat)
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture, OS: p.OS, Variant: p.Variant,
		Created: v1.Time{Time: epoch},
		Config: v1.Config{
			Entrypoint: []string{rustEntrypoint},
			Cmd:        []string{"--iface", "eth0"},
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Labels:     labels,
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	hist := func(by string) v1.History { return v1.History{Created: v1.Time{Time: epoch}, CreatedBy: by} }
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: hist(fmt.Sprintf("COPY debian %s/%s %s (%d packages from images/debs.lock) /", s.Suite, s.Arch, strings.Join(s.Roots, " "), len(sets[t.Base].pkgs)))},
		mutate.Addendum{Layer: libLayer, MediaType: types.OCILayer, History: hist("COPY " + strings.Join(copied, " ") + " /" + libDir + "/")},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: hist("COPY " + filepath.Base(bin) + " " + rustEntrypoint)},
	)
	return img, names, err
}

// layerFile is one regular file of a hand-made layer.
type layerFile struct {
	Path string // relative to /
	Mode int64
	Data []byte
}

// filesLayer tars files (and their parent directories, 0755) in sorted
// order with the fixed timestamp.
func filesLayer(files []layerFile) (v1.Layer, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		var parents []string
		for d := path.Dir(f.Path); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
			dirs[d] = true
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if err := tw.WriteHeader(&tar.Header{Name: parents[i] + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.Path, Typeflag: tar.TypeReg, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, bytes.NewReader(f.Data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return layerFromTar(buf.Bytes())
}
