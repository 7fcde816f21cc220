package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/startup"
)

// The files hil init writes, relative to --dir.
const (
	initScenario = "scenarios/startup.yaml"
	initSuite    = "suite_test.go"
	initWorkflow = ".github/workflows/hil.yml"
)

func init() {
	var (
		imageRef, dir, ready string
		insecure, asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "init --image REF [--dir DIR] [--ready REGEX]",
		Short: "Start testing your own image: a startup scenario, a Go test suite and a CI workflow",
		Example: `  hil init --image registry.lan/pcapwatch:latest
  hil init --image oci:build/images/tcpdump --dir hil --ready '^listening on '
  hil init --image registry.lan/pcapwatch:latest --json   # what it found and wrote`,
		Long: `Inspects the image (its platforms, entrypoint and command, the static
startup check on each platform) and writes, under --dir:

  scenarios/startup.yaml      the app starts within its budget, prints its ready
                              line and no panic (the image's facts in comments)
  suite_test.go               every scenario × target × platform as a Ginkgo spec
                              (harness/hilginkgo), reports in build/hil-report
  .github/workflows/hil.yml   a GitHub Actions job running the suite with hil run

A file that exists is kept as it is, never overwritten: re-running init
only adds what is missing. Edit the scenario (the ready line your app
prints, then the steps it must pass; the format is scenarios/README.md in
hil's repository), then:

  hil run --image REF scenarios       # or: go test ./...

suite_test.go needs a Go module that requires github.com/hilproject/hil;
init says how to make one when --dir is in none.

Exit status: 0 the files are there, 2 the image could not be opened or a
file could not be written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if imageRef == "" {
				return &exitError{2, errNeedImage}
			}
			return runInit(cmd, initOptions{image: imageRef, dir: dir, ready: ready, asJSON: asJSON,
				imageOpts: []image.Option{image.WithRegistry(registryAccess(insecure))}})
		},
	}
	f := cmd.Flags()
	f.SetNormalizeFunc(normalizeFlags)
	addImageFlag(f, &imageRef, "")
	f.StringVar(&dir, "dir", ".", "write the files under this directory (your repository, or a folder of it)")
	f.StringVar(&ready, "ready", `^ready `, "the regular expression of the line your app prints once it is ready (hil's default)")
	f.BoolVar(&insecure, "insecure", false, insecureUsage)
	addJSONFlag(f, &asJSON)
	rootCmd.AddCommand(cmd)
}

type initOptions struct {
	image, dir, ready string
	asJSON            bool
	imageOpts         []image.Option
}

// initOutput is hil init --json (schemas/cli.schema.json#/$defs/init).
type initOutput struct {
	Ref       string          `json:"ref"`
	Digest    string          `json:"digest"`
	Platforms []string        `json:"platforms"`
	Checks    []initCheckJSON `json:"checks"`
	Files     []initFileJSON  `json:"files"`
}

type initCheckJSON struct {
	Platform string   `json:"platform"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems"`
}

type initFileJSON struct {
	Path string `json:"path"`
	// Written is false when the file was there and kept.
	Written bool `json:"written"`
}

// initFacts is what init learned about the image, for the templates.
type initFacts struct {
	Ref, Digest, Name, Ready, Package, Version string
	Entrypoint, Cmd                            string
	Platforms                                  []string // every platform of the image
	Run                                        []string // the platforms the scenario runs: the ARM ones, or all
	Targets                                    []string
	Checks                                     []initCheck
}

type initCheck struct {
	Platform string
	Problems []string
}

func runInit(cmd *cobra.Command, o initOptions) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	art, err := image.Open(ctx, o.image, o.imageOpts...)
	if err != nil {
		return &exitError{2, fmt.Errorf("init: opening %s: %w", o.image, err)}
	}
	facts := initFacts{Ref: o.image, Digest: art.Digest.String(), Name: imageName(o.image), Ready: o.ready, Version: hilVersion()}
	for _, p := range art.Platforms() {
		ps := p.String()
		facts.Platforms = append(facts.Platforms, ps)
		if p.Architecture == "arm" || p.Architecture == "arm64" {
			facts.Run = append(facts.Run, ps)
		}
		img, err := art.Image(ps)
		if err != nil {
			return &exitError{2, fmt.Errorf("init: %w", err)}
		}
		if facts.Entrypoint == "" && facts.Cmd == "" {
			facts.Entrypoint, facts.Cmd = yamlList(img.Config.Entrypoint), yamlList(img.Config.Cmd)
		}
		root, err := img.RootFS(ctx)
		if err != nil {
			return &exitError{2, fmt.Errorf("init: flattening %s for %s: %w", o.image, ps, err)}
		}
		rep, err := startup.Check(ctx, root, startup.ConfigFor(ps, img.Config))
		if err != nil {
			return &exitError{2, fmt.Errorf("init: static check of %s for %s: %w", o.image, ps, err)}
		}
		c := initCheck{Platform: ps}
		for _, pr := range rep.Problems {
			c.Problems = append(c.Problems, pr.Message)
		}
		facts.Checks = append(facts.Checks, c)
	}
	if len(facts.Platforms) == 0 {
		return &exitError{2, fmt.Errorf("init: %s names no platform", o.image)}
	}
	// ARM images run on the full-system emulator; an image with no ARM
	// platform runs natively on the user target.
	facts.Targets = []string{"system", "user"}
	if len(facts.Run) == 0 {
		facts.Run, facts.Targets = facts.Platforms, []string{"user"}
	}
	facts.Package = testPackage(o.dir)
	js := initOutput{Ref: o.image, Digest: facts.Digest, Platforms: facts.Platforms, Checks: []initCheckJSON{}}
	for _, c := range facts.Checks {
		js.Checks = append(js.Checks, initCheckJSON{Platform: c.Platform, OK: len(c.Problems) == 0, Problems: append([]string{}, c.Problems...)})
	}
	if o.asJSON {
		out = io.Discard // the text goes nowhere; the document says it all
	}

	fmt.Fprintf(out, "hil init: %s (%s), platforms %s\n", o.image, facts.Digest, strings.Join(facts.Platforms, ", "))
	for _, c := range facts.Checks {
		if len(c.Problems) == 0 {
			fmt.Fprintf(out, "  static startup check %s: the program can start\n", c.Platform)
		} else {
			fmt.Fprintf(out, "  static startup check %s: %d problem(s), the first: %s\n", c.Platform, len(c.Problems), c.Problems[0])
		}
	}
	for _, f := range []struct {
		path string
		tmpl *template.Template
	}{{initScenario, scenarioTmpl()}, {initSuite, suiteTmpl()}, {initWorkflow, workflowTmpl()}} {
		var b bytes.Buffer
		if err := f.tmpl.Execute(&b, facts); err != nil {
			return &exitError{2, fmt.Errorf("init: %s: %w", f.path, err)}
		}
		path := filepath.Join(o.dir, filepath.FromSlash(f.path))
		wrote, err := writeNew(path, b.Bytes())
		if err != nil {
			return &exitError{2, fmt.Errorf("init: %w", err)}
		}
		js.Files = append(js.Files, initFileJSON{Path: path, Written: wrote})
		if wrote {
			fmt.Fprintf(out, "  wrote %s\n", path)
		} else {
			fmt.Fprintf(out, "  kept %s (it exists; init never overwrites)\n", path)
		}
	}
	printInitNext(out, o, facts)
	if o.asJSON {
		if err := printJSON(cmd.OutOrStdout(), js); err != nil {
			return &exitError{2, err}
		}
	}
	return nil
}

