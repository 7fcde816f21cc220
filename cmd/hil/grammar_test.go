package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hilproject/hil/schemas"
)

// commands lists every command of the CLI that does something (not the
// groups like "hil image"), by its path.
func commands() map[string]*cobra.Command {
	out := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && !c.Hidden && c.Name() != "help" && c.Name() != "completion" && c != rootCmd {
			out[c.CommandPath()] = c
		}
		if c.Name() == "completion" {
			return // cobra's own (added at the first Execute), with its own help
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(rootCmd)
	return out
}

// Every verb's help shows an example (cobra's Example field).
func TestEveryCommandHasAnExample(t *testing.T) {
	cmds := commands()
	if len(cmds) < 20 {
		t.Fatalf("walked only %d commands", len(cmds))
	}
	for path, c := range cmds {
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no Example", path)
		} else if !strings.Contains(c.Example, "hil "+strings.TrimPrefix(path, "hil ")) {
			t.Errorf("%s: its Example does not show %q", path, path)
		}
	}
}

// differentOnPurpose are flags whose default (or meaning) differs between
// verbs for a reason the help text gives; every other flag that two verbs
// share has the same type and default.
var differentOnPurpose = map[string]string{
	// run writes reports only when asked; a gate always leaves its
	// decision and reports somewhere.
	"report": "run: none unless asked; gate: hil-report",
	// run and check default to the image's or the scenarios' platforms; a
	// gate to the platform the fleet runs, which must pass.
	"platform": "run, check: the scenarios' or the image's own; gate: linux/arm/v7",
	// record writes a capture file, report merge a report directory.
	"out": "record: a capture file; report merge: a directory",
	// replay's timeout bounds a replay, the others' a wait of their own.
	"timeout": "per verb",
}

// The flags that several verbs share have one name, type and default.
func TestSharedFlagsAgree(t *testing.T) {
	type seen struct {
		cmd, typ, def string
	}
	byName := map[string][]seen{}
	for path, c := range commands() {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			byName[f.Name] = append(byName[f.Name], seen{path, f.Value.Type(), f.DefValue})
		})
	}
	var names []string
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ss := byName[n]
		if len(ss) < 2 {
			continue
		}
		for _, s := range ss[1:] {
			if s.typ != ss[0].typ {
				t.Errorf("--%s is a %s in %s but a %s in %s", n, ss[0].typ, ss[0].cmd, s.typ, s.cmd)
			}
			if _, ok := differentOnPurpose[n]; !ok && s.def != ss[0].def {
				t.Errorf("--%s defaults to %q in %s but to %q in %s", n, ss[0].def, ss[0].cmd, s.def, s.cmd)
			}
		}
	}
	// The lists are lists everywhere.
	for _, n := range []string{"target", "platform", "board", "scenarios", "require-board"} {
		for _, s := range byName[n] {
			if s.typ != "stringSlice" {
				t.Errorf("--%s in %s is a %s, want a list (stringSlice)", n, s.cmd, s.typ)
			}
		}
	}
	for _, want := range [][2]string{{"target", "hil run"}, {"target", "hil gate"}, {"platform", "hil gate"}, {"platform", "hil check"}, {"retries", "hil gate"}, {"scenarios", "hil gate"}, {"scenarios", "hil run"},
		{"board", "hil run"}, {"board", "hil gate"}, {"board", "hil check"}, {"require-board", "hil attest verify"}} {
		found := false
		for _, s := range byName[want[0]] {
			found = found || s.cmd == want[1]
		}
		if !found {
			t.Errorf("%s has no --%s", want[1], want[0])
		}
	}
}

