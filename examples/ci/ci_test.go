// Package ci_test checks the CI examples a team copies into its own
// repository: the GitHub Actions workflows pass actionlint (with
// shellcheck on their scripts), and the sharded examples agree with
// themselves and with hil's command line.
package ci_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"gopkg.in/yaml.v3"

	"github.com/hilproject/hil/internal/testenv"
)

func TestWorkflowsPassActionlint(t *testing.T) {
	testenv.RequireCommand(t, "/usr/bin/shellcheck", "shellcheck")
	files, err := filepath.Glob("*.yml")
	if err != nil || len(files) < 3 {
		t.Fatalf("workflows: %v %v", files, err)
	}
	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{
		Shellcheck: "/usr/bin/shellcheck", ConfigFile: "actionlint.yaml", Color: actionlint.ColorOptionKindNever, Oneline: true})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintFiles(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("%s:%d:%d: %s [%s]", e.Filepath, e.Line, e.Column, e.Message, e.Kind)
	}
}

// The sharded workflow runs a shard per matrix entry, SHARDS of them,
// uploads each report, merges them all, gates on the merged results, and
// installs hil with go install, caches ~/.cache/hil, sets
// HIL_DEBIAN_MIRROR, asks for what a push needs and publishes JUnit.
func TestShardedWorkflow(t *testing.T) {
	b, err := os.ReadFile("sharded-gate.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Permissions map[string]string
		Env         map[string]string
		Jobs        map[string]struct {
			Needs    any
			Strategy struct {
				Matrix struct{ Shard []int }
			}
			Steps []struct {
				Uses string
				Run  string
				With map[string]any
			}
		}
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(wf.Env["SHARDS"])
	if err != nil {
		t.Fatalf("SHARDS: %v", err)
	}
	if got := wf.Jobs["shard"].Strategy.Matrix.Shard; !slices.Equal(got, seq(n)) {
		t.Errorf("matrix shards %v; SHARDS is %d", got, n)
	}
	if wf.Permissions["packages"] != "write" || wf.Permissions["checks"] != "write" {
		t.Errorf("permissions %v: a push needs packages: write, the JUnit check checks: write", wf.Permissions)
	}
	if wf.Env["HIL_DEBIAN_MIRROR"] == "" {
		t.Error("no HIL_DEBIAN_MIRROR for Ubuntu runners")
	}
	all := string(b)
	for _, want := range []string{
		"go install \"github.com/hilproject/hil/cmd/hil@${HIL_VERSION}\"",
		"path: ~/.cache/hil",
		`--shard "$SHARD/$SHARDS"`,
		"name: hil-report-${{ matrix.shard }}",
		"pattern: hil-report-*",
		"hil report merge",
		"--results merged",
		"--promote latest",
		"report_paths: merged/junit.xml",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("sharded-gate.yml lacks %q", want)
		}
	}
	checkFlags(t, "sharded-gate.yml", all)
}

