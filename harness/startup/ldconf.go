package startup

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
)

// ld.so never reads /etc/ld.so.conf: only ldconfig does, to write
// ld.so.cache. An image assembled with COPY only (nothing can run at build
// time on a foreign arch) often has a library in a directory that
// ld.so.conf lists but a cache that was never regenerated. confHint says
// so, which is the one thing a person needs to fix it.
func (c *checker) confHint(name string) string {
	dirs, confOf := c.ldConfDirs()
	for _, d := range dirs {
		r, err := c.root.resolve(path.Join(d, name))
		if err != nil || !r.Info.Mode().IsRegular() {
			continue
		}
		info, err := c.loadELF(r.Path)
		if err != nil {
			continue
		}
		if ok, _ := c.arch.compatible(info, true); !ok {
			continue
		}
		cache := "the image has none"
		if c.cache != nil {
			cache = "the image's does not list it"
		}
		return fmt.Sprintf("there is a copy at %s, in a directory %s lists, but ld.so reads only /etc/ld.so.cache and %s: regenerate the cache (ldconfig -r ROOTFS at build time) or add %s to LD_LIBRARY_PATH",
			path.Join(d, name), confOf[d], cache, d)
	}
	return ""
}

// ldConfDirs parses /etc/ld.so.conf inside the root, following include
// lines (globs, relative to the including file's directory).
func (c *checker) ldConfDirs() ([]string, map[string]string) {
	var dirs []string
	confOf := map[string]string{}
	seen := map[string]bool{}
	var read func(file string, depth int)
	read = func(file string, depth int) {
		if depth > 8 || seen[file] {
			return
		}
		seen[file] = true
		r, err := c.root.resolve(file)
		if err != nil || !r.Info.Mode().IsRegular() || r.Info.Size() > 1<<20 {
			return
		}
		b, err := os.ReadFile(c.root.host(r.Path))
		if err != nil {
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := sc.Text()
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' || r == ':' || r == '=' })
			if len(fields) == 0 {
				continue
			}
			switch fields[0] {
			case "include":
				for _, pat := range fields[1:] {
					if !path.IsAbs(pat) {
						pat = path.Join(path.Dir(file), pat)
					}
					for _, f := range c.globInRoot(pat) {
						read(f, depth+1)
					}
				}
			case "hwcap":
			default:
				for _, d := range fields {
					if path.IsAbs(d) && confOf[path.Clean(d)] == "" {
						d = path.Clean(d)
						dirs = append(dirs, d)
						confOf[d] = file
					}
				}
			}
		}
	}
	read("/etc/ld.so.conf", 0)
	return dirs, confOf
}

// globInRoot expands a glob whose last element may have wildcards; the
// directory part is resolved inside the root.
func (c *checker) globInRoot(pat string) []string {
	dir, base := path.Split(pat)
	r, err := c.root.resolve(dir)
	if err != nil || !r.Info.IsDir() {
		return nil
	}
	ents, err := os.ReadDir(c.root.host(r.Path))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if ok, _ := path.Match(base, e.Name()); ok {
			out = append(out, path.Join(r.Path, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}
