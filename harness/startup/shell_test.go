package startup

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// shellRoot is an armhf root with a shell (a static ARM ELF stands in for
// dash: the check reads ELF headers, it never runs them), /opt/app that
// needs libbar.so.2, and that library in /opt/lib only, off ld.so's path.
func shellRoot(t testing.TB, extra map[string]file) string {
	t.Helper()
	return mkroot(t, with(with(armhfBase(), map[string]file{
		"/bin/dash":            elfFile("app-static"),
		"/bin/sh":              symlink("dash"),
		"/bin/bash":            elfFile("app-static"),
		"/usr/bin/env":         elfFile("app-static"),
		"/opt/app":             elfFile("app-bar"),
		"/opt/lib/libbar.so.2": elfFile("libbar-armhf.so"),
	}), extra))
}

func shellCfg(script string, extra ...string) Config {
	return Config{Entrypoint: append([]string{"/bin/sh", "-c", script}, extra...)}
}

// runNames lists the programs the shell string was resolved to.
func runNames(r *Report) []string {
	var out []string
	if r.Shell == nil {
		return nil
	}
	for _, run := range r.Shell.Runs {
		name := run.Command[0]
		if run.Program != nil {
			name = run.Program.RealPath
		}
		out = append(out, name)
	}
	return out
}

func wantNotChecked(t *testing.T, r *Report, parts ...string) {
	t.Helper()
	if r.Complete() || len(r.NotChecked) != 1 {
		t.Fatalf("want one not-checked entry, got %d:\n%s", len(r.NotChecked), text(t, r))
	}
	s := r.NotChecked[0].String()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("not checked %q does not say %q", s, p)
		}
	}
	if !strings.Contains(text(t, r), "UNRESOLVED") && r.OK() {
		t.Errorf("the text report does not say the check is unresolved:\n%s", text(t, r))
	}
}

// The repro: only the shell used to be checked; the program the
// string runs lacks a library.
func TestShellFormChecksTheProgramTheStringRuns(t *testing.T) {
	root := shellRoot(t, nil)
	r := check(t, root, shellCfg("/opt/app"))
	p := wantProblem(t, r, KindMissingLibrary, "sh -c runs /opt/app: ", "app needs libbar.so.2 but the image does not have it")
	if p.Object != "libbar.so.2" || p.NeededBy != "/opt/app" {
		t.Errorf("problem object %q needed by %q", p.Object, p.NeededBy)
	}
	if r.Program == nil || r.Program.RealPath != "/bin/dash" {
		t.Errorf("the shell itself is the report's program: %+v", r.Program)
	}
	if got := runNames(r); !reflect.DeepEqual(got, []string{"/opt/app"}) {
		t.Errorf("runs %v", got)
	}
	if strings.Contains(text(t, r), "OK: the program can start") {
		t.Errorf("text says OK:\n%s", text(t, r))
	}
	if !r.Complete() {
		t.Errorf("a literal command must be complete: %v", r.NotChecked)
	}
}

