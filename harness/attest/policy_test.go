package attest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hilproject/hil/internal/testenv"
)

// The policy examples parse, ask for hil's predicate type and a PASSED
// result, and the ClusterImagePolicy's Rego is the rule of hil-pass.rego
// (which the cosign acceptance test runs with the real cosign). No
// Kyverno or policy-controller validator is linked: both pull in
// Kubernetes and knative (see README).
func TestPolicyExamples(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "examples", "policy")
	load := func(file string) map[string]any {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return m
	}
	get := func(v any, path ...any) any {
		for _, p := range path {
			switch k := p.(type) {
			case string:
				m, _ := v.(map[string]any)
				v = m[k]
			case int:
				s, _ := v.([]any)
				if k >= len(s) {
					return nil
				}
				v = s[k]
			}
		}
		return v
	}

	ky := load("kyverno-clusterpolicy.yaml")
	if ky["apiVersion"] != "kyverno.io/v1" || ky["kind"] != "ClusterPolicy" {
		t.Errorf("kyverno policy: %v %v", ky["apiVersion"], ky["kind"])
	}
	vi := get(ky, "spec", "rules", 0, "verifyImages", 0)
	att := get(vi, "attestations", 0)
	if get(att, "type") != TestResultPredicateType {
		t.Errorf("kyverno attestation type %v", get(att, "type"))
	}
	entry := get(att, "attestors", 0, "entries", 0, "keys")
	if !strings.Contains(get(entry, "publicKeys").(string), "BEGIN PUBLIC KEY") || get(entry, "rekor", "ignoreTlog") != true {
		t.Errorf("kyverno key entry %v", entry)
	}
	conds := get(att, "conditions", 0, "all").([]any)
	if get(conds[0], "key") != "{{ result }}" || get(conds[0], "value") != "PASSED" || !strings.Contains(get(conds[2], "key").(string), "/virt/") {
		t.Errorf("kyverno conditions %v", conds)
	}

	cip := load("policy-controller-clusterimagepolicy.yaml")
	if cip["apiVersion"] != "policy.sigstore.dev/v1beta1" || cip["kind"] != "ClusterImagePolicy" {
		t.Errorf("policy-controller policy: %v %v", cip["apiVersion"], cip["kind"])
	}
	auth := get(cip, "spec", "authorities", 0)
	if get(auth, "ctlog") != nil || get(auth, "signatureFormat") != "legacy" || !strings.Contains(get(auth, "key", "data").(string), "BEGIN PUBLIC KEY") {
		t.Errorf("policy-controller authority %v", auth)
	}
	pa := get(auth, "attestations", 0)
	if get(pa, "predicateType") != TestResultPredicateType || get(pa, "policy", "type") != "rego" {
		t.Errorf("policy-controller attestation %v", pa)
	}
	rego, err := os.ReadFile(filepath.Join(dir, "hil-pass.rego"))
	if err != nil {
		t.Fatal(err)
	}
	rule := func(s string) string {
		s = "\n" + s
		s = s[strings.Index(s, "\npackage "):]
		s = strings.NewReplacer("package signature", "package X", "package sigstore", "package X", "allow", "R", "isCompliant", "R", "\t", "", " ", "").Replace(s)
		return strings.TrimSpace(s)
	}
	if rule(get(pa, "policy", "data").(string)) != rule(string(rego)) {
		t.Errorf("the ClusterImagePolicy's Rego and hil-pass.rego differ:\n%s\n---\n%s", get(pa, "policy", "data"), rego)
	}
}
