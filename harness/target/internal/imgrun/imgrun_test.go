package imgrun

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/target"
)

func rootfs(t *testing.T) string {
	t.Helper()
	r := t.TempDir()
	for _, d := range []string{"usr/bin", "opt/app", "etc"} {
		os.MkdirAll(filepath.Join(r, d), 0o755)
	}
	os.Symlink("usr/bin", filepath.Join(r, "bin"))
	os.WriteFile(filepath.Join(r, "usr/bin/tool"), []byte("x"), 0o755)
	os.WriteFile(filepath.Join(r, "usr/bin/data"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(r, "opt/app/run"), []byte("x"), 0o755)
	// Links that try to leave the rootfs must stay inside it.
	os.Symlink("/../../../../usr/bin/tool", filepath.Join(r, "opt/abs"))
	os.Symlink("../../../../../../etc", filepath.Join(r, "opt/up"))
	os.Symlink("loop2", filepath.Join(r, "opt/loop1"))
	os.Symlink("loop1", filepath.Join(r, "opt/loop2"))
	os.WriteFile(filepath.Join(r, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\npcap:x:1001:1002::/home/pcap:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(r, "etc/group"), []byte("root:x:0:\nnet:x:77:\n"), 0o644)
	return r
}

func TestResolveStaysInside(t *testing.T) {
	r := rootfs(t)
	for in, want := range map[string]string{
		"/bin/tool":       "/usr/bin/tool",
		"/opt/abs":        "/usr/bin/tool",
		"/opt/up/passwd":  "/etc/passwd",
		"/../../bin/tool": "/usr/bin/tool",
		"/bin/missing/x":  "/usr/bin/missing/x",
	} {
		got, err := Resolve(r, in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; expected %q", in, got, err, want)
		}
	}
	if _, err := Resolve(r, "/opt/loop1"); err == nil || !strings.Contains(err.Error(), "symlinks") {
		t.Errorf("a symlink loop: expected an error, got %v", err)
	}
	if _, err := Resolve(r, "relative"); err == nil {
		t.Error("a relative path: expected an error")
	}
}

func TestLookPath(t *testing.T) {
	r := rootfs(t)
	cases := []struct {
		argv0, workdir string
		env            []string
		want, err      string
	}{
		{"tool", "/", nil, "/usr/bin/tool", ""},
		{"tool", "/", []string{"PATH=/bin"}, "/usr/bin/tool", ""},
		{"run", "/", []string{"PATH=/usr/bin"}, "", `entrypoint "run" not found in the image: looked at /usr/bin/run`},
		{"./run", "/opt/app", nil, "/opt/app/run", ""},
		{"/opt/app/run", "", nil, "/opt/app/run", ""},
		{"/usr/bin/data", "/", nil, "", "not executable"},
	}
	for _, c := range cases {
		got, err := LookPath(r, c.argv0, c.workdir, c.env)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("LookPath(%q): expected error with %q, got %q, %v", c.argv0, c.err, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("LookPath(%q) = %q, %v; expected %q", c.argv0, got, err, c.want)
		}
	}
}

func TestResolveUser(t *testing.T) {
	r := rootfs(t)
	for in, want := range map[string]Identity{
		"":          {UID: 0, GID: 0, Name: "root", Home: "/root"},
		"pcap":      {UID: 1001, GID: 1002, Name: "pcap", Home: "/home/pcap"},
		"1001":      {UID: 1001, GID: 1002, Name: "pcap", Home: "/home/pcap"},
		"4242":      {UID: 4242, GID: 0},
		"pcap:net":  {UID: 1001, GID: 77, Name: "pcap", Home: "/home/pcap"},
		"pcap:9":    {UID: 1001, GID: 9, Name: "pcap", Home: "/home/pcap"},
		"4242:4243": {UID: 4242, GID: 4243},
	} {
		got, err := ResolveUser(r, in)
		if err != nil || got != want {
			t.Errorf("ResolveUser(%q) = %+v, %v; expected %+v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"nobody":     `image user "nobody" does not exist`,
		"pcap:wheel": `image group "wheel" does not exist`,
	} {
		if _, err := ResolveUser(r, in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ResolveUser(%q): expected error with %q, got %v", in, want, err)
		}
	}
}

func TestReachable(t *testing.T) {
	d := t.TempDir()
	inner := filepath.Join(d, "locked", "rootfs")
	os.MkdirAll(inner, 0o755)
	os.Chmod(filepath.Join(d, "locked"), 0o700)
	os.Chmod(d, 0o755)
	if _, ok := Reachable(inner, 0, 0); !ok {
		t.Error("root: expected reachable")
	}
	if os.Geteuid() == 0 {
		if blocker, ok := Reachable(inner, 4242, 4242); ok || blocker != filepath.Join(d, "locked") {
			t.Errorf("uid 4242 through a 0700 root-owned dir: got %q, %v", blocker, ok)
		}
	}
	os.Chmod(filepath.Join(d, "locked"), 0o755)
}

func TestArgv(t *testing.T) {
	if _, err := Argv(nil, nil); err == nil {
		t.Error("empty: expected an error")
	}
	got, _ := Argv([]string{"/a", "-x"}, []string{"b"})
	if strings.Join(got, " ") != "/a -x b" {
		t.Errorf("Argv = %v", got)
	}
}

func TestEmulatedArgv(t *testing.T) {
	r := rootfs(t)
	os.WriteFile(filepath.Join(r, "opt/app/start.sh"), []byte("#!/bin/tool -e\necho hi\n"), 0o755)
	os.WriteFile(filepath.Join(r, "opt/app/bad.sh"), []byte("#!/bin/bash\n"), 0o755)
	host := func(p string) string { return "/R" + p }
	got, err := EmulatedArgv(r, "/opt/app/run", []string{"run", "-x"}, host)
	if err != nil || strings.Join(got, " ") != "-0 run /R/opt/app/run -x" {
		t.Errorf("ELF: got %v, %v", got, err)
	}
	got, err = EmulatedArgv(r, "/opt/app/start.sh", []string{"start.sh", "a"}, host)
	if err != nil || strings.Join(got, " ") != "-0 /bin/tool /R/usr/bin/tool -e /opt/app/start.sh a" {
		t.Errorf("script: got %v, %v", got, err)
	}
	if _, err := EmulatedArgv(r, "/opt/app/bad.sh", []string{"bad.sh"}, host); err == nil || !strings.Contains(err.Error(), "/bin/bash") {
		t.Errorf("script without its interpreter: expected an error naming it, got %v", err)
	}
}

func TestDockerExit(t *testing.T) {
	for code, want := range map[int]target.Exit{
		0:   {Observed: true, Code: 0},
		2:   {Observed: true, Code: 2},
		127: {Observed: true, Code: 127},
		137: {Observed: true, Code: 137, Signal: "SIGKILL"},
		139: {Observed: true, Code: 139, Signal: "SIGSEGV"},
		255: {Observed: true, Code: 255},
	} {
		if got := DockerExit(code); got != want {
			t.Errorf("DockerExit(%d) = %+v, expected %+v", code, got, want)
		}
	}
}
