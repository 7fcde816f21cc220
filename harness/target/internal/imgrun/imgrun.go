// Package imgrun holds what the user and container targets both need to run
// an image's entrypoint: finding the program inside a rootfs the way the
// kernel and Docker would (PATH, symlinks that stay inside the rootfs),
// resolving the image user, and turning output streams into target.Lines.
package imgrun

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DefaultPath is the PATH Docker uses when the image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Argv is the command line Docker runs: entrypoint then cmd.
func Argv(entrypoint, cmd []string) ([]string, error) {
	argv := append(append([]string{}, entrypoint...), cmd...)
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("nothing to run: the image config (with overrides) has neither an entrypoint nor a cmd")
	}
	return argv, nil
}

// Getenv returns the value of key in env ("K=V" entries; the last wins).
func Getenv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// maxSymlinks matches the kernel's limit (ELOOP).
const maxSymlinks = 40

// Resolve follows p (absolute, as the app sees it) inside rootfs, resolving
// every symlink as if rootfs were "/" (an absolute link target restarts at
// rootfs, ".." never climbs above it). It returns the in-image path with all
// links resolved; the host path is filepath.Join(rootfs, result). The final
// component need not exist.
func Resolve(rootfs, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("resolving %q in the image: expected an absolute path", p)
	}
	resolved := "/"
	rest := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	hops := 0
	for len(rest) > 0 {
		part := rest[0]
		rest = rest[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, part)
		fi, err := os.Lstat(filepath.Join(rootfs, next))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return path.Join(append([]string{next}, rest...)...), nil
			}
			return "", fmt.Errorf("resolving %s in the image: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		hops++
		if hops > maxSymlinks {
			return "", fmt.Errorf("resolving %s in the image: more than %d symlinks (loop?)", p, maxSymlinks)
		}
		target, err := os.Readlink(filepath.Join(rootfs, next))
		if err != nil {
			return "", fmt.Errorf("resolving %s in the image: %w", p, err)
		}
		if path.IsAbs(target) {
			resolved = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return resolved, nil
}

// LookPath finds the program argv0 in rootfs as Docker does: a name with a
// slash is taken as a path (relative to workdir), a bare name is searched
// in the PATH of env (Docker's default PATH when unset). It returns the
// in-image path with symlinks resolved, and fails saying where it looked.
func LookPath(rootfs, argv0, workdir string, env []string) (string, error) {
	if workdir == "" {
		workdir = "/"
	}
	var candidates []string
	if strings.Contains(argv0, "/") {
		p := argv0
		if !path.IsAbs(p) {
			p = path.Join(workdir, p)
		}
		candidates = []string{p}
	} else {
		search := Getenv(env, "PATH")
		if search == "" {
			search = DefaultPath
		}
		for _, dir := range filepath.SplitList(search) {
			if dir == "" {
				dir = workdir
			}
			if !path.IsAbs(dir) {
				dir = path.Join(workdir, dir)
			}
			candidates = append(candidates, path.Join(dir, argv0))
		}
	}
	for _, c := range candidates {
		r, err := Resolve(rootfs, c)
		if err != nil {
			return "", err
		}
		fi, err := os.Stat(filepath.Join(rootfs, r))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("entrypoint %q: %s in the image is not executable (mode %v)", argv0, c, fi.Mode().Perm())
		}
		return r, nil
	}
	return "", fmt.Errorf("entrypoint %q not found in the image: looked at %s", argv0, strings.Join(candidates, ", "))
}