func TestShellFormResolvesWhatIsKnown(t *testing.T) {
	root := shellRoot(t, nil)
	for _, tc := range []struct {
		name   string
		cfg    Config
		runs   []string
		wantOK bool
	}{
		{"prefix assignment", shellCfg("LD_LIBRARY_PATH=/opt/lib exec /opt/app --flag"), []string{"/opt/app"}, true},
		{"export then run", shellCfg("export LD_LIBRARY_PATH=/opt/lib; /opt/app"), []string{"/opt/app"}, true},
		// Not exported: the program does not see it.
		{"plain assignment", shellCfg("LD_LIBRARY_PATH=/opt/lib; /opt/app"), []string{"/opt/app"}, false},
		{"cd then relative", shellCfg("cd /opt && LD_LIBRARY_PATH=lib ./app"), []string{"/opt/app"}, true},
		{"PATH from the string", shellCfg(`PATH=/opt:$PATH LD_LIBRARY_PATH=/opt/lib exec app`), []string{"/opt/app"}, true},
		{"builtins only", shellCfg("set -e; echo starting; : ; true && test -x /opt/app; cd /"), nil, true},
		{"lists and subshells", shellCfg("(cd /opt && LD_LIBRARY_PATH=/opt/lib ./app) || { echo failed; exit 1; }"), []string{"/opt/app"}, true},
		{"pipeline", shellCfg("env LD_LIBRARY_PATH=/opt/lib /opt/app | /bin/dash"), []string{"/usr/bin/env", "/opt/app", "/bin/dash"}, true},
		{"positional parameters", shellCfg(`exec "$@"`, "sh", "env", "LD_LIBRARY_PATH=/opt/lib", "/opt/app"), []string{"/usr/bin/env", "/opt/app"}, true},
		{"variable from the string", shellCfg(`APP=/opt/app; LD_LIBRARY_PATH=/opt/lib $APP`), []string{"/opt/app"}, true},
		{"default value", shellCfg(`exec ${APP:-/opt/app}`), []string{"/opt/app"}, false},
		{"image env", Config{Entrypoint: []string{"/bin/sh", "-ec", "exec $APP"}, Env: []string{"APP=/opt/app", "LD_LIBRARY_PATH=/opt/lib"}}, []string{"/opt/app"}, true},
		{"command substitution in an argument", shellCfg(`exec /opt/app --id "$(/bin/dash -c 'echo x')"`), []string{"/bin/dash", "/opt/app"}, false},
		{"nothing after exec", shellCfg("exec /bin/dash; /opt/missing"), []string{"/bin/dash"}, true},
		{"nested sh -c", shellCfg(`sh -c "LD_LIBRARY_PATH=/opt/lib /opt/app"`), []string{"/bin/dash", "/opt/app"}, true},
		{"bash", Config{Entrypoint: []string{"/bin/bash", "-c", "export LD_LIBRARY_PATH=/opt/lib; exec -a app /opt/app"}}, []string{"/opt/app"}, true},
		{"trap action", shellCfg(`trap '/opt/app' TERM; exec /bin/dash`), []string{"/opt/app", "/bin/dash"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := check(t, root, tc.cfg)
			if !r.Complete() {
				t.Fatalf("not complete: %v\n%s", r.NotChecked, text(t, r))
			}
			if got := runNames(r); !reflect.DeepEqual(got, tc.runs) {
				t.Errorf("runs %v, want %v\n%s", got, tc.runs, text(t, r))
			}
			if r.OK() != tc.wantOK {
				t.Errorf("OK = %v, want %v:\n%s", r.OK(), tc.wantOK, text(t, r))
			}
		})
	}
}

func TestShellFormMissingProgramInTheString(t *testing.T) {
	root := shellRoot(t, nil)
	r := check(t, root, shellCfg("echo starting && exec pcapwatch --iface eth0"))
	wantProblem(t, r, KindMissingProgram, "sh -c runs pcapwatch: ", "the command pcapwatch is not in any directory of PATH=")
}

