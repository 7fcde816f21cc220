// Package kernel provisions the guest kernels of hil's system target:
// Debian's own kernels (armmp for qemu-system-arm's `virt` board, arm64 for
// qemu-system-aarch64's), fetched
// through apt with their sha256 checked, unpacked once into the cache, with
// just the modules hil's guest needs kept beside the kernel image. A user can
// bring their own kernel and modules instead (Local).
package kernel

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/hilproject/hil/harness/activity"

	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/debian"
)

// GuestModules are the modules hil's guest init loads: the virtio MMIO
// transport, the virtio console (the harness's report port) and the virtio
// NIC with its failover dependencies. Everything else it needs is built into
// Debian's armmp kernel.
var GuestModules = []string{"virtio_mmio", "virtio_console", "virtio_net"}

// Module is one kernel module file.
type Module struct {
	Name string `json:"name"`
	Path string `json:"path"` // absolute path of the uncompressed .ko
}

// Kernel is a bootable kernel with the modules the guest loads, in load
// order (dependencies first).
type Kernel struct {
	Arch    string   `json:"arch"`    // Debian architecture: armhf, arm64
	Release string   `json:"release"` // uname -r, e.g. 6.1.0-50-armmp
	Package string   `json:"package"` // the Debian package it came from, e.g. linux-image-6.1.0-50-armmp_6.1.176-1_armhf; empty for Local
	SHA256  string   `json:"sha256"`  // of that package, as the archive lists it
	Image   string   `json:"image"`   // the kernel image (vmlinuz) to pass to -kernel
	Modules []Module `json:"modules"`
	Dir     string   `json:"-"`
}

// ID names the kernel for cache keys: package and release, or the image
// path and size for a local kernel.
func (k *Kernel) ID() string {
	if k.Package != "" {
		return k.Package
	}
	st, err := os.Stat(k.Image)
	if err != nil {
		return k.Image
	}
	return fmt.Sprintf("%s:%d:%d", k.Image, st.Size(), st.ModTime().UnixNano())
}

type options struct {
	suite   string
	arch    string
	modules []string
	update  bool
}

// Option configures Fetch.
type Option func(*options)

// WithSuite picks the Debian release (bookworm by default).
func WithSuite(s string) Option { return func(o *options) { o.suite = s } }

// WithArch picks the Debian architecture: armhf (default, armmp flavour) or
// arm64.
func WithArch(a string) Option { return func(o *options) { o.arch = a } }

// WithModules replaces the modules to extract (GuestModules by default);
// their dependencies are added.
func WithModules(names ...string) Option { return func(o *options) { o.modules = names } }

// WithUpdate makes Fetch resolve the newest kernel through apt even when
// one is cached (Default never asks apt when a kernel is cached).
func WithUpdate() Option { return func(o *options) { o.update = true } }

func newOptions(opts []Option) options {
	o := options{suite: "bookworm", arch: "armhf", modules: GuestModules}
	for _, f := range opts {
		f(&o)
	}
	return o
}

func flavour(arch string) (string, error) {
	switch arch {
	case "armhf":
		return "armmp", nil
	case "arm64":
		return "arm64", nil
	}
	return "", fmt.Errorf("no Debian kernel flavour for architecture %q (want armhf or arm64)", arch)
}

// Default returns the newest cached kernel of the architecture, fetching
// one when none is cached.
func Default(ctx context.Context, opts ...Option) (*Kernel, error) {
	o := newOptions(opts)
	if !o.update {
		ks, err := List()
		if err == nil {
			for i := len(ks) - 1; i >= 0; i-- {
				if ks[i].Arch == o.arch && hasModules(ks[i], o.modules) {
					return ks[i], nil
				}
			}
		}
	}
	return Fetch(ctx, opts...)
}

func hasModules(k *Kernel, names []string) bool {
	have := map[string]bool{}
	for _, m := range k.Modules {
		have[m.Name] = true
	}
	for _, n := range names {
		if !have[n] {
			return false
		}
	}
	return true
}

// Fetch resolves the current Debian kernel of the architecture through apt
// (linux-image-<flavour> → linux-image-<abi>-<flavour>), downloads it with
// its sha256 checked, and extracts the image and modules into the cache.
func Fetch(ctx context.Context, opts ...Option) (*Kernel, error) {
	o := newOptions(opts)
	fl, err := flavour(o.arch)
	if err != nil {
		return nil, err
	}
	src := debian.Source{Suite: o.suite, Arch: o.arch}
	meta := "linux-image-" + fl
	activity.Report(ctx, "resolving Debian %s's %s kernel through apt", o.suite, o.arch)
	pkgs, err := src.Closure(ctx, meta)
	if err != nil {
		return nil, fmt.Errorf("resolving Debian %s %s kernel (%s): %w", o.suite, o.arch, meta, err)
	}
	re := regexp.MustCompile(`^linux-image-[0-9][0-9.]*-[0-9]+-` + regexp.QuoteMeta(fl) + `$`)
	var pkg *debian.Package
	for i := range pkgs {
		if re.MatchString(pkgs[i].Name) {
			pkg = &pkgs[i]
		}
	}
	if pkg == nil {
		return nil, fmt.Errorf("%s in Debian %s/%s depends on no linux-image-<abi>-%s package", meta, o.suite, o.arch, fl)
	}
	release := strings.TrimPrefix(pkg.Name, "linux-image-")
	dir, err := cache.Dir("kernels", o.arch, release)
	if err != nil {
		return nil, err
	}
	if k, err := load(dir); err == nil && k.Package == pkg.String() && hasModules(k, o.modules) {
		return k, nil
	}
	activity.Report(ctx, "fetching Debian's kernel %s (%s) through apt (once; cached after)", pkg.Name, o.arch)
	deb, err := src.Fetch(ctx, *pkg)
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", pkg, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unpack-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := debian.Extract(ctx, deb, tmp); err != nil {
		return nil, fmt.Errorf("unpacking %s: %w", deb, err)
	}
	k, err := install(tmp, dir, release, o)
	if err != nil {
		return nil, fmt.Errorf("installing %s: %w", pkg, err)
	}
	k.Package, k.SHA256 = pkg.String(), pkg.SHA256
	if err := save(dir, k); err != nil {
		return nil, err
	}
	return k, nil
}

