package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/hilproject/hil/internal/debian"
)

// A debSet is one group of Debian packages the images need: the roots and
// their Depends closure, from one release and architecture.
type debSet struct {
	Name  string
	Suite string
	Arch  string
	Roots []string
	// Closure false takes the roots alone (e.g. a -dev package whose
	// runtime half is in another set).
	Closure bool
}

var debSets = []debSet{
	{Name: "runtime-armhf", Suite: "bookworm", Arch: "armhf", Roots: []string{"libc6", "libpcap0.8"}, Closure: true},
	{Name: "runtime-amd64", Suite: "bookworm", Arch: "amd64", Roots: []string{"libc6", "libpcap0.8"}, Closure: true},
	{Name: "runtime-armhf-bullseye", Suite: "bullseye", Arch: "armhf", Roots: []string{"libc6", "libpcap0.8"}, Closure: true},
	{Name: "sysroot-armhf", Suite: "bookworm", Arch: "armhf", Roots: []string{"libpcap0.8-dev"}},
	{Name: "runtime-arm64", Suite: "bookworm", Arch: "arm64", Roots: []string{"libc6", "libpcap0.8"}, Closure: true},
	{Name: "sysroot-arm64", Suite: "bookworm", Arch: "arm64", Roots: []string{"libpcap0.8-dev"}},
	// armel (soft-float EABI5, built for ARMv5TE): the runtime a Pi Zero
	// or Pi 1 (ARMv6) can run, behind the index's linux/arm/v5 entry.
	{Name: "runtime-armel", Suite: "bookworm", Arch: "armel", Roots: []string{"libc6", "libpcap0.8"}, Closure: true},
	{Name: "sysroot-armel", Suite: "bookworm", Arch: "armel", Roots: []string{"libpcap0.8-dev"}},
	// pcapwatch-rs: a distroless/cc-style runtime base, and the armhf
	// standard library for Debian's rustc (see rust.go).
	{Name: "runtime-armhf-cc", Suite: "bookworm", Arch: "armhf", Roots: []string{"libc6"}, Closure: true},
	{Name: "runtime-amd64-cc", Suite: "bookworm", Arch: "amd64", Roots: []string{"libc6"}, Closure: true},
	{Name: "rust-std-armhf", Suite: "bookworm", Arch: "armhf", Roots: []string{"libstd-rust-dev"}},
	// tcpdump's own packages; glibc and libpcap come from the runtime set,
	// and adduser (a Depends only its postinst uses) is left out.
	{Name: "tcpdump-armhf", Suite: "bookworm", Arch: "armhf", Roots: []string{"tcpdump", "libssl3"}},
	{Name: "tcpdump-amd64", Suite: "bookworm", Arch: "amd64", Roots: []string{"tcpdump", "libssl3"}},
}

func setByName(n string) debSet {
	for _, s := range debSets {
		if s.Name == n {
			return s
		}
	}
	panic("unknown deb set " + n)
}

// lockEntry is one line of images/debs.lock.
type lockEntry struct {
	Set     string
	Package debian.Package
	Suite   string
}

type lockFile struct {
	entries map[string][]lockEntry // by set
}

const lockHeader = `# images/debs.lock: the Debian packages baked into the sample images and
# the cross-compile sysroots, pinned by version and sha256. Written by
#   go run ./images/build --relock
# A pinned version the mirror no longer carries is replaced by the current
# candidate with a warning, or is an error with HIL_STRICT_LOCK=1.
#
# set                      package                  version                        arch   suite     sha256
`

func readLock(path string) (*lockFile, error) {
	lf := &lockFile{entries: map[string][]lockEntry{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return lf, nil
	}
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 6 {
			return nil, fmt.Errorf("%s:%d: expected 6 columns (set package version arch suite sha256), found %d", path, n, len(f))
		}
		if len(f[5]) != 64 {
			return nil, fmt.Errorf("%s:%d: sha256 of %s should be 64 hex digits, found %q", path, n, f[1], f[5])
		}
		lf.entries[f[0]] = append(lf.entries[f[0]], lockEntry{Set: f[0], Suite: f[4],
			Package: debian.Package{Name: f[1], Version: f[2], Arch: f[3], SHA256: f[5]}})
	}
	return lf, sc.Err()
}

