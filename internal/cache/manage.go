package cache

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Kind is one kind of cache content: a top-level directory of the cache
// whose entries (at Depth below it) are removed as a whole.
type Kind struct {
	Name  string
	Desc  string
	Depth int // 1: the dir's children are entries; 2: its grandchildren
}

// Kinds are the cache's known contents, in the order hil cache lists them.
// A top-level directory not listed here shows as a kind of its own name.
var Kinds = []Kind{
	{"kernels", "Debian ARM kernels and modules (hil kernel fetch)", 2},
	{"rootfs", "flattened image root filesystems, by manifest digest", 1},
	{"snapshots", "system target VM snapshots (warm boots)", 2},
	{"initramfs", "system target boot images (rootfs + hil's init)", 1},
	{"logs", "console logs of boots", 2},
	{"debian", "private apt trees and Debian packages", 1},
	{"images", "sample image build cache (sysroots, builds)", 2},
	{"init", "hil's guest init binaries", 1},
	{"agent", "device agent images", 1},
	{"emuprobe", "emulator capability probes", 1},
	{"fixtures", "extracted pcap fixtures", 1},
}

// Root is the cache directory (HIL_CACHE, else the user cache dir's hil),
// not created. It is absolute: paths under it are handed to tools that run
// in other directories (the guest init's go build, QEMU), so a relative
// HIL_CACHE=.cache is taken from the working directory, here.
func Root() (string, error) {
	if root := os.Getenv("HIL_CACHE"); root != "" {
		abs, err := filepath.Abs(root)
		if err != nil {
			return "", fmt.Errorf("locating the cache dir HIL_CACHE=%s: %w", root, err)
		}
		return abs, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locating the cache dir (set HIL_CACHE): %w", err)
	}
	return filepath.Join(base, "hil"), nil
}

// Entry is one removable piece of the cache: a file or a directory, with
// its sidecar files (a snapshot's .json).
type Entry struct {
	Kind     string
	Path     string
	Sidecars []string
	Size     int64     // bytes on disk, sidecars included
	LastUse  time.Time // newest modification or access time
	dir      bool
}

// KindOf finds a kind by name among Kinds and the directories present.
func KindOf(root, name string) (Kind, error) {
	for _, k := range Kinds {
		if k.Name == name {
			return k, nil
		}
	}
	if st, err := os.Stat(filepath.Join(root, name)); err == nil && st.IsDir() && !strings.HasPrefix(name, ".") && !strings.Contains(name, "/") {
		return Kind{Name: name, Desc: "(not a kind hil knows)", Depth: 1}, nil
	}
	var names []string
	for _, k := range Kinds {
		names = append(names, k.Name)
	}
	return Kind{}, fmt.Errorf("unknown cache kind %q: expected one of %s", name, strings.Join(names, ", "))
}

// PresentKinds lists Kinds plus the unknown top-level directories of root.
func PresentKinds(root string) []Kind {
	ks := slices.Clone(Kinds)
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if !slices.ContainsFunc(Kinds, func(k Kind) bool { return k.Name == e.Name() }) {
			ks = append(ks, Kind{Name: e.Name(), Desc: "(not a kind hil knows)", Depth: 1})
		}
	}
	return ks
}

// List returns the entries of kind k under root, oldest use first.
// Temporary files of work in progress (names starting with a dot), lock
// files and sidecars are not entries of their own.
func List(root string, k Kind) ([]Entry, error) {
	dirs := []string{filepath.Join(root, k.Name)}
	for d := 1; d < k.Depth; d++ {
		var next []string
		for _, dir := range dirs {
			ents, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, e := range ents {
				if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
					next = append(next, filepath.Join(dir, e.Name()))
				}
			}
		}
		dirs = next
	}
	var out []Entry
	for _, dir := range dirs {
		ents, err := listDir(k.Name, dir)
		if err != nil {
			return nil, err
		}
		out = append(out, ents...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastUse.Before(out[j].LastUse) })
	return out, nil
}

// listDir lists the entries directly in dir.
func listDir(kind, dir string) ([]Entry, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the %s cache: %w", kind, err)
	}
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	var out []Entry
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".lock") || strings.HasSuffix(n, ".tmp") {
			continue
		}
		// FILE.json beside FILE is FILE's sidecar (snapshot metadata).
		if base, ok := strings.CutSuffix(n, ".json"); ok && names[base] {
			continue
		}
		en := Entry{Kind: kind, Path: filepath.Join(dir, n), dir: e.IsDir()}
		if names[n+".json"] {
			en.Sidecars = append(en.Sidecars, en.Path+".json")
		}
		en.Size, en.LastUse = usage(en.Path)
		for _, s := range en.Sidecars {
			sz, lu := usage(s)
			en.Size += sz
			if lu.After(en.LastUse) {
				en.LastUse = lu
			}
		}
		out = append(out, en)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastUse.Before(out[j].LastUse) })
	return out, nil
}