func TestShellFormUnresolved(t *testing.T) {
	root := shellRoot(t, nil)
	for _, tc := range []struct {
		name  string
		cfg   Config
		parts []string
	}{
		{"variable not set", shellCfg("exec $APP --flag"), []string{"$APP (1:6)", "the image does not set"}},
		{"command substitution", shellCfg("$(cat /etc/app) --flag"), []string{"command substitution"}},
		{"variable set at run time", shellCfg("APP=$(cat /etc/app); $APP"), []string{"$APP", "known only at run time"}},
		{"if", shellCfg("if [ -x /opt/app ]; then /opt/app; fi"), []string{"if clause"}},
		{"case", shellCfg(`case "$1" in run) /opt/app;; esac`), []string{"case clause"}},
		{"function", shellCfg("main() { /opt/app; }; main"), []string{"function main"}},
		{"eval", shellCfg(`eval "/opt/app"`), []string{"eval runs a string"}},
		{"dot", shellCfg(". /etc/profile; /bin/dash"), []string{"reads another script"}},
		{"glob", shellCfg("/opt/a*"), []string{"pattern"}},
		{"PATH unknown", shellCfg("PATH=$(cat /etc/path); app"), []string{"PATH is set to a value known only at run time"}},
		{"cd unknown", shellCfg(`cd "$DIR" && ./app`), []string{"relative path after cd"}},
		{"LD_LIBRARY_PATH unknown", shellCfg(`export LD_LIBRARY_PATH=$(cat /etc/libs); /opt/app`), []string{"LD_LIBRARY_PATH is set to a value known only at run time"}},
		{"positional unknown", Config{Entrypoint: []string{"/bin/sh", "-c", `exec "$@"`}, Cmd: nil}, nil},
		{"parse error", shellCfg("exec /opt/app (("), []string{"does not parse"}},
		{"pipeline into a variable", shellCfg("/bin/dash | $FILTER"), []string{"$FILTER"}},
		{"nested shell after cd unknown", shellCfg(`cd "$DIR" && sh -c ./app`), []string{"./app", "relative path after cd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := check(t, root, tc.cfg)
			if tc.parts == nil {
				// "$@" with no arguments expands to nothing: nothing runs.
				if !r.Complete() || len(runNames(r)) != 0 {
					t.Fatalf("exec with no parameters: %v %v", r.NotChecked, runNames(r))
				}
				return
			}
			wantNotChecked(t, r, tc.parts...)
		})
	}
}

func TestShellCommandRecognition(t *testing.T) {
	for _, tc := range []struct {
		argv   []string
		script string
		ok     bool
	}{
		{[]string{"/bin/sh", "-c", "x"}, "x", true},
		{[]string{"sh", "-ec", "x"}, "x", true},
		{[]string{"/bin/bash", "--norc", "-o", "pipefail", "-c", "x", "name", "a"}, "x", true},
		{[]string{"/usr/bin/dash", "-x", "-c", "--", "x"}, "x", true},
		{[]string{"/bin/sh", "/entrypoint.sh"}, "", false},
		{[]string{"/bin/sh"}, "", false},
		{[]string{"/opt/app", "-c", "x"}, "", false},
	} {
		inv, ok := shellCommand(tc.argv)
		if ok != tc.ok || (ok && inv.script != tc.script) {
			t.Errorf("shellCommand(%q) = %q %v, want %q %v", tc.argv, inv.script, ok, tc.script, tc.ok)
		}
	}
}

// FuzzShellForm runs arbitrary strings through the shell-form resolver:
// never a panic, never an error (a string that cannot be resolved is a
// not-checked entry, a missing program a problem).
// Run: go test ./harness/startup -run '^$' -fuzz FuzzShellForm -fuzztime 60s
func FuzzShellForm(f *testing.F) {
	for _, s := range []string{
		"/opt/app", "cd /opt && ./app", `exec "$@"`, "A=1 B=$A; export C=${B:-x}; $C",
		"(a | b) && { c; } || d &", "trap 'sh -c \"exec /opt/app\"' TERM", "set -a -- x y; shift; exec \"$1\"",
		"if x; then y; fi", "f() { g; }; f", "$(a) `b` $((1+2))", "env -i -u X A=1 -- /opt/app",
	} {
		f.Add(s)
	}
	root := shellRoot(f, nil)
	f.Fuzz(func(t *testing.T, script string) {
		for _, sh := range []string{"/bin/sh", "/bin/bash"} {
			r, err := Check(context.Background(), root, Config{Platform: "linux/arm/v7", Entrypoint: []string{sh, "-c", script}, Cmd: []string{"a", "b"}})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			var b strings.Builder
			if err := r.Text(&b); err != nil {
				t.Fatal(err)
			}
		}
	})
}
