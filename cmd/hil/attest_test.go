package main

import (
	"context"
	"crypto/elliptic"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/hilproject/hil/harness/attest"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/promote/scenariogate"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/schemas"
)

// cosignKeyPair writes an encrypted cosign-format key pair into dir.
func cosignKeyPair(t *testing.T, dir, password string) (string, string) {
	t.Helper()
	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc([]byte(password)))
	if err != nil {
		t.Fatal(err)
	}
	kp, pp := filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
	if err := os.WriteFile(kp, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pp, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return kp, pp
}

func repoTags(t *testing.T, repo string) string {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := remote.List(r)
	return strings.Join(ts, " ")
}

// hil gate --sign-key, then hil attest verify/show: the exit codes the
// help text promises (0 verified, 1 not, 2 bad input or unreachable), with
// the reason; show exits non-zero when the newest result is FAILED.
func TestAttestVerifyAndShowExitCodes(t *testing.T) {
	reg := testenv.Registry(t)
	defer func(old func(*gateFlags) (promote.TestFunc, error)) { gateTester = old }(gateTester)
	dir := t.TempDir()
	key, pub := cosignKeyPair(t, dir, "pw")
	otherDir := t.TempDir()
	_, otherPub := cosignKeyPair(t, otherDir, "pw")
	t.Setenv("COSIGN_PASSWORD", "pw")
	t.Setenv("GITHUB_SERVER_URL", "https://github.com")
	t.Setenv("GITHUB_REPOSITORY", "acme/pcapwatch")
	t.Setenv("GITHUB_RUN_ID", "4242")
	cand := reg.Host + "/pcapwatch:candidate"
	good := pushArmIndex(t, cand)

	gateTester = fakeTester(promote.Pass, "")
	out, errOut, code := runHilStderr(t, "gate", "--image", cand, "--promote", "latest", "--sign-key", key, "--report", t.TempDir())
	if code != 0 || strings.Contains(errOut, "UNSIGNED") {
		t.Fatalf("signed gate: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = runHilStderr(t, "attest", "verify", reg.Host+"/pcapwatch:latest", "--key", pub, "--require-board", "virt")
	if code != 0 || !strings.Contains(out, "verified: "+reg.Host+"/pcapwatch@"+good.String()) || !strings.Contains(out, "https://github.com/acme/pcapwatch/actions/runs/4242") {
		t.Fatalf("attest verify: exit %d\n%s\n%s", code, out, errOut)
	}
	// Verified (exit 0) and not (exit 1, another key) in JSON.
	for _, c := range []struct {
		key  string
		code int
	}{{pub, 0}, {otherPub, 1}} {
		r := execHil(t, "attest", "verify", reg.Host+"/pcapwatch:latest", "--key", c.key, "--json")
		if r.code != c.code {
			t.Errorf("attest verify --json with %s: exit %d (%s), want %d", c.key, r.code, r.errText, c.code)
		}
		validates(t, "hil attest verify --json", schemas.Def("attest_verify"), r.stdout)
	}
	out, errOut, code = runHilStderr(t, "attest", "show", "--key", pub, reg.Host+"/pcapwatch:latest")
	if code != 0 || strings.Count(out, "verified with "+pub) != 2 || !strings.Contains(out, "passed     dhcp-basic/system/virt/linux/arm/v7") {
		t.Fatalf("attest show --key: exit %d\n%s\n%s", code, out, errOut)
	}

	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"another board", []string{"--key", pub, "--require-board", "pi3b+"}, 1, "no passed test on board pi3b+"},
		{"another key", []string{"--key", otherPub}, 1, "does not verify"},
		{"WARNED is no required result", []string{"--key", pub, "--require-result", "FAILED"}, 2, "want PASSED or WARNED"},
		{"no --key", nil, 2, `"key" not set`},
		{"a private key as --key", []string{"--key", key}, 2, "is a private key"},
		{"a missing key file", []string{"--key", filepath.Join(dir, "nope.pub")}, 2, "no such file"},
	} {
		_, errOut, code := runHilStderr(t, append([]string{"attest", "verify", reg.Host + "/pcapwatch:latest"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", c.name, code, errOut, c.code, c.want)
		}
	}

	// A digest with no attestation: 1, saying where it looked.
	bare := pushArmIndex(t, reg.Host+"/pcapwatch:bare")
	_, errOut, code = runHilStderr(t, "attest", "verify", reg.Host+"/pcapwatch@"+bare.String(), "--key", pub)
	if code != 1 || !strings.Contains(errOut, "no test-result attestation") || !strings.Contains(errOut, ".att") {
		t.Errorf("no attestation: exit %d, %s", code, errOut)
	}
	if _, _, code = runHilStderr(t, "attest", "show", reg.Host+"/pcapwatch@"+bare.String()); code != 1 {
		t.Errorf("attest show without attestation: exit %d, want 1", code)
	}

	// A failing candidate: the gate refuses and records FAILED; show keeps
	// printing and exits 1; verify exits 1 naming the failed test.
	failing := pushArmIndex(t, cand)
	gateTester = fakeTester(promote.Fail, "saw 12 of 40")
	if _, _, code := runHilStderr(t, "gate", "--image", cand, "--promote", "latest", "--sign-key", key, "--report", t.TempDir()); code != 1 {
		t.Fatalf("failing gate: exit %d", code)
	}
	ref := reg.Host + "/pcapwatch@" + failing.String()
	out, errOut, code = runHilStderr(t, "attest", "show", ref)
	if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "saw 12 of 40") || !strings.Contains(errOut, "newest test result") {
		t.Errorf("attest show of a failed digest: exit %d\n%s\n%s", code, out, errOut)
	}
	_, errOut, code = runHilStderr(t, "attest", "verify", ref, "--key", pub)
	if code != 1 || !strings.Contains(errOut, "result FAILED") || !strings.Contains(errOut, "dhcp-basic/system/virt/linux/arm/v7") {
		t.Errorf("attest verify of a failed digest: exit %d, %s", code, errOut)
	}

	// Unreachable registry: 2.
	reg.Stop()
	if _, errOut, code := runHilStderr(t, "attest", "verify", ref, "--key", pub); code != 2 || !strings.Contains(errOut, "resolving") {
		t.Errorf("unreachable registry: exit %d, %s", code, errOut)
	}
	if _, _, code := runHilStderr(t, "attest", "show", ref); code != 2 {
		t.Errorf("attest show, unreachable registry: exit %d, want 2", code)
	}
}

// A bad --sign-key stops the gate before anything is pinned or written:
// exit 2, a clear error, the registry's tags unchanged. Without --sign-key
// the gate says loudly that the attestation is unsigned.
func TestGateSignKeyBadInputWritesNothing(t *testing.T) {
	reg := testenv.Registry(t)
	defer func(old func(*gateFlags) (promote.TestFunc, error)) { gateTester = old }(gateTester)
	gateTester = fakeTester(promote.Pass, "")
	dir := t.TempDir()
	key, pub := cosignKeyPair(t, dir, "right")
	garbage := filepath.Join(dir, "garbage.key")
	os.WriteFile(garbage, []byte("hello\n"), 0o600)
	cand := reg.Host + "/pcapwatch:candidate"
	pushArmIndex(t, cand)
	before := repoTags(t, reg.Host+"/pcapwatch")
	for _, c := range []struct {
		name, key, password string
		extra               []string
		want                string
	}{
		{"missing key", filepath.Join(dir, "none.key"), "right", nil, "no such file"},
		{"not a key", garbage, "right", nil, "not PEM"},
		{"public key", pub, "right", nil, "is a public key"},
		{"wrong password", key, "wrong", nil, "wrong COSIGN_PASSWORD"},
		{"KMS", "awskms:///alias/hil", "", nil, "not supported"},
		{"with --no-attest", key, "right", []string{"--no-attest"}, "contradict"},
		{"bad --run-url", key, "right", []string{"--run-url", "/home/ci/run"}, "--run-url"},
	} {
		t.Setenv("COSIGN_PASSWORD", c.password)
		args := append([]string{"gate", "--image", cand, "--promote", "latest", "--sign-key", c.key, "--report", t.TempDir()}, c.extra...)
		_, errOut, code := runHilStderr(t, args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", c.name, code, errOut, c.want)
		}
		if after := repoTags(t, reg.Host+"/pcapwatch"); after != before {
			t.Fatalf("%s: tags went from %q to %q", c.name, before, after)
		}
	}

	_, errOut, code := runHilStderr(t, "gate", "--image", cand, "--promote", "latest", "--report", t.TempDir())
	if code != 0 || !strings.Contains(errOut, "WARNING") || !strings.Contains(errOut, "UNSIGNED") {
		t.Errorf("unsigned gate: exit %d, stderr %q; want a loud warning", code, errOut)
	}
	out, _, code := runHilStderr(t, "attest", "show", cand)
	if code != 0 || !strings.Contains(out, "UNSIGNED") {
		t.Errorf("attest show of an unsigned result: exit %d\n%s", code, out)
	}
	if _, errOut, code := runHilStderr(t, "attest", "verify", cand, "--key", pub); code != 1 || !strings.Contains(errOut, "not signed") {
		t.Errorf("attest verify of an unsigned result: exit %d, %s", code, errOut)
	}
}

// The gate's attestation carries no directory of this host: not the
// scenario or report directories, not the cache, not the working dir.
func TestGateAttestationNamesNoLocalPath(t *testing.T) {
	reg := testenv.Registry(t)
	defer func(old func(*gateFlags) (promote.TestFunc, error)) { gateTester = old }(gateTester)
	report, scen := t.TempDir(), t.TempDir()
	gateTester = func(f *gateFlags) (promote.TestFunc, error) {
		inner, _ := fakeTester(promote.Fail, "no file "+scen+"/missing.pcap")(f)
		return func(ctx context.Context, p promote.Pinned) (promote.Result, error) {
			res, err := inner(ctx, p)
			for i := range res.Outcomes {
				res.Outcomes[i].Reason = attest.ScrubString(res.Outcomes[i].Reason, scenariogate.Roots(gateConfig(f)))
			}
			res.Report = scenariogate.AttestationReport([]scenario.Result{{Scenario: "dhcp-basic", File: filepath.Join(scen, "dhcp.yaml"),
				Device: target.Info{"console_log": filepath.Join(report, "console.log")}}}, scenariogate.Roots(gateConfig(f)))
			return res, err
		}, nil
	}
	cand := reg.Host + "/pcapwatch:candidate"
	pushArmIndex(t, cand)
	if _, errOut, code := runHilStderr(t, "gate", "--image", cand, "--promote", "latest", "--scenarios", scen, "--report", report); code != 1 {
		t.Fatalf("gate: exit %d\n%s", code, errOut)
	}
	out, _, _ := runHilStderr(t, "attest", "show", "--json", cand)
	wd, _ := os.Getwd()
	for _, p := range []string{report, scen, wd} {
		if strings.Contains(out, p) {
			t.Errorf("the attestation names %s:\n%s", p, out)
		}
	}
	if !strings.Contains(out, "missing.pcap") || !strings.Contains(out, "./dhcp.yaml") || !strings.Contains(out, "$REPORT/console.log") {
		t.Errorf("the scrubbed reason lost its meaning:\n%s", out)
	}
	if !strings.Contains(out, `"version": "v0.1.0+`) {
		t.Errorf("the attestation does not name hil's semver version:\n%s", out)
	}
}