func printInitNext(out io.Writer, o initOptions, facts initFacts) {
	fmt.Fprintf(out, "next:\n  edit %s: the line your app prints when it is ready (now %q), then its steps\n",
		filepath.Join(o.dir, filepath.FromSlash(initScenario)), o.ready)
	fmt.Fprintf(out, "  hil run --image %s %s\n", o.image, filepath.Join(o.dir, "scenarios"))
	if !inModule(o.dir) {
		fmt.Fprintf(out, "  %s is in no Go module; for go test: cd %s && go mod init example.com/%s-hil && go get github.com/hilproject/hil && go mod tidy\n",
			o.dir, o.dir, facts.Name)
	}
	fmt.Fprintf(out, "  go test ./...   (HIL_TARGETS=user HIL_PLATFORMS=linux/amd64 for a quick native run of an amd64 build)\n")
}

// writeNew writes data to path unless a file is there already (O_EXCL: a
// file made meanwhile is kept too); it says whether it wrote.
func writeNew(path string, data []byte) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("making the directory of %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path) // a half-written file would be kept by the next run
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	return true, nil
}

// imageName is the repository's last element: "pcapwatch" for
// registry.lan/team/pcapwatch:latest and oci:build/images/pcapwatch.
func imageName(ref string) string {
	r := strings.TrimPrefix(strings.TrimPrefix(ref, "oci:"), "docker-archive:")
	if i := strings.IndexByte(r, '@'); i >= 0 {
		r = r[:i]
	}
	r = strings.TrimSuffix(r, "/")
	if i := strings.LastIndexByte(r, '/'); i >= 0 {
		r = r[i+1:]
	}
	if i := strings.IndexByte(r, ':'); i >= 0 {
		r = r[:i]
	}
	r = strings.TrimSuffix(r, ".tar")
	if r == "" {
		return "app"
	}
	return r
}