// Usage is the bytes on disk under root's kind dir, entries or not (lock
// files and temporaries count).
func Usage(root string, k Kind) int64 {
	n, _ := usage(filepath.Join(root, k.Name))
	return n
}

// usage walks path: bytes on disk (hard links once) and the newest
// modification time, or access time of a file. Access times matter: the
// kernel and rootfs caches are read, not written, when used (Linux's
// relatime updates them about once a day).
func usage(path string) (int64, time.Time) {
	var size int64
	var last time.Time
	seen := map[[2]uint64]bool{}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			size += info.Size()
			return nil
		}
		id := [2]uint64{uint64(st.Dev), st.Ino}
		if !seen[id] {
			seen[id] = true
			size += st.Blocks * 512
		}
		if info.ModTime().After(last) {
			last = info.ModTime()
		}
		// A directory's access time changes when anything lists it (this
		// walk too): only a file's says it was used.
		if at := accessTime(st); !d.IsDir() && at.After(last) {
			last = at
		}
		return nil
	})
	return size, last
}

// ErrInUse is returned by Remove for an entry another process holds.
var ErrInUse = errors.New("in use by another process")

// Remove deletes an entry unless another process uses it. The protocol,
// shared with the code that fills each cache:
//   - a file entry (a snapshot) is held by its readers with a shared
//     flock (Hold); Remove takes an exclusive one without waiting, and
//     fails with ErrInUse when it cannot;
//   - a directory entry is being made or changed while its lock file
//     (PATH.lock, as the rootfs cache uses, or PATH/.hil-lock, as the apt
//     trees do) is locked; Remove takes those locks the same way.
//
// A directory is first renamed to a hidden name beside it, so that a
// reader sees it whole or not at all, never half deleted. Lock files stay:
// removing one that another process is about to lock would give two
// holders.
func Remove(e Entry) error {
	locks := []string{e.Path + ".lock"}
	if e.dir {
		locks = append(locks, filepath.Join(e.Path, ".hil-lock"))
	}
	for _, lock := range locks {
		release, err := tryLock(lock)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("removing %s: %w", e.Path, err)
		}
		defer release()
	}
	if e.dir {
		tmp := filepath.Join(filepath.Dir(e.Path), ".rm-"+filepath.Base(e.Path)+"-"+randomSuffix())
		if err := os.Rename(e.Path, tmp); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("removing %s: %w", e.Path, err)
		}
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("removing %s (moved to %s): %w", e.Path, tmp, err)
		}
		return nil
	}
	release, err := tryLock(e.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing %s: %w", e.Path, err)
	}
	defer release()
	for _, p := range append([]string{e.Path}, e.Sidecars...) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", p, err)
		}
	}
	return nil
}

// tryLock takes an exclusive flock on path without waiting, and checks
// that path still names the file locked (not one replaced meanwhile).
func tryLock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrInUse
		}
		return nil, err
	}
	if !samePath(f, path) {
		f.Close()
		return nil, fs.ErrNotExist
	}
	return func() { f.Close() }, nil
}

// Hold takes a shared flock on a cache file that the caller is about to
// use (a snapshot QEMU restores from), so that no Remove deletes it
// meanwhile. It fails with fs.ErrNotExist when the file is gone, and with
// ErrInUse only while a Remove of it is under way.
func Hold(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrInUse
		}
		return nil, err
	}
	if !samePath(f, path) {
		// Removed (or replaced) between the open and the lock.
		f.Close()
		return nil, fs.ErrNotExist
	}
	return func() { f.Close() }, nil
}

func samePath(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Lstat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Prune removes the entries of kind k last used before cutoff, oldest
// first, skipping those in use; it returns what it removed and what it
// skipped.
func Prune(root string, k Kind, cutoff time.Time) (removed, inUse []Entry, err error) {
	ents, err := List(root, k)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if !e.LastUse.Before(cutoff) {
			continue
		}
		switch err := Remove(e); {
		case errors.Is(err, ErrInUse):
			inUse = append(inUse, e)
		case err != nil:
			return removed, inUse, err
		default:
			removed = append(removed, e)
		}
	}
	return removed, inUse, nil
}

// CapDir removes the least recently used entries directly in dir (a
// snapshot directory) until they take at most maxBytes and number at most
// maxCount (0: no count limit), skipping those in use and always keeping
// the newest (the one just made). It returns what it removed.
func CapDir(dir string, maxBytes int64, maxCount int) (removed []Entry, err error) {
	ents, err := listDir(filepath.Base(dir), dir)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, e := range ents {
		total += e.Size
	}
	count := len(ents)
	for _, e := range ents[:max(0, len(ents)-1)] {
		if total <= maxBytes && (maxCount == 0 || count <= maxCount) {
			break
		}
		switch err := Remove(e); {
		case errors.Is(err, ErrInUse):
			continue
		case err != nil:
			return removed, err
		}
		removed = append(removed, e)
		total -= e.Size
		count--
	}
	return removed, nil
}