// Errors say what is expected; the old plural spellings still work, with
// a note; hil --version is hil version.
func TestGrammarErrorsAndAliases(t *testing.T) {
	layout := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gate", "--image", "oci:" + layout, "--promote", "latest"}, "gate needs a registry reference such as host/repo:tag; got an OCI layout (oci:" + layout + ")"},
		{[]string{"gate", "--image", "docker-archive:app.tar", "--promote", "latest"}, "got a docker save archive (docker-archive:app.tar)"},
		{[]string{"check"}, "check needs an IMAGE: oci:DIR, docker-archive:FILE, docker-daemon:NAME or a registry reference"},
		{[]string{"image", "inspect"}, "image inspect needs a REF"},
		{[]string{"watch", "--device", "pi", "--image", "oci:" + layout}, "watch needs a registry reference"},
		{[]string{"run"}, "--image is required"},
		{[]string{"run", "--image", "oci:/nonexistent", "--progress", "fancy"}, "want auto, line, plain, json or none"},
		{[]string{"run", "--image", "oci:/nonexistent", "--board", "pi0w", "--platform", "linux/arm/v7"}, "--platform and --board: a board runs the manifest its engine pulls"},
		{[]string{"run", "--image", "oci:/nonexistent", "--board", "pi9"}, "pi9"},
		{[]string{"gate", "--image", "localhost:1/app:rc", "--promote", "latest", "--board", "pi0w", "--platform", "linux/arm/v7"}, "--platform and --board/--fleet"},
		{[]string{"gate", "--image", "localhost:1/app:rc", "--promote", "latest", "--fleet", "/nonexistent-fleet.yaml"}, "/nonexistent-fleet.yaml"},
	} {
		_, errText, code := runHil(t, c.args...)
		if code != 2 || !strings.Contains(errText, c.want) {
			t.Errorf("hil %s: exit %d, error %q; want exit 2 and %q", strings.Join(c.args, " "), code, errText, c.want)
		}
	}
	// --platforms is --platform, with a note.
	r := execHil(t, "check", "oci:/nonexistent", "--platforms", "linux/arm/v7")
	if !strings.Contains(r.stderr, "--platforms is spelled --platform now") || strings.Contains(r.errText, "unknown flag") {
		t.Errorf("--platforms: %q / %q", r.errText, r.stderr)
	}
	// --boards is --board, on run and gate alike.
	for _, verb := range [][]string{{"run", "--image", "oci:/nonexistent"}, {"gate", "--image", "localhost:1/app:rc", "--promote", "latest"}} {
		r := execHil(t, append(verb, "--boards", "pi9")...)
		if !strings.Contains(r.stderr, "--boards is spelled --board now") || strings.Contains(r.errText, "unknown flag") || !strings.Contains(r.errText, "pi9") {
			t.Errorf("%s --boards: %q / %q", verb[0], r.errText, r.stderr)
		}
	}
	out, _, code := runHil(t, "--version")
	v, _, _ := runHil(t, "version")
	if code != 0 || out != v || !strings.HasPrefix(out, "hil v0.") {
		t.Errorf("hil --version %q (exit %d), hil version %q", out, code, v)
	}
}

// A --json verb that fails prints the error object, valid against the
// schema, with the exit code; without --json, nothing on stdout.
func TestJSONErrorObject(t *testing.T) {
	for _, args := range [][]string{
		{"check", "--json"},
		{"check", "oci:/nonexistent", "--json"},
		{"image", "inspect", "oci:/nonexistent", "--json"},
		{"gate", "--image", "oci:/x", "--promote", "latest", "--json"},
		{"rollback", "--tag", "latest", "--json"},
		{"boards", "--board-profiles", "/nonexistent.yaml", "--json"},
		{"run", "--image", "oci:/nonexistent", "--progress", "json", filepath.Join("..", "..", "scenarios", "startup.yaml")},
		{"fixtures", "no-such-fixture", "--json"},
		{"report", "merge", "--json", "--out", filepath.Join(t.TempDir(), "m"), "/nonexistent"},
		{"attest", "verify", "--json"},
		{"attest", "show", "--json"},
		{"watch", "--json"},
		{"replay", "dns", "--json"},
		{"record", "--json"},
		{"cache", "du", "no-such-kind", "--json"},
		{"kernel", "list", "--json", "extra-argument"},
		{"version", "--json", "extra-argument"},
	} {
		r := execHil(t, args...)
		if r.code == 0 {
			t.Errorf("hil %s passed", strings.Join(args, " "))
			continue
		}
		body := lastJSONObject(r.stdout)
		if err := schemas.Validate(schemas.Def("error"), []byte(body)); err != nil {
			t.Errorf("hil %s: stdout %q: %v", strings.Join(args, " "), r.stdout, err)
			continue
		}
		var e struct {
			Error struct {
				Message  string `json:"message"`
				ExitCode int    `json:"exit_code"`
			} `json:"error"`
		}
		_ = json.Unmarshal([]byte(body), &e)
		if e.Error.ExitCode != r.code || e.Error.Message != r.errText {
			t.Errorf("hil %s: error object %+v, want exit %d and %q", strings.Join(args, " "), e.Error, r.code, r.errText)
		}
	}
	if r := execHil(t, "check", "oci:/nonexistent"); r.stdout != "" {
		t.Errorf("without --json a failure printed on stdout: %q", r.stdout)
	}
}

// lastJSONObject is the last top-level JSON object of s (progress events
// come one per line before an error object).
func lastJSONObject(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n{"); i >= 0 && !strings.HasPrefix(s, "{\n") {
		return s[i+1:]
	}
	return s
}

var _ = fmt.Sprint
var _ = os.Getenv