// testPackage is the package name suite_test.go must have in dir: the
// external test package of the Go code there, or hil_test.
func testPackage(dir string) string {
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.PackageClauseOnly)
	if err == nil {
		for name := range pkgs {
			return name + "_test"
		}
	}
	return "hil_test"
}

// inModule reports whether dir or a parent holds a go.mod.
func inModule(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		if _, err := os.Stat(filepath.Join(abs, "go.mod")); err == nil {
			return true
		}
		parent := filepath.Dir(abs)
		if parent == abs {
			return false
		}
		abs = parent
	}
}

func yamlList(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = strconv.Quote(w)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

var initFuncs = template.FuncMap{
	"join":  strings.Join,
	"quote": strconv.Quote,
	"list":  yamlList,
}

// scenarioTmpl is parsed on first use: every hil process would pay for it at init.
var scenarioTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("scenario").Funcs(initFuncs).Parse(`# Written by hil init {{.Version}} for {{.Ref}}
# ({{.Digest}}).
# A first scenario to start from. Edit it: set the line your app
# prints once it is ready, then add the steps it must pass
# (replay a capture, expect output lines or frames, send a signal, expect
# the exit). The format: scenarios/README.md in hil's repository; editors
# can use its scenarios/schema.json.
#
# What hil found in the image:
#   platforms:  {{join .Platforms ", "}}
#   entrypoint: {{.Entrypoint}}
#   cmd:        {{.Cmd}}
{{- range .Checks}}
#   static startup check {{.Platform}}: {{if .Problems}}{{len .Problems}} problem(s):{{range .Problems}}
#     - {{.}}{{end}}{{else}}the program can start{{end}}
{{- end}}
name: startup
description: {{.Name}} starts within its budget, prints its ready line and no panic
tags: [smoke, startup]
targets: {{list .Targets}}
platforms: {{list .Run}}
startup:
  budget: 30s
  # The line your app prints once it is ready (a Go regular expression).
  ready: {regex: {{quote .Ready}}}
steps:
  - wait: 1s
  - name: no panic or fatal error during the run
    expect_no_output: {regex: "(?i)panic|fatal|segmentation fault"}
`))
})

// suiteTmpl is parsed on first use: every hil process would pay for it at init.
var suiteTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("suite").Funcs(initFuncs).Parse(`// Written by hil init {{.Version}}: every scenario × target × platform of
// scenarios/ is a Ginkgo spec, labelled with its target, platform and
// tags (ginkgo --label-filter='system && smoke'). HIL_IMAGE, HIL_TARGETS,
// HIL_PLATFORMS and HIL_REPORT_DIR override what runs and where the
// reports go (hilginkgo.FromEnv).
package {{.Package}}

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/hilginkgo"
)

func TestHIL(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, {{quote .Name}}+" on hil")
}

var _ = hilginkgo.Specs(harness.Config{
	Image:     {{quote .Ref}},
	Scenarios: []string{"scenarios"},
}, hilginkgo.FromEnv())

// junit.xml, results.json and report.html of every spec, also under
// ginkgo -p.
var _ = hilginkgo.Reports("build/hil-report")
`))
})

// workflowTmpl is parsed on first use: every hil process would pay for it at init.
var workflowTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("workflow").Funcs(initFuncs).Parse(`# Written by hil init {{.Version}}: runs scenarios/ against the image on
# every push and pull request, on hil's emulated ARM board, and keeps the
# reports (JUnit, JSON, HTML, guest console logs) whatever the outcome.
# Set IMAGE to the image your build pushes; registry credentials come from
# docker login (hil reads the Docker config).
name: hil

on:
  push:
  pull_request:

permissions:
  contents: read

env:
  IMAGE: {{quote .Ref}}
  HIL_VERSION: latest

jobs:
  hil:
    runs-on: ubuntu-24.04
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@v4

      - uses: actions/setup-go@v5
        with:
          go-version: stable

      - name: Install hil and what it runs (QEMU, libpcap)
        run: |
          sudo apt-get update
          sudo apt-get install -y --no-install-recommends qemu-system-arm qemu-user-static libpcap-dev debian-archive-keyring
          go install "github.com/hilproject/hil/cmd/hil@${HIL_VERSION}"

      - name: Cache hil's kernels, rootfs and snapshots
        uses: actions/cache@v4
        with:
          path: ~/.cache/hil
          key: hil-${{"{{"}} runner.os {{"}}"}}-${{"{{"}} hashFiles('scenarios/**') {{"}}"}}
          restore-keys: hil-${{"{{"}} runner.os {{"}}"}}-

      - name: hil run
        run: sudo --preserve-env=PATH,HOME "$(go env GOPATH)/bin/hil" run --image "$IMAGE" --report build/hil-report --progress plain scenarios

      - name: Keep the reports
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: hil-report
          path: build/hil-report
`))
})
