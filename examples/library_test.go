// Package examples_test checks examples/library, the module a team would
// write to test its image with hil from Go: it is copied to a temp dir
// with its replace pointing at this checkout and run as its owner would,
// with plain `go test` and with `ginkgo -p` (the CLI built from the
// Ginkgo version in go.mod), and the README's snippets must be its code.
package examples_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/testenv"
)

// The README shows each file of examples/library it refers to in a go
// block right after a marker line <!-- examples/library/FILE -->.
func TestREADMESnippetsAreTheExampleModule(t *testing.T) {
	root := testenv.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- (examples/library/[^ ]+) -->\n```go\n(.*?)```\n")
	found := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(readme), -1) {
		file, snippet := m[1], m[2]
		found[file] = true
		code, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Errorf("README shows %s: %v", file, err)
			continue
		}
		if string(code) != snippet {
			t.Errorf("README's %s differs from the file:\n--- README\n%s\n--- %s\n%s", file, snippet, file, code)
		}
	}
	for _, f := range []string{"examples/library/image_test.go", "examples/library/specs/specs_test.go"} {
		if !found[f] {
			t.Errorf("README does not show %s", f)
		}
	}
}

func TestLibraryModule(t *testing.T) {
	testenv.RequireRoot(t) // the user target's network namespaces
	root := testenv.RepoRoot(t)
	images := testenv.ImagesDir(t)
	dir := t.TempDir()
	copyModule(t, filepath.Join(root, "examples", "library"), dir)
	gomod := filepath.Join(dir, "go.mod")
	b, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("=> ../.."), []byte("=> "+root), 1)
	if err := os.WriteFile(gomod, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// hil's own go.sum holds every module the example needs: with it and
	// the module cache, nothing is fetched (GOPROXY=off proves it).
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off",
		"HIL_IMAGE=oci:"+filepath.Join(images, "pcapwatch"), "HIL_TARGETS=user", "HIL_PLATFORMS=linux/amd64")
	run := func(dir string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cases := []string{"startup on user linux-amd64", "arp-sweep on user linux-amd64"}

	// Plain go test: one subtest per case that runs while it is reported,
	// so each has its own time (the runner does not run them all first).
	out := run(dir, "go", "test", "-count=1", "-v", ".")
	for _, c := range cases {
		name := "TestImage/" + strings.ReplaceAll(c, " ", "_")
		m := regexp.MustCompile(`--- PASS: ` + regexp.QuoteMeta(name) + ` \((\d+\.\d+)s\)`).FindStringSubmatch(out)
		if !strings.Contains(out, "=== RUN   "+name+"\n") || m == nil || m[1] == "0.00" {
			t.Errorf("go test: %s did not run as a subtest of its own and pass:\n%s", name, out)
		}
	}
	checkReport(t, filepath.Join(dir, "build", "report"), len(cases))

	// ginkgo -p: the report gathers the specs of both processes.
	ginkgo := filepath.Join(t.TempDir(), "ginkgo")
	run(root, "go", "build", "-o", ginkgo, "github.com/onsi/ginkgo/v2/ginkgo")
	if err := os.RemoveAll(filepath.Join(dir, "build")); err != nil {
		t.Fatal(err)
	}
	out = run(dir, ginkgo, "-p", "--procs=2", "-v", "./specs")
	for _, c := range cases {
		if !strings.Contains(out, c) {
			t.Errorf("ginkgo -p: no spec %q:\n%s", c, out)
		}
	}
	checkReport(t, filepath.Join(dir, "build", "report"), len(cases))
}

// checkReport: results.json in dir holds n passing cases of one image.
func checkReport(t *testing.T, dir string, n int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatalf("no report: %v", err)
	}
	var rep struct {
		ImageDigest string            `json:"image_digest"`
		Results     []scenario.Result `json:"results"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != n || !strings.HasPrefix(rep.ImageDigest, "sha256:") {
		t.Errorf("%s: %d results for %q, want %d", dir, len(rep.Results), rep.ImageDigest, n)
	}
	for _, r := range rep.Results {
		if r.Verdict != scenario.Pass {
			t.Errorf("%s: %s: %s", r.ID(), r.Verdict, r.Reason)
		}
	}
}

func copyModule(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			if d.Name() == "build" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
