package startup

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxSymlinks is the kernel's limit on symlinks followed in one lookup.
const maxSymlinks = 40

// rootFS looks paths up inside a flattened image the way the kernel would
// if that directory were "/": absolute symlinks point into the root, ".."
// stops at the root, and the host is never consulted.
type rootFS struct {
	dir string
}

// resolved is a path looked up inside the root.
type resolved struct {
	// Path is the final, symlink-free path inside the root ("/lib/x.so").
	Path string
	// Links lists each symlink followed, as "link -> target".
	Links []string
	Info  fs.FileInfo
}

var errLoop = errors.New("too many levels of symbolic links")

// host converts a clean in-root path to a host path.
func (r rootFS) host(p string) string {
	return filepath.Join(r.dir, filepath.FromSlash(p))
}

// resolve follows p (absolute, or relative to "/") inside the root.
// A missing file gives an error satisfying errors.Is(err, fs.ErrNotExist).
func (r rootFS) resolve(p string) (resolved, error) {
	var out resolved
	budget := maxSymlinks
	cur, err := r.walk("/", p, &budget, &out.Links)
	if err != nil {
		return out, err
	}
	fi, err := os.Stat(r.host(cur))
	if err != nil {
		return out, err
	}
	out.Path, out.Info = cur, fi
	return out, nil
}

// walk resolves rel against dir (both in-root), component by component.
func (r rootFS) walk(dir, rel string, budget *int, links *[]string) (string, error) {
	if strings.HasPrefix(rel, "/") {
		dir = "/"
	}
	cur := dir
	parts := strings.Split(rel, "/")
	for i, c := range parts {
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		fi, err := os.Lstat(r.host(next))
		if err != nil {
			return "", &fs.PathError{Op: "lookup", Path: next, Err: unwrapPathErr(err)}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if i < len(parts)-1 && !fi.IsDir() && hasMore(parts[i+1:]) {
				return "", &fs.PathError{Op: "lookup", Path: next, Err: errors.New("not a directory")}
			}
			cur = next
			continue
		}
		*budget--
		if *budget < 0 {
			return "", &fs.PathError{Op: "lookup", Path: next, Err: errLoop}
		}
		target, err := os.Readlink(r.host(next))
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: next, Err: unwrapPathErr(err)}
		}
		*links = append(*links, next+" -> "+target)
		cur, err = r.walk(cur, target, budget, links)
		if err != nil {
			return "", err
		}
	}
	return cur, nil
}

func hasMore(parts []string) bool {
	for _, p := range parts {
		if p != "" && p != "." {
			return true
		}
	}
	return false
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// executable reports whether anyone may execute the file (execve needs at
// least one x bit, even for root).
func executable(fi fs.FileInfo) bool {
	return fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
