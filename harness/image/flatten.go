package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Report tells the caller what Flatten left out or changed, so it can be
// printed: nothing in it is an error, but a user debugging "file not found"
// on the board wants to know that a device node or a setuid bit was dropped.
type Report struct {
	Skipped   []Skipped `json:"skipped,omitempty"`
	Files     int       `json:"files"`
	Dirs      int       `json:"dirs"`
	Symlinks  int       `json:"symlinks"`
	HardLinks int       `json:"hard_links"`
	Whiteouts int       `json:"whiteouts"`
	// Bytes is the file content written; Read is the uncompressed layer
	// bytes read (what the size cap limits).
	Bytes int64 `json:"bytes"`
	Read  int64 `json:"read"`
}

// Skipped is one entry Flatten did not reproduce as it was in the layer.
type Skipped struct {
	Layer  string `json:"layer"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

func (s Skipped) String() string {
	return fmt.Sprintf("%s (%s, layer %s)", s.Path, s.Reason, shortDigest(s.Layer))
}

// EscapeError is returned when a layer entry would put or change something
// outside the root dir. Nothing of that entry was written.
type EscapeError struct {
	Layer  v1.Hash
	Path   string
	Reason string
}

func (e *EscapeError) Error() string {
	return fmt.Sprintf("layer %s: refusing entry %q: %s", e.Layer, e.Path, e.Reason)
}

// SizeLimitError is returned when a layer holds more than the size caps
// allow (a decompression bomb, or just an image bigger than expected).
type SizeLimitError struct {
	Layer v1.Hash
	Path  string // the entry being read when the cap was hit ("" between entries)
	What  string // "rootfs" or "file"
	Limit int64
	Found int64 // bytes seen so far (at least Limit+1)
}

func (e *SizeLimitError) Error() string {
	opt := "image.WithMaxRootFSBytes / --max-rootfs-bytes"
	if e.What == "file" {
		opt = "image.WithMaxFileBytes"
	}
	at := ""
	if e.Path != "" {
		at = fmt.Sprintf(" at entry %q", e.Path)
	}
	return fmt.Sprintf("layer %s%s: %s size cap exceeded: expected at most %d bytes, found %d or more (a decompression bomb, or raise the cap with %s)",
		e.Layer, at, e.What, e.Limit, e.Found, opt)
}

// Default caps. The sample images are ~30 MB; a few GiB leaves room for
// real apps while stopping a bomb long before the disk fills.
const (
	DefaultMaxRootFSBytes = 4 << 30
	DefaultMaxFileBytes   = 1 << 30
)

// maxSymlinks bounds symlink expansion while resolving a parent dir, like
// the kernel's MAXSYMLINKS.
const maxSymlinks = 40

// Flatten applies img's layers in order into dir, which must be empty or
// not exist yet. It follows OCI layer semantics (whiteouts, opaque dirs,
// later entries replace earlier ones) and keeps everything inside dir:
//
//   - Names are relative to the root; a ".." component is refused.
//   - Symlinks are written as they are, absolute ones included: they mean
//     something relative to the image root at run time. They are never
//     followed on the host. When a later entry's parent dir is a symlink,
//     it is resolved inside the root the way the image's runtime would see
//     it (absolute targets from the root); a target that climbs above the
//     root is refused.
//   - Hard links must name an earlier, non-directory entry of the root.
//   - Device nodes and fifos are skipped and listed in the Report; so are
//     setuid/setgid bits (dropped: the rootfs is owned by whoever flattened
//     it, and a setuid-root file in a cache dir is a host risk).
//   - Ownership is not kept; modes are (directories get u+rwx on top so
//     the cache stays readable and removable).
//   - The uncompressed layer bytes read in total are capped (decompression
//     bombs), and so is every single file.
//   - Nothing is taken on trust: the manifest and config are checked
//     against their digests, each layer blob against its descriptor's
//     digest and size as it is read, and its uncompressed stream against
//     the config's diff_id (an *IntegrityError names the blob otherwise).
//     Images from Open come checked this way; any other v1.Image is held
//     to its own manifest's digest.
//
// Every file is created with O_NOFOLLOW|O_EXCL relative to a directory fd
// that was itself opened component by component with O_NOFOLLOW, so no
// host symlink is ever followed while writing. On error dir holds a partial
// tree: the caller removes it (RootFS does).
func Flatten(ctx context.Context, img v1.Image, dir string, opts ...Option) (*Report, error) {
	o := makeOptions(opts)
	vi, err := verifiedOf(img)
	if err != nil {
		return nil, err
	}
	f, err := newFlattener(dir, o)
	if err != nil {
		return nil, err
	}
	defer f.close()
	for _, l := range vi.layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		err = f.applyLayer(ctx, l.desc.Digest, rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := f.finish(); err != nil {
		return nil, err
	}
	return &f.report, nil
}

// verifiedOf returns img checked as Flatten needs it: as Open made it, or
// held to its own manifest's digest.
func verifiedOf(img v1.Image) (*verifiedImage, error) {
	if vi, ok := img.(*verifiedImage); ok {
		return vi, nil
	}
	pin, err := selfPin(img)
	if err != nil {
		return nil, err
	}
	return verify(img, pin, origin{kind: "image", where: pin.Digest.String()})
}

type dirMeta struct {
	mode  uint32
	mtime time.Time
}

type flattener struct {
	root   int // O_PATH fd of the root dir
	o      options
	report Report
	dirs   map[string]dirMeta // modes applied at the end, so a 0555 dir can still be filled
	capErr error
}

func newFlattener(dir string, o options) (*flattener, error) {
	if o.maxRootFS <= 0 {
		o.maxRootFS = DefaultMaxRootFSBytes
	}
	if o.maxFile <= 0 {
		o.maxFile = DefaultMaxFileBytes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating rootfs dir: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading rootfs dir: %w", err)
	}
	if len(ents) > 0 {
		return nil, fmt.Errorf("flattening into %s: expected an empty dir, found %d entries (%s, ...)", dir, len(ents), ents[0].Name())
	}
	fd, err := unix.Open(dir, oPath|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening rootfs dir %s: %w", dir, err)
	}
	return &flattener{root: fd, o: o, dirs: map[string]dirMeta{}}, nil
}

func (f *flattener) close() { unix.Close(f.root) }

// layerState tracks what the current layer created: whiteouts and opaque
// markers only hide what lower layers put there.
type layerState struct {
	digest  v1.Hash
	created map[string]bool
}

// capReader counts the uncompressed bytes of all layers against the rootfs
// cap. It is below archive/tar, so headers, padding and trailing garbage
// all count: a bomb cannot hide in any of them.
type capReader struct {
	r     io.Reader
	f     *flattener
	layer v1.Hash
	entry *string
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.f.capErr != nil {
		return 0, c.f.capErr
	}
	max := c.f.o.maxRootFS
	if room := max - c.f.report.Read + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.f.report.Read += int64(n)
	if c.f.report.Read > max {
		c.f.capErr = &SizeLimitError{Layer: c.layer, Path: *c.entry, What: "rootfs", Limit: max, Found: c.f.report.Read}
		return n, c.f.capErr
	}
	return n, err
}

// applyLayer writes one layer's tar stream into the root. r checks itself
// (against the config's diff_id) when it is read to its end, which
// applyLayer always does, past the tar's end-of-archive marker: the
// diff_id covers the whole stream.
func (f *flattener) applyLayer(ctx context.Context, digest v1.Hash, r io.Reader) error {
	var entry string
	src := &capReader{r: r, f: f, layer: digest, entry: &entry}
	tr := tar.NewReader(src)
	ls := &layerState{digest: digest, created: map[string]bool{}}
	// streamErr prefers the errors that say why the stream is bad: a
	// blob that is not what pins it (read to its end to know: a tar that
	// does not parse, or an entry refused, may be the tampering's), a size
	// cap.
	streamErr := func(err error, what string) error {
		var ie *IntegrityError
		if !errors.As(err, &ie) && f.capErr == nil {
			if _, derr := io.Copy(io.Discard, src); errors.As(derr, &ie) {
				return ie
			}
		}
		switch {
		case ie != nil:
			return ie
		case f.capErr != nil:
			return f.capErr
		case what == "":
			return err
		}
		return fmt.Errorf("layer %s: %s: %w", digest, what, err)
	}
	for n := 0; ; n++ {
		if n%64 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("flattening layer %s: %w", digest, err)
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return streamErr(err, fmt.Sprintf("reading the tar stream after %q", entry))
		}
		entry = hdr.Name
		if err := f.entry(ls, hdr, tr); err != nil {
			return streamErr(err, "")
		}
	}
	entry = ""
	if _, err := io.Copy(io.Discard, src); err != nil {
		return streamErr(err, "reading to the end of the stream")
	}
	return nil
}

// cleanName turns a tar entry name into root-relative components. Leading
// slashes are dropped (tar names are relative to the root anyway); ".."
// anywhere is refused rather than cleaned, because a tool that writes it
// into a layer is either broken or hostile.
func cleanName(raw string) ([]string, string, error) {
	if strings.ContainsRune(raw, 0) {
		return nil, "", errors.New("the name contains a NUL byte")
	}
	var out []string
	for _, p := range strings.Split(raw, "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			return nil, "", errors.New("expected a path inside the root, found a .. component")
		}
		out = append(out, p)
	}
	return out, strings.Join(out, "/"), nil
}

func (f *flattener) escape(ls *layerState, path, reason string) error {
	return &EscapeError{Layer: ls.digest, Path: path, Reason: reason}
}

func (f *flattener) skip(ls *layerState, path, reason string) {
	f.report.Skipped = append(f.report.Skipped, Skipped{Layer: ls.digest.String(), Path: path, Reason: reason})
}

func (f *flattener) entry(ls *layerState, hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil
	}
	parts, name, err := cleanName(hdr.Name)
	if err != nil {
		return f.escape(ls, hdr.Name, err.Error())
	}
	if len(parts) == 0 {
		return nil // the root itself: its mode is the cache's business
	}
	base := parts[len(parts)-1]
	if strings.HasPrefix(base, ".wh.") {
		return f.whiteout(ls, hdr.Name, parts)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
		// archive/tar expands sparse files (holes read as zeros).
	case tar.TypeChar, tar.TypeBlock:
		f.skip(ls, name, fmt.Sprintf("device node %d:%d not created", hdr.Devmajor, hdr.Devminor))
		return nil
	case tar.TypeFifo:
		f.skip(ls, name, "fifo not created")
		return nil
	default:
		f.skip(ls, name, fmt.Sprintf("unsupported tar entry type %q", hdr.Typeflag))
		return nil
	}

	dirfd, realDir, err := f.resolveDir(ls, hdr.Name, parts[:len(parts)-1], true)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	real := strings.Join(append(realDir, base), "/")

	var st unix.Stat_t
	exists := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
	isDir := exists && st.Mode&unix.S_IFMT == unix.S_IFDIR

	if hdr.Typeflag == tar.TypeDir {
		if exists && !isDir {
			if err := f.remove(dirfd, base, real); err != nil {
				return fmt.Errorf("layer %s: replacing %q by a directory: %w", ls.digest, name, err)
			}
		}
		if !isDir {
			if err := unix.Mkdirat(dirfd, base, 0o755); err != nil {
				return fmt.Errorf("layer %s: creating directory %q: %w", ls.digest, name, err)
			}
		}
		f.dirs[real] = dirMeta{mode: f.mode(ls, name, hdr) | 0o700, mtime: hdr.ModTime}
		ls.created[real] = true
		f.report.Dirs++
		return nil
	}

	// A hard link's target is checked before anything is removed, so a
	// refused entry changes nothing.
	var linkDirfd = -1
	var linkBase string
	if hdr.Typeflag == tar.TypeLink {
		lparts, lname, err := cleanName(hdr.Linkname)
		if err != nil {
			return f.escape(ls, hdr.Name, fmt.Sprintf("hard link target %q: %v", hdr.Linkname, err))
		}
		if len(lparts) == 0 {
			return f.escape(ls, hdr.Name, fmt.Sprintf("hard link target %q is the root itself", hdr.Linkname))
		}
		lfd, lreal, err := f.resolveDir(ls, hdr.Name, lparts[:len(lparts)-1], false)
		if err != nil {
			var esc *EscapeError
			if errors.As(err, &esc) {
				return err
			}
			return f.escape(ls, hdr.Name, fmt.Sprintf("hard link target %q is not an earlier entry of the image (%v)", hdr.Linkname, err))
		}
		defer unix.Close(lfd)
		linkBase = lparts[len(lparts)-1]
		var lst unix.Stat_t
		if err := unix.Fstatat(lfd, linkBase, &lst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return f.escape(ls, hdr.Name, fmt.Sprintf("hard link target %q is not an earlier entry of the image", lname))
		}
		if lst.Mode&unix.S_IFMT == unix.S_IFDIR {
			return f.escape(ls, hdr.Name, fmt.Sprintf("hard link target %q is a directory", lname))
		}
		if strings.Join(append(lreal, linkBase), "/") == real {
			return nil // a link to itself: already there
		}
		linkDirfd = lfd
	}

	if exists {
		if err := f.remove(dirfd, base, real); err != nil {
			return fmt.Errorf("layer %s: replacing %q: %w", ls.digest, name, err)
		}
	}
	ls.created[real] = true

	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
			return f.escape(ls, hdr.Name, fmt.Sprintf("symlink target %q is not a valid path", hdr.Linkname))
		}
		if err := unix.Symlinkat(hdr.Linkname, dirfd, base); err != nil {
			return fmt.Errorf("layer %s: creating symlink %q -> %q: %w", ls.digest, name, hdr.Linkname, err)
		}
		f.setTimes(dirfd, base, hdr.ModTime)
		f.report.Symlinks++
	case tar.TypeLink:
		if err := unix.Linkat(linkDirfd, linkBase, dirfd, base, 0); err != nil {
			return fmt.Errorf("layer %s: creating hard link %q -> %q: %w", ls.digest, name, hdr.Linkname, err)
		}
		f.report.HardLinks++
	default:
		return f.writeFile(ls, dirfd, base, name, hdr, r)
	}
	return nil
}

func (f *flattener) mode(ls *layerState, name string, hdr *tar.Header) uint32 {
	m := uint32(hdr.Mode) & 0o7777
	if m&(unix.S_ISUID|unix.S_ISGID) != 0 && hdr.Typeflag != tar.TypeDir {
		f.skip(ls, name, fmt.Sprintf("setuid/setgid bits dropped (mode %04o kept as %04o)", m, m&0o1777))
	}
	if hdr.Typeflag == tar.TypeDir {
		return m & 0o3777 // setgid on a dir only steers group inheritance: harmless
	}
	return m & 0o1777
}

func (f *flattener) writeFile(ls *layerState, dirfd int, base, name string, hdr *tar.Header, r io.Reader) error {
	if hdr.Size > f.o.maxFile {
		return &SizeLimitError{Layer: ls.digest, Path: name, What: "file", Limit: f.o.maxFile, Found: hdr.Size}
	}
	fd, err := unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("layer %s: creating file %q: %w", ls.digest, name, err)
	}
	file := os.NewFile(uintptr(fd), name)
	defer file.Close()
	n, err := io.CopyN(file, r, hdr.Size)
	f.report.Bytes += n
	if err != nil {
		if f.capErr != nil {
			return f.capErr
		}
		return fmt.Errorf("layer %s: writing file %q (%d of %d bytes): %w", ls.digest, name, n, hdr.Size, err)
	}
	// Through the fd, never the path; unix.Fchmod because os.FileMode
	// encodes setuid/sticky differently from the kernel.
	if err := unix.Fchmod(fd, f.mode(ls, name, hdr)); err != nil {
		return fmt.Errorf("layer %s: setting the mode of %q: %w", ls.digest, name, err)
	}
	setFdTimes(fd, hdr.ModTime)
	f.report.Files++
	return file.Close()
}

func (f *flattener) setTimes(dirfd int, base string, t time.Time) {
	if t.IsZero() {
		return
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	_ = unix.UtimesNanoAt(dirfd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// whiteout applies ".wh.NAME" (hide NAME from lower layers) and
// ".wh..wh..opq" (hide everything lower layers put in this dir).
func (f *flattener) whiteout(ls *layerState, raw string, parts []string) error {
	base := parts[len(parts)-1]
	dirfd, realDir, err := f.resolveDir(ls, raw, parts[:len(parts)-1], false)
	if errors.Is(err, errNotExist) {
		return nil // nothing below to hide
	}
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	f.report.Whiteouts++
	prefix := strings.Join(realDir, "/")
	if prefix != "" {
		prefix += "/"
	}
	if base == ".wh..wh..opq" {
		names, err := readDirNames(dirfd)
		if err != nil {
			return fmt.Errorf("layer %s: opaque dir %q: listing it: %w", ls.digest, raw, err)
		}
		for _, n := range names {
			if ls.created[prefix+n] {
				continue
			}
			if err := f.remove(dirfd, n, prefix+n); err != nil {
				return fmt.Errorf("layer %s: opaque dir %q: removing %q: %w", ls.digest, raw, n, err)
			}
		}
		return nil
	}
	if strings.HasPrefix(base, ".wh..wh.") {
		f.report.Whiteouts--
		f.skip(ls, strings.Join(parts, "/"), "aufs metadata entry ignored")
		return nil
	}
	target := strings.TrimPrefix(base, ".wh.")
	if target == "" || target == "." || target == ".." {
		return f.escape(ls, raw, fmt.Sprintf("whiteout names %q, expected a file name", target))
	}
	if ls.created[prefix+target] {
		return nil // whiteouts hide lower layers only
	}
	var st unix.Stat_t
	if unix.Fstatat(dirfd, target, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return nil
	}
	if err := f.remove(dirfd, target, prefix+target); err != nil {
		return fmt.Errorf("layer %s: whiteout %q: %w", ls.digest, raw, err)
	}
	return nil
}

var errNotExist = errors.New("no such directory in the root")

// resolveDir opens the directory named by parts (relative to the root) and
// returns an O_PATH fd for it plus its real path. Symlinks met on the way
// are expanded inside the root (absolute targets from the root, ".."
// never above it); every directory is opened with O_NOFOLLOW, so the
// kernel refuses to follow a host symlink even if this logic were wrong.
// Missing dirs are created (mode 0755) when create is set.
func (f *flattener) resolveDir(ls *layerState, entry string, parts []string, create bool) (int, []string, error) {
	cur, err := unix.Openat(f.root, ".", oPath|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("reopening the root: %w", err)
	}
	var done []string
	todo := append([]string(nil), parts...)
	links := 0
	fail := func(err error) (int, []string, error) {
		unix.Close(cur)
		return -1, nil, err
	}
	reopen := func() error {
		unix.Close(cur)
		cur = -1
		fd, err := f.openDir(done)
		if err != nil {
			return err
		}
		cur = fd
		return nil
	}
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return fail(f.escape(ls, entry, "a symlinked parent directory points above the root"))
			}
			done = done[:len(done)-1]
			if err := reopen(); err != nil {
				return fail(err)
			}
			continue
		}
		var st unix.Stat_t
		err := unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			if !create {
				return fail(errNotExist)
			}
			if err := unix.Mkdirat(cur, c, 0o755); err != nil {
				return fail(fmt.Errorf("layer %s: creating parent directory %q of %q: %w", ls.digest, strings.Join(append(done, c), "/"), entry, err))
			}
			ls.created[strings.Join(append(done, c), "/")] = true
			st.Mode = unix.S_IFDIR
		} else if err != nil {
			return fail(fmt.Errorf("layer %s: looking up %q for %q: %w", ls.digest, strings.Join(append(done, c), "/"), entry, err))
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			next, err := unix.Openat(cur, c, oPath|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fail(fmt.Errorf("layer %s: opening directory %q for %q: %w", ls.digest, strings.Join(append(done, c), "/"), entry, err))
			}
			unix.Close(cur)
			cur = next
			done = append(done, c)
		case unix.S_IFLNK:
			links++
			if links > maxSymlinks {
				return fail(f.escape(ls, entry, fmt.Sprintf("more than %d symlinks in its parent path (a loop?)", maxSymlinks)))
			}
			target, err := readlinkat(cur, c)
			if err != nil {
				return fail(fmt.Errorf("layer %s: reading symlink %q for %q: %w", ls.digest, strings.Join(append(done, c), "/"), entry, err))
			}
			if strings.HasPrefix(target, "/") {
				done = done[:0]
				if err := reopen(); err != nil {
					return fail(err)
				}
			}
			todo = append(strings.Split(target, "/"), todo...)
		default:
			if !create {
				return fail(errNotExist)
			}
			return fail(fmt.Errorf("layer %s: entry %q: expected a directory at %q, found a non-directory", ls.digest, entry, strings.Join(append(done, c), "/")))
		}
	}
	return cur, done, nil
}

// openDir opens a real (symlink-free) path below the root, one component
// at a time with O_NOFOLLOW.
func (f *flattener) openDir(parts []string) (int, error) {
	cur, err := unix.Openat(f.root, ".", oPath|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, c := range parts {
		next, err := unix.Openat(cur, c, oPath|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			return -1, fmt.Errorf("opening %q below the root: %w", strings.Join(parts, "/"), err)
		}
		cur = next
	}
	return cur, nil
}

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		if len(buf) >= 1<<16 {
			return "", errors.New("symlink target too long")
		}
		buf = make([]byte, len(buf)*4)
	}
}

func readDirNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(fd), ".")
	defer d.Close()
	return d.Readdirnames(-1)
}

// remove deletes name (recursively when it is a directory) without ever
// following a symlink, and forgets the deferred modes of what it removed.
func (f *flattener) remove(dirfd int, name, real string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(dirfd, name, 0)
	}
	sub, err := unix.Openat(dirfd, name, oPath|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	names, err := readDirNames(sub)
	if err == nil {
		for _, n := range names {
			if err = f.remove(sub, n, real+"/"+n); err != nil {
				break
			}
		}
	}
	unix.Close(sub)
	if err != nil {
		return err
	}
	delete(f.dirs, real)
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// finish applies directory modes and times, deepest first, now that
// nothing more is written into them.
func (f *flattener) finish() error {
	paths := make([]string, 0, len(f.dirs))
	for p := range f.dirs {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return strings.Count(paths[i], "/") > strings.Count(paths[j], "/") })
	for _, p := range paths {
		m := f.dirs[p]
		fd, err := f.openDir(strings.Split(p, "/"))
		if err != nil {
			continue // replaced by a non-directory later: nothing to set
		}
		// O_PATH fds cannot be chmod'ed; reopen the same inode for real.
		rfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("opening directory %q to set its mode: %w", p, err)
		}
		err = unix.Fchmod(rfd, m.mode)
		if err == nil {
			setFdTimes(rfd, m.mtime)
		}
		unix.Close(rfd)
		if err != nil {
			return fmt.Errorf("setting the mode of directory %q: %w", p, err)
		}
	}
	return nil
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// setFdTimes sets atime and mtime through an open fd (best effort: times
// only matter for reproducible archives built from the rootfs later).
func setFdTimes(fd int, t time.Time) {
	if t.IsZero() {
		return
	}
	tv := unix.NsecToTimeval(t.UnixNano())
	_ = unix.Futimes(fd, []unix.Timeval{tv, tv})
}