// The Kubernetes example: an Indexed Job of n pods whose shard comes from
// JOB_COMPLETION_INDEX, and a gate Job that merges all n.
func TestKubernetesIndexedJob(t *testing.T) {
	b, err := os.ReadFile("k8s-sharded-gate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type job struct {
		Kind     string
		Metadata struct {
			Name   string
			Labels map[string]string
		}
		Spec struct {
			CompletionMode string `yaml:"completionMode"`
			Completions    int
			Parallelism    int
			Template       struct {
				Spec struct {
					Containers []struct {
						Env  []struct{ Name, Value string }
						Args []string
					}
				}
			}
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	jobs := map[string]job{}
	for {
		var j job
		if err := dec.Decode(&j); err != nil {
			break
		}
		if j.Kind == "Job" {
			jobs[j.Metadata.Name] = j
		}
	}
	shards, gate := jobs["hil-shards"], jobs["hil-gate"]
	if shards.Spec.CompletionMode != "Indexed" || shards.Spec.Completions < 2 || shards.Spec.Parallelism != shards.Spec.Completions {
		t.Fatalf("hil-shards: %+v", shards.Spec)
	}
	for name, j := range map[string]job{"hil-shards": shards, "hil-gate": gate} {
		c := j.Spec.Template.Spec.Containers
		if len(c) != 1 {
			t.Fatalf("%s: %d containers", name, len(c))
		}
		for _, e := range c[0].Env {
			if e.Name == "SHARDS" && e.Value != strconv.Itoa(shards.Spec.Completions) {
				t.Errorf("%s: SHARDS=%s but the Job has %d completions", name, e.Value, shards.Spec.Completions)
			}
		}
	}
	script := strings.Join(shards.Spec.Template.Spec.Containers[0].Args, "\n")
	if !strings.Contains(script, "$((JOB_COMPLETION_INDEX + 1))") || !strings.Contains(script, `--shard "$i/$SHARDS"`) {
		t.Errorf("the shard pods do not take their shard from JOB_COMPLETION_INDEX:\n%s", script)
	}
	gateScript := strings.Join(gate.Spec.Template.Spec.Containers[0].Args, "\n")
	if !strings.Contains(gateScript, "hil report merge") || !strings.Contains(gateScript, "--results /reports/merged") {
		t.Errorf("the gate Job does not merge and decide from the merged results:\n%s", gateScript)
	}
	if shards.Metadata.Labels["step"] != "shards" || gate.Metadata.Labels["step"] != "gate" {
		t.Error("the Jobs lack the step labels the header's kubectl apply -l uses")
	}
	checkFlags(t, "k8s-sharded-gate.yaml", string(b))
}

var hilFlag = regexp.MustCompile(`--[a-z][a-z-]+`)

// checkFlags: every --flag the example passes to hil is one of hil's, so a
// renamed flag breaks this test, not a team's pipeline.
func checkFlags(t *testing.T, file, text string) {
	t.Helper()
	known := map[string]bool{}
	root := testenv.RepoRoot(t)
	for _, f := range []string{"flags.go", "gate.go", "run.go", "report.go", "watch.go", "rollback.go"} {
		src, err := os.ReadFile(filepath.Join(root, "cmd", "hil", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`Var[P]?\([^,]+, "([a-z-]+)"`).FindAllStringSubmatch(string(src), -1) {
			known["--"+m[1]] = true
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if !strings.Contains(line, "hil ") && !strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		if strings.Contains(line, "apt-get") || strings.Contains(line, "kubectl") || strings.Contains(line, "--from") {
			continue
		}
		for _, f := range hilFlag.FindAllString(line, -1) {
			if !known[f] {
				t.Errorf("%s: hil has no flag %s (line %q)", file, f, strings.TrimSpace(line))
			}
		}
	}
}

// The seed's pipeline: the Rust app cross-built by its Dockerfile, the
// gate with a canary stage on the boards tagged canary before latest
// moves, then a health window with rollback on a fleet board; every hil
// flag it passes exists.
func TestRustCanaryWorkflow(t *testing.T) {
	b, err := os.ReadFile("rust-canary.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Needs  any
			RunsOn any `yaml:"runs-on"`
			Steps  []struct {
				Uses string
				Run  string
				With map[string]any
			}
		}
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	for _, job := range []string{"build", "gate-canary-promote", "watch-fleet"} {
		if _, ok := wf.Jobs[job]; !ok {
			t.Fatalf("rust-canary.yml has no job %s", job)
		}
	}
	var built bool
	for _, s := range wf.Jobs["build"].Steps {
		if strings.HasPrefix(s.Uses, "docker/build-push-action") && s.With["file"] == "images/pcapwatch-rs/Dockerfile" &&
			strings.Contains(s.With["platforms"].(string), "linux/arm/v7") {
			built = true
		}
	}
	if !built {
		t.Error("the build job does not cross-build images/pcapwatch-rs/Dockerfile for linux/arm/v7")
	}
	all := string(b)
	for _, want := range []string{
		"--canary canary",
		"--canary-boards tag:canary",
		"--promote latest",
		"build/hil watch",
		"--rollback",
		"--key cosign.pub",
		"--image \"$IMAGE@$DIGEST\"",
		"${{ needs.build.outputs.digest }}",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("rust-canary.yml lacks %q", want)
		}
	}
	checkFlags(t, "rust-canary.yml", all)
}

func seq(n int) []int {
	var s []int
	for i := 1; i <= n; i++ {
		s = append(s, i)
	}
	return s
}
