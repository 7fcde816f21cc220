package schemas

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/target"
)

// Every schema compiles (a broken $ref or keyword is caught here), and
// each CLI definition too.
func TestSchemasCompile(t *testing.T) {
	for _, loc := range []string{Results, Decision, Check, CLI} {
		if _, err := Compile(loc); err != nil {
			t.Errorf("%s: %v", loc, err)
		}
	}
	for _, def := range []string{"error", "version", "image_inspect", "boards", "cache_du", "kernel_list", "fixtures", "replay_stats",
		"record_stats", "report_merge", "init", "attest_show", "attest_verify", "rollback", "watch", "canary", "progress_event"} {
		if _, err := Compile(Def(def)); err != nil {
			t.Errorf("%s: %v", def, err)
		}
	}
}

// The schemas reject what they exist to reject: a camelCase key, a
// duration in nanoseconds, a number written as a string, an exit that
// was not observed with a code.
func TestSchemasRefuse(t *testing.T) {
	for _, c := range []struct{ loc, doc string }{
		{Def("error"), `{"error": {"message": "x"}}`},
		{Def("error"), `{"error": {"message": "x", "exit_code": 2, "exitCode": 2}}`},
		{Results, `{"schema":"https://hil.dev/schemas/results/v2","title":"x","start":"2026-01-01T00:00:00Z","duration_ns":1,"summary":{"total":0,"pass":0,"fail":0,"unsupported":0,"infra_error":0},"results":[]}`},
		{Results + "#/$defs/device", `{"boot_ms": "333"}`},
		{Results + "#/$defs/device", `{"ready_replayed": "true"}`},
		{Results + "#/$defs/device", `{"memory_mb": "1024"}`},
		{Results + "#/$defs/device", `{"cpu": 53}`},
		{Results + "#/$defs/exit", `{"observed": false, "code": 0, "text": "exit 0"}`},
		{Results + "#/$defs/line", `{"Stream": "stdout", "Text": "x", "Time": "2026-01-01T00:00:00Z"}`},
		{Decision, `{"schema":"https://hil.dev/schemas/decision/v1","verdict":"PROMOTED","promoted":true,"passed":true,"reason":"","candidate":"c","tag":"t","oldDigest":"","new_digest":"","result":{"outcomes":[],"started":"2026-01-01T00:00:00Z","finished":"2026-01-01T00:00:00Z"}}`},
	} {
		if err := Validate(c.loc, []byte(c.doc)); err == nil {
			t.Errorf("%s accepted %s", c.loc, c.doc)
		}
	}
	if err := Validate(Def("error"), []byte(`{"error": {"message": "x", "exit_code": 2}}`)); err != nil {
		t.Errorf("a good error object: %v", err)
	}
}

// The README beside the schemas names each of them.
func TestREADMENamesEverySchema(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob("*.schema.json")
	for _, n := range names {
		if !contains(string(b), n) {
			t.Errorf("README.md does not name %s", n)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// results.json's device properties follow target.InfoKeys: each property
// the schema types is a documented key of that kind, and every key that is
// not a string is typed here too (untyped, a number written as a string
// would pass).
func TestDevicePropertiesFollowInfoKeys(t *testing.T) {
	raw, err := files.ReadFile("results.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs map[string]struct {
			Properties map[string]struct {
				Type string `json:"type"`
				Ref  string `json:"$ref"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	props := schema.Defs["device"].Properties
	if len(props) == 0 {
		t.Fatal("results.schema.json has no $defs.device.properties")
	}
	kinds := map[string]target.InfoKind{"#/$defs/ms": target.InfoNumber}
	for key, p := range props {
		got := target.InfoKind(p.Type)
		if p.Ref != "" {
			got = kinds[p.Ref]
		}
		want, ok := target.InfoKeys[key]
		switch {
		case !ok:
			t.Errorf("device property %q is not in target.InfoKeys", key)
		case got != want:
			t.Errorf("device property %q is %q in the schema, %q in target.InfoKeys", key, got, want)
		}
	}
	for key, kind := range target.InfoKeys {
		if _, ok := props[key]; !ok && kind != target.InfoString {
			t.Errorf("target.InfoKeys[%q] is %s: results.schema.json's device properties must type it", key, kind)
		}
	}
}
