package startup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// file describes one entry of a hand-made rootfs: a copy of a testdata
// ELF (from), a symlink (link) or literal content (data).
type file struct {
	from string
	link string
	data string
	mode os.FileMode
}

func elfFile(name string) file {
	return file{from: filepath.Join("testdata", "elf", name), mode: 0o755}
}
func symlink(target string) file { return file{link: target} }
func script(body string) file    { return file{data: body, mode: 0o755} }

// mkroot builds a rootfs dir in a temp dir; it never touches the host's /.
func mkroot(t testing.TB, files map[string]file) string {
	t.Helper()
	root := t.TempDir()
	for p, f := range files {
		host := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case f.link != "":
			if err := os.Symlink(f.link, host); err != nil {
				t.Fatal(err)
			}
			continue
		case f.from != "":
			b, err := os.ReadFile(f.from)
			if err != nil {
				t.Fatal(err)
			}
			f.data = string(b)
		}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(host, []byte(f.data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(host, mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// armhfBase is a merged-/usr Debian armhf layout: /lib is a symlink to
// usr/lib and the loader is reached through a chain of symlinks, one of
// them absolute (so it must be resolved inside the root).
func armhfBase() map[string]file {
	return map[string]file{
		"/lib":                                   symlink("usr/lib"),
		"/usr/lib/arm-linux-gnueabihf/libc.so.6": elfFile("libc-2.36-stub.so"),
		"/usr/lib/arm-linux-gnueabihf/ld-linux-armhf.so.3": elfFile("ld-stub.so"),
		"/usr/lib/ld-linux-armhf.so.3":                     symlink("/lib/arm-linux-gnueabihf/ld-linux-armhf.so.3"),
	}
}

func with(base map[string]file, extra map[string]file) map[string]file {
	out := map[string]file{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		if v == (file{}) {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

func check(t testing.TB, root string, cfg Config) *Report {
	t.Helper()
	if cfg.Platform == "" {
		cfg.Platform = "linux/arm/v7"
	}
	r, err := Check(context.Background(), root, cfg)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return r
}

func text(t testing.TB, r *Report) string {
	t.Helper()
	var b strings.Builder
	if err := r.Text(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func wantOK(t testing.TB, r *Report) {
	t.Helper()
	if !r.OK() {
		t.Fatalf("want no problems, got:\n%s", text(t, r))
	}
}

// wantProblem asserts exactly one problem, of kind, whose message
// contains every one of parts.
func wantProblem(t testing.TB, r *Report, kind Kind, parts ...string) Problem {
	t.Helper()
	if len(r.Problems) != 1 {
		t.Fatalf("want exactly one %s problem, got %d:\n%s", kind, len(r.Problems), text(t, r))
	}
	p := r.Problems[0]
	if p.Kind != kind {
		t.Fatalf("want a %s problem, got %s: %s", kind, p.Kind, p.Message)
	}
	for _, s := range parts {
		if !strings.Contains(p.Message, s) {
			t.Errorf("problem message %q does not contain %q", p.Message, s)
		}
	}
	return p
}

// findLib finds a library by name anywhere in the tree (first, non-repeat).
func findLib(o *Object, name string) *Object {
	if o == nil {
		return nil
	}
	for _, c := range o.Needed {
		if c.Name == name && !c.Repeat {
			return c
		}
	}
	for _, c := range o.Needed {
		if f := findLib(c, name); f != nil {
			return f
		}
	}
	return nil
}