func (lf *lockFile) write(path string) error {
	var b bytes.Buffer
	b.WriteString(lockHeader)
	for _, s := range debSets {
		es := lf.entries[s.Name]
		sort.Slice(es, func(i, j int) bool { return es[i].Package.Name < es[j].Package.Name })
		for _, e := range es {
			fmt.Fprintf(&b, "%-24s %-24s %-30s %-6s %-9s %s\n", s.Name, e.Package.Name, e.Package.Version, e.Package.Arch, e.Suite, e.Package.SHA256)
		}
	}
	old, _ := os.ReadFile(path)
	if bytes.Equal(old, b.Bytes()) {
		return nil
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// covers reports whether the locked entries of a set still name all its
// roots (the recipe may have gained one since the lock was written).
func (lf *lockFile) covers(s debSet) bool {
	have := map[string]bool{}
	for _, e := range lf.entries[s.Name] {
		have[e.Package.Name] = true
	}
	for _, r := range s.Roots {
		if !have[r] {
			return false
		}
	}
	return len(lf.entries[s.Name]) > 0
}

// debResolver turns sets into fetched .deb files, honouring the lock.
type debResolver struct {
	lock    *lockFile
	relock  bool
	strict  bool
	log     io.Writer
	changed bool // the lock needs writing
}

func source(s debSet, log io.Writer) debian.Source {
	return debian.Source{Suite: s.Suite, Arch: s.Arch, Log: log}
}

// fetch returns the locked packages of set s and their .deb paths.
func (r *debResolver) fetch(ctx context.Context, s debSet) ([]debian.Package, []string, error) {
	src := source(s, r.log)
	if r.relock || !r.lock.covers(s) {
		var pkgs []debian.Package
		var err error
		if s.Closure {
			pkgs, err = src.Closure(ctx, s.Roots...)
		} else {
			pkgs, err = src.Resolve(ctx, s.Roots...)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("resolving %s (%s from Debian %s/%s): %w", s.Name, strings.Join(s.Roots, ", "), s.Suite, s.Arch, err)
		}
		var es []lockEntry
		for _, p := range pkgs {
			es = append(es, lockEntry{Set: s.Name, Package: p, Suite: s.Suite})
		}
		r.lock.entries[s.Name] = es
		r.changed = true
	}
	var pkgs []debian.Package
	var paths []string
	for _, e := range r.lock.entries[s.Name] {
		p := e.Package
		path, err := src.Fetch(ctx, p)
		if errors.Is(err, debian.ErrNotFound) {
			if r.strict {
				return nil, nil, fmt.Errorf("images/debs.lock pins %s %s (%s, Debian %s) but the mirror no longer has that version; HIL_STRICT_LOCK=1 forbids substituting it: run `go run ./images/build --relock`", p.Name, p.Version, p.Arch, s.Suite)
			}
			cur, rerr := src.Resolve(ctx, p.Name)
			if rerr != nil {
				return nil, nil, fmt.Errorf("pinned %s %s vanished from the mirror and no current candidate: %w", p.Name, p.Version, rerr)
			}
			fmt.Fprintf(r.log, "warning: images/debs.lock pins %s %s (Debian %s/%s) but the mirror no longer has it; using the current %s (run --relock to record it)\n", p.Name, p.Version, s.Suite, s.Arch, cur[0].Version)
			p = cur[0]
			path, err = src.Fetch(ctx, p)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("fetching %s for %s: %w", p, s.Name, err)
		}
		pkgs = append(pkgs, p)
		paths = append(paths, path)
	}
	return pkgs, paths, nil
}
