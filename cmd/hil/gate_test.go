package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/promote/scenariogate"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/schemas"
)

func fakeTester(verdict promote.Verdict, reason string) func(*gateFlags) (promote.TestFunc, error) {
	return func(f *gateFlags) (promote.TestFunc, error) {
		return func(ctx context.Context, p promote.Pinned) (promote.Result, error) {
			res := promote.Result{Targets: f.targets, Started: time.Now(), ReportDir: f.report}
			for _, pl := range p.Platforms {
				res.Outcomes = append(res.Outcomes, promote.Outcome{
					Platform: pl.String(), Target: f.targets[0], Board: scenariogate.Board(f.targets[0]), Scenario: "dhcp-basic", Verdict: verdict, Reason: reason})
			}
			res.Finished = time.Now()
			return res, nil
		}, nil
	}
}

func pushArmIndex(t *testing.T, ref string) v1.Hash {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = "linux", "arm", "v7"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	p := v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add: img, Descriptor: v1.Descriptor{Platform: &p}}), types.OCIImageIndex)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	h, _ := idx.Digest()
	return h
}

func TestGateCLIPromotesRefusesAndAttestShowRoundTrips(t *testing.T) {
	reg := testenv.Registry(t)
	defer func(old func(*gateFlags) (promote.TestFunc, error)) { gateTester = old }(gateTester)
	cand := reg.Host + "/pcapwatch:candidate"
	good := pushArmIndex(t, cand)
	report := t.TempDir()

	gateTester = fakeTester(promote.Pass, "")
	out, errOut, code := runHilStderr(t, "gate", "--image", cand, "--promote", "latest", "--report", report)
	if code != 0 {
		t.Fatalf("gate exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, s := range []string{"gate: PROMOTED", "old digest (none)", "new digest " + good.String(), "report " + report} {
		if !strings.Contains(flat, s) {
			t.Errorf("gate output lacks %q:\n%s", s, out)
		}
	}
	var dec promote.Decision
	if b, err := os.ReadFile(filepath.Join(report, "decision.json")); err != nil || json.Unmarshal(b, &dec) != nil || !dec.Promoted {
		t.Errorf("decision.json missing or not promoted: %v", err)
	}
	for _, f := range []struct{ name, loc string }{{"decision.json", schemas.Decision}, {"results.json", schemas.Results}} {
		b, _ := os.ReadFile(filepath.Join(report, f.name))
		validates(t, "a promoting gate's "+f.name, f.loc, string(b))
	}

	out, errOut, code = runHilStderr(t, "attest", "show", reg.Host+"/pcapwatch:latest")
	if code != 0 || !strings.Contains(out, "@"+good.String()) || !strings.Contains(out, "PASSED") || !strings.Contains(out, "dhcp-basic") || !strings.Contains(out, "UNSIGNED") {
		t.Fatalf("attest show exit %d:\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = runHilStderr(t, "attest", "show", "--json", reg.Host+"/pcapwatch@"+good.String())
	validates(t, "hil attest show --json", schemas.Def("attest_show"), out)
	var shown struct{ Attestations []entryJSON }
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || len(shown.Attestations) != 2 {
		t.Fatalf("attest show --json exit %d, want 2 entries: %s\n%s", code, out, errOut)
	}
	st, err := attest.ParseStatement(shown.Attestations[0].Statement)
	if err != nil || st.GetSubject()[0].GetDigest()["sha256"] != good.Hex || st.GetPredicateType() != attest.TestResultPredicateType {
		t.Fatalf("attest show --json: first statement %v, %v", st, err)
	}
	if tr, err := attest.ParseTestResult(st); err != nil || tr.GetResult() != attest.Passed || len(tr.GetPassedTests()) != 1 || tr.GetPassedTests()[0] != "dhcp-basic/system/virt/linux/arm/v7" {
		t.Fatalf("test result %v, %v", tr, err)
	}

	// A failing candidate: exit 1, the reason names the scenario, latest stays.
	pushArmIndex(t, cand)
	gateTester = fakeTester(promote.Fail, "pcapwatch needs GLIBC_2.34 but the image's libc.so.6 provides up to GLIBC_2.31")
	refused := t.TempDir()
	out, errOut, code = runHilStderr(t, "gate", "--image", cand, "--promote", "latest", "--report", refused)
	if b, _ := os.ReadFile(filepath.Join(refused, "decision.json")); true {
		validates(t, "a refusing gate's decision.json", schemas.Decision, string(b))
	}
	if code != 1 || !strings.Contains(out, "gate: REFUSED") || !strings.Contains(out, "GLIBC_2.34") || !strings.Contains(out, "dhcp-basic") {
		t.Fatalf("failing gate exit %d, want 1 with the reason:\n%s\n%s", code, out, errOut)
	}
	out, _, code = runHilStderr(t, "registry", "digest", reg.Host+"/pcapwatch:latest")
	if code != 0 || strings.TrimSpace(out) != good.String() {
		t.Fatalf("latest after refusal = %q (exit %d), want %s", out, code, good)
	}

	// Dry run of a passing candidate: exit 0, nothing written; its --json
	// is decision.json's document.
	gateTester = fakeTester(promote.Pass, "")
	out, _, code = runHilStderr(t, "gate", "--dry-run", "--image", cand, "--promote", "latest", "--report", t.TempDir(), "--json")
	if code != 0 || !strings.Contains(out, "WOULD PROMOTE") {
		t.Fatalf("dry run exit %d:\n%s", code, out)
	}
	validates(t, "hil gate --dry-run --json", schemas.Decision, out)

	// rollback in JSON: latest has no earlier digest to go back to.
	r := execHil(t, "rollback", "--tag", reg.Host+"/pcapwatch:latest", "--json")
	if r.code != 1 {
		t.Errorf("rollback with nowhere to go: exit %d (%s), want 1:\n%s", r.code, r.errText, r.stdout)
	}
	validates(t, "hil rollback --json", schemas.Def("rollback"), r.stdout)
	out, _, _ = runHilStderr(t, "registry", "digest", reg.Host+"/pcapwatch:latest")
	if strings.TrimSpace(out) != good.String() {
		t.Fatalf("dry run moved latest to %s", out)
	}

	// Errors exit 2: --insecure for a remote registry, an unreachable registry.
	if _, errOut, code := runHilStderr(t, "gate", "--insecure", "--image", "registry.example.com/app:c", "--promote", "latest"); code != 2 || !strings.Contains(errOut, "loopback") {
		t.Errorf("--insecure remote: exit %d, %s", code, errOut)
	}
	reg.Stop()
	if _, errOut, code := runHilStderr(t, "gate", "--image", cand, "--promote", "latest", "--report", t.TempDir()); code != 2 {
		t.Errorf("registry down: exit %d, want 2: %s", code, errOut)
	}
}

// The sample images through `hil gate` with the real scenario runner on the
// full-system ARM target: the good image is promoted to exactly its digest;
// every broken variant — those that only show at run time (crash-on-start,
// slow-start) and those the runner's static check catches before booting
// (old-glibc, no-libpcap, no-loader, wrong-arch) — is refused with its
// reason, latest unchanged. Only the startup scenario runs, to keep it fast.
func TestGateWithTheRealRunnerOnSampleImages(t *testing.T) {
	images := testenv.ImagesDir(t)
	if _, err := harness.NewTarget("system"); err != nil {
		t.Skipf("the system target is not wired into harness.NewTarget yet: %v", err)
	}
	reg := testenv.Registry(t)
	scen := t.TempDir()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "scenarios", "startup.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scen, "startup.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	repo := reg.Host + "/pcapwatch"
	push := func(variant string) string {
		t.Helper()
		out, errOut, code := runHilStderr(t, "registry", "push", filepath.Join(images, variant), repo+":candidate")
		if code != 0 {
			t.Fatalf("pushing %s: %s", variant, errOut)
		}
		return strings.TrimSpace(out[strings.Index(out, "@")+1:])
	}
	latest := func() string {
		out, _, _ := runHilStderr(t, "registry", "digest", repo+":latest")
		return strings.TrimSpace(out)
	}
	gate := func() (string, int) {
		out, errOut, code := runHilStderr(t, "gate", "--image", repo+":candidate", "--scenarios", scen,
			"--target", "system", "--promote", "latest", "--retries", "1", "--report", t.TempDir())
		return out + errOut, code
	}

	good := push("pcapwatch")
	if out, code := gate(); code != 0 {
		t.Fatalf("good image: exit %d, want 0:\n%s", code, out)
	}
	if got := latest(); got != good {
		t.Fatalf("latest = %s, want the tested %s", got, good)
	}
	for _, c := range []struct{ variant, reason string }{
		{"crash-on-start", "config.toml"},
		{"slow-start", "ready"},
		{"old-glibc", "GLIBC_2.34"},
		{"no-libpcap", "libpcap.so.0.8"},
		{"no-loader", "ld-linux-armhf.so.3"},
		{"wrong-arch", "AArch64"},
	} {
		push(c.variant)
		out, code := gate()
		if code != 1 || !strings.Contains(out, "gate: REFUSED") || !strings.Contains(out, c.reason) {
			t.Errorf("%s: exit %d, want 1 (refused, mentioning %q):\n%s", c.variant, code, c.reason, out)
		}
		if got := latest(); got != good {
			t.Fatalf("%s moved latest to %s, want unchanged %s", c.variant, got, good)
		}
	}
}

// hil gate against a registry with htpasswd auth, credentials from the
// Docker config: it works, and the password appears nowhere in what it
// prints or leaves in the report directory (nor in the attestation).
func TestGateCLIWithHtpasswdLeaksNoPassword(t *testing.T) {
	const user, pass = "gatebot", "Tr0ub4dor-and-3-horses"
	reg := testenv.Registry(t, testenv.WithHtpasswd(user, pass))
	defer func(old func(*gateFlags) (promote.TestFunc, error)) { gateTester = old }(gateTester)
	cfgDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{"`+reg.Host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)
	cand := reg.Host + "/pcapwatch:candidate"
	var images string
	var variant string
	// With the sample images the static check really opens the image with
	// the credentials; without them a fake test stands in.
	if dir := os.Getenv("HIL_IMAGES"); dir != "" || fileExists(filepath.Join(testenv.RepoRoot(t), "build", "images", "pcapwatch", "index.json")) {
		images = testenv.ImagesDir(t)
		variant = "static"
		if _, errOut, code := runHilStderr(t, "registry", "push", filepath.Join(images, "pcapwatch"), cand); code != 0 {
			t.Fatalf("push with credentials: %s", errOut)
		}
	} else {
		variant = "system"
		gateTester = fakeTester(promote.Pass, "")
		pushArmIndex(t, cand)
	}
	report := t.TempDir()
	out, errOut, code := runHilStderr(t, "gate", "--image", cand, "--promote", "latest", "--target", variant, "--report", report)
	if code != 0 {
		t.Fatalf("gate with credentials: exit %d\n%s\n%s", code, out, errOut)
	}
	att, _, code := runHilStderr(t, "attest", "show", "--json", cand)
	if code != 0 {
		t.Fatalf("attest show: exit %d", code)
	}
	texts := map[string]string{"stdout": out, "stderr": errOut, "attestation": att}
	_ = filepath.WalkDir(report, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			texts[p] = string(b)
		}
		return nil
	})
	if len(texts) < 4 {
		t.Fatalf("the report dir %s is empty", report)
	}
	for what, s := range texts {
		for _, secret := range []string{pass, auth} {
			if strings.Contains(s, secret) {
				t.Errorf("%s contains the password", what)
			}
		}
	}

	// Without the Docker config the registry says no, and hil says so.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	if _, errOut, code := runHilStderr(t, "gate", "--image", cand, "--promote", "latest", "--target", variant, "--report", t.TempDir()); code != 2 ||
		!strings.Contains(strings.ToLower(errOut), "unauthorized") {
		t.Errorf("gate without credentials: exit %d, %s", code, errOut)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// A board inventory without the board is an input error found before
// anything is pinned (no registry is reachable here).
func TestGateDeviceInventoryErrors(t *testing.T) {
	scen := filepath.Join(testenv.RepoRoot(t), "scenarios")
	devices := filepath.Join(t.TempDir(), "devices.yaml")
	if err := os.WriteFile(devices, []byte("boards:\n  - name: pi-lab-1\n    host: 192.0.2.10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ devices, board, want string }{
		{devices, "pi-lab-9", `no board "pi-lab-9" in ` + devices + "; it lists: pi-lab-1"},
		{devices + ".missing", "pi-lab-1", "reading the board inventory"},
	} {
		_, errOut, code := runHilStderr(t, "gate", "--image", "127.0.0.1:1/app:candidate", "--promote", "latest",
			"--scenarios", scen, "--target", "device", "--devices", tc.devices, "--device", tc.board, "--report", t.TempDir())
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("--devices %s --device %s: exit %d, stderr %q; want 2 and %q", tc.devices, tc.board, code, errOut, tc.want)
		}
	}
}