// install copies vmlinuz and the wanted modules (with their dependencies)
// from an unpacked kernel package into dir.
func install(unpacked, dir, release string, o options) (*Kernel, error) {
	img := filepath.Join(unpacked, "boot", "vmlinuz-"+release)
	if _, err := os.Stat(img); err != nil {
		return nil, fmt.Errorf("the package has no boot/vmlinuz-%s: %w", release, err)
	}
	if err := copyFile(img, filepath.Join(dir, "vmlinuz")); err != nil {
		return nil, err
	}
	mods, err := resolveModules(filepath.Join(unpacked, "lib", "modules", release), o.modules)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Arch: o.arch, Release: release, Image: filepath.Join(dir, "vmlinuz"), Dir: dir}
	mdir := filepath.Join(dir, "modules")
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		return nil, err
	}
	for _, m := range mods {
		dst := filepath.Join(mdir, m.Name+".ko")
		if err := copyFile(m.Path, dst); err != nil {
			return nil, err
		}
		k.Modules = append(k.Modules, Module{Name: m.Name, Path: dst})
	}
	return k, nil
}

// Local describes a kernel the user brings: image is the kernel image
// (zImage/vmlinuz) and moduleDir a directory searched recursively for the
// guest modules as uncompressed .ko files. Modules that the kernel has built
// in may be missing; pass moduleDir "" when all are built in.
func Local(image, moduleDir, arch string, modules ...string) (*Kernel, error) {
	if _, err := os.Stat(image); err != nil {
		return nil, fmt.Errorf("kernel image: %w", err)
	}
	if len(modules) == 0 {
		modules = GuestModules
	}
	k := &Kernel{Arch: arch, Release: "local", Image: image}
	if moduleDir == "" {
		return k, nil
	}
	mods, err := resolveModules(moduleDir, modules)
	if err != nil {
		return nil, err
	}
	k.Modules = mods
	return k, nil
}

// resolveModules finds the named modules under root and returns them with
// their dependencies (read from each .ko's .modinfo "depends="), in load
// order. Debian's package ships no modules.dep (depmod makes it at install
// time), so the .ko files are the source of truth.
func resolveModules(root string, names []string) ([]Module, error) {
	index := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			index[strings.ReplaceAll(strings.TrimSuffix(d.Name(), ".ko"), "-", "_")] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing modules under %s: %w", root, err)
	}
	var out []Module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		case 2:
			return nil
		}
		p, ok := index[name]
		if !ok {
			if from != "" {
				return fmt.Errorf("module %s (needed by %s) not found under %s", name, from, root)
			}
			return fmt.Errorf("module %s not found under %s (is it compressed, or built in?)", name, root)
		}
		state[name] = 1
		deps, err := moduleDepends(p)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		out = append(out, Module{Name: name, Path: p})
		return nil
	}
	for _, n := range names {
		if err := visit(strings.ReplaceAll(n, "-", "_"), ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading module %s (want an uncompressed ELF .ko): %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s has no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo of %s: %w", path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

func save(dir string, k *Kernel) error {
	b, _ := json.MarshalIndent(k, "", "  ")
	tmp := filepath.Join(dir, "kernel.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "kernel.json"))
}

func load(dir string) (*Kernel, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kernel.json"))
	if err != nil {
		return nil, err
	}
	var k Kernel
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, err
	}
	k.Dir = dir
	if _, err := os.Stat(k.Image); err != nil {
		return nil, err
	}
	return &k, nil
}

// List returns the cached kernels, oldest release first.
func List() ([]*Kernel, error) {
	root, err := cache.Dir("kernels")
	if err != nil {
		return nil, err
	}
	dirs, _ := filepath.Glob(filepath.Join(root, "*", "*", "kernel.json"))
	var ks []*Kernel
	for _, d := range dirs {
		if k, err := load(filepath.Dir(d)); err == nil {
			ks = append(ks, k)
		}
	}
	sort.Slice(ks, func(i, j int) bool { return releaseLess(ks[i].Release, ks[j].Release) })
	return ks, nil
}

// releaseLess orders 6.1.0-9-armmp before 6.1.0-50-armmp.
func releaseLess(a, b string) bool {
	na, nb := abi(a), abi(b)
	if na != nb {
		return na < nb
	}
	return a < b
}

func abi(r string) int {
	parts := strings.Split(r, "-")
	if len(parts) < 2 {
		return 0
	}
	n := 0
	fmt.Sscanf(parts[1], "%d", &n)
	return n
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return errors.Join(err, os.Remove(tmp))
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
