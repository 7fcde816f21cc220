package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"

	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/schemas"
)

// TestInit: hil init on the sample image writes a scenario, a Ginkgo suite
// and a workflow with which hil run and go test pass (the user target,
// the amd64 build: native and fast); on a second image (Debian's tcpdump,
// with its own ready line) hil run passes too; the workflows pass
// actionlint; a second init keeps every file as the user left it.
func TestInit(t *testing.T) {
	testenv.RequireRoot(t) // the user target's network namespaces
	images := testenv.ImagesDir(t)
	root := testenv.RepoRoot(t)

	for _, c := range []struct {
		image  string
		ready  []string
		goTest bool
	}{
		{"pcapwatch", nil, true},
		{"tcpdump", []string{"--ready", "^listening on "}, false},
	} {
		t.Run(c.image, func(t *testing.T) {
			dir := t.TempDir()
			ref := "oci:" + filepath.Join(images, c.image)
			r := execHil(t, append([]string{"init", "--image", ref, "--dir", dir}, c.ready...)...)
			if r.code != 0 {
				t.Fatalf("init: exit %d (%s)\n%s", r.code, r.errText, r.stdout)
			}
			for _, f := range []string{initScenario, initSuite, initWorkflow} {
				if !strings.Contains(r.stdout, "wrote "+filepath.Join(dir, f)) {
					t.Errorf("init did not say it wrote %s:\n%s", f, r.stdout)
				}
			}
			scen := filepath.Join(dir, "scenarios", "startup.yaml")
			y, _ := os.ReadFile(scen)
			for _, want := range []string{"static startup check linux/arm/v7: the program can start", "entrypoint: [\"/", "platforms: [\"linux/arm/v7\""} {
				if !bytes.Contains(y, []byte(want)) {
					t.Errorf("the scenario does not say %q:\n%s", want, y)
				}
			}
			lintWorkflow(t, filepath.Join(dir, filepath.FromSlash(initWorkflow)))

			rep := t.TempDir()
			r = execHil(t, "run", "--image", ref, "--target", "user", "--platform", "linux/amd64", "--progress", "none",
				"--report", rep, filepath.Join(dir, "scenarios"))
			if r.code != 0 {
				t.Fatalf("hil run of the written scenario: exit %d (%s)\n%s\n%s", r.code, r.errText, r.stdout, r.stderr)
			}
			if c.goTest {
				// The scenario as written (the ARM build on the system
				// target; warm from the snapshot other tests left), then
				// the suite.
				r = execHil(t, "run", "--image", ref, "--progress", "none", filepath.Join(dir, "scenarios"))
				if r.code != 0 || !strings.Contains(r.stdout, "PASS        startup [system linux/arm/v7]") {
					t.Fatalf("hil run of the written scenario on the system target: exit %d (%s)\n%s\n%s", r.code, r.errText, r.stdout, r.stderr)
				}
				goTestSuite(t, root, dir)
			}

			// Re-running init keeps what is there, edited or not.
			if err := os.WriteFile(scen, []byte("# mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			r = execHil(t, append([]string{"init", "--image", ref, "--dir", dir}, c.ready...)...)
			if r.code != 0 || strings.Contains(r.stdout, "wrote ") || strings.Count(r.stdout, "kept ") != 3 {
				t.Errorf("second init: exit %d, want every file kept:\n%s", r.code, r.stdout)
			}
			if b, _ := os.ReadFile(scen); string(b) != "# mine\n" {
				t.Errorf("init overwrote the edited scenario: %q", b)
			}
			r = execHil(t, append([]string{"init", "--image", ref, "--dir", dir, "--json"}, c.ready...)...)
			validates(t, "hil init --json", schemas.Def("init"), r.stdout)
			if r.code != 0 || strings.Count(r.stdout, `"written": false`) != 3 || !strings.Contains(r.stdout, `"ok": true`) {
				t.Errorf("init --json: exit %d:\n%s", r.code, r.stdout)
			}
		})
	}

	// Bad input: no image, a --dir that is a file.
	if r := execHil(t, "init", "--json"); r.code != 2 || !strings.Contains(r.errText, "--image") {
		t.Errorf("init --json without --image: exit %d %q", r.code, r.errText)
	} else {
		validates(t, "hil init --json without --image", schemas.Def("error"), r.stdout)
	}
	if r := execHil(t, "init"); r.code != 2 || !strings.Contains(r.errText, "--image") {
		t.Errorf("init without --image: exit %d %q", r.code, r.errText)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if r := execHil(t, "init", "--image", "oci:"+filepath.Join(images, "pcapwatch"), "--dir", file); r.code != 2 || !strings.Contains(r.errText, file) {
		t.Errorf("init --dir FILE: exit %d %q", r.code, r.errText)
	}
}

// goTestSuite makes dir a module as init tells the user to (with hil
// replaced by this checkout and its go.sum, so nothing is fetched) and
// runs the written suite with go test on the user target.
func goTestSuite(t *testing.T, root, dir string) {
	t.Helper()
	gomod := "module example.com/app-hil\n\ngo 1.26.0\n\nrequire (\n\tgithub.com/hilproject/hil v0.0.0\n)\n\nreplace github.com/hilproject/hil => " + root + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "test", "-count=1", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "HIL_TARGETS=user", "HIL_PLATFORMS=linux/amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test of the written suite: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "build", "hil-report", report.JSONFile))
	if err != nil {
		t.Fatalf("the suite wrote no report: %v", err)
	}
	validates(t, "the suite's results.json", schemas.Results, string(b))
	rep, err := report.ReadDir(filepath.Join(dir, "build", "hil-report"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Total != 1 || rep.Summary.Pass != 1 || rep.Results[0].Verdict != scenario.Pass {
		t.Errorf("the suite's report: %+v", rep.Summary)
	}
}

func lintWorkflow(t *testing.T, path string) {
	t.Helper()
	testenv.RequireCommand(t, "/usr/bin/shellcheck", "shellcheck")
	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{Shellcheck: "/usr/bin/shellcheck", Color: actionlint.ColorOptionKindNever, Oneline: true})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintFiles([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("%s:%d:%d: %s [%s]", e.Filepath, e.Line, e.Column, e.Message, e.Kind)
	}
}
