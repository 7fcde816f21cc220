package scenario

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hilproject/hil/pcapfixtures"
)

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return p
}

// The JSON Schema for editors lists exactly the keys the parser accepts.
func TestSchemaInSyncWithParser(t *testing.T) {
	b, err := os.ReadFile(repoFile(t, "scenarios/schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	type node struct {
		Properties map[string]json.RawMessage `json:"properties"`
		OneOf      []node                     `json:"oneOf"`
		Required   []string                   `json:"required"`
	}
	var schema struct {
		node
		Defs map[string]node `json:"$defs"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatalf("schema.json is not valid JSON: %v", err)
	}
	keysOf := func(n node) []string {
		var ks []string
		for k := range n.Properties {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	for ctx, want := range Keys {
		var n node
		switch ctx {
		case "scenario":
			n = schema.node
		case "json_value":
			jv := schema.Defs["json_value"]
			if len(jv.OneOf) != 2 {
				t.Fatalf("$defs.json_value: want oneOf [scalar, object]")
			}
			n = jv.OneOf[1]
		default:
			var ok bool
			if n, ok = schema.Defs[ctx]; !ok {
				t.Errorf("schema has no $defs.%s (parser context %s)", ctx, ctx)
				continue
			}
		}
		w := append([]string(nil), want...)
		sort.Strings(w)
		if got := keysOf(n); strings.Join(got, ",") != strings.Join(w, ",") {
			t.Errorf("%s: schema lists %v, parser accepts %v", ctx, got, w)
		}
	}
	if strings.Join(schema.Required, ",") != "name,steps" {
		t.Errorf("schema requires %v, parser requires name and steps", schema.Required)
	}
}

// Every bundled scenario parses, and what it expects from a fixture is what
// the pcapfixtures manifest records.
func TestBundledScenariosMatchManifest(t *testing.T) {
	scs, err := LoadDir(repoFile(t, "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) < 7 {
		t.Errorf("want at least the 7 sample scenarios, found %d", len(scs))
	}
	for _, sc := range scs {
		var fx *pcapfixtures.Fixture
		for _, st := range sc.Steps {
			switch st.Kind {
			case StepReplay:
				f, err := pcapfixtures.Lookup(st.Replay.Fixture)
				if err != nil {
					t.Errorf("%s: %v", st.Pos, err)
					continue
				}
				if st.Replay.SHA256 != f.SHA256 {
					t.Errorf("%s: fixture sha256 %s, manifest %s", st.Pos, st.Replay.SHA256, f.SHA256)
				}
				fx = &f
			case StepExpectOutput:
				if fx == nil {
					continue
				}
				checkAgainstManifest(t, st, fx)
			}
		}
	}
}

func checkAgainstManifest(t *testing.T, st Step, fx *pcapfixtures.Fixture) {
	t.Helper()
	fields := map[string]FieldMatcher{}
	for _, f := range st.ExpectOutput.Match.Fields {
		fields[strings.Join(f.Path, ".")] = f
	}
	ev, ok := fields["event"]
	if !ok {
		return
	}
	exp := fx.Expect
	listed := map[string][]map[string]string{}
	for _, d := range exp.DeviceSeen {
		listed["device_seen"] = append(listed["device_seen"], map[string]string{"mac": d.MAC, "ip": d.IP})
	}
	for _, d := range exp.DHCPRequest {
		listed["dhcp_request"] = append(listed["dhcp_request"], map[string]string{"mac": d.MAC, "hostname": d.Hostname})
	}
	for _, d := range exp.DNSQuery {
		listed["dns_query"] = append(listed["dns_query"], map[string]string{"name": d.Name, "type": d.Type})
	}
	name, _ := ev.Equal.(string)
	switch name {
	case "summary":
		if f, ok := fields["frames"]; ok && f.Equal != nil && f.Equal != float64(exp.FramesSeen) {
			t.Errorf("%s: summary frames %v, manifest says %s shows %d", st.Pos, f.Equal, fx.Name, exp.FramesSeen)
		}
		for kind, evs := range listed {
			if f, ok := fields["counts."+kind]; ok && f.Equal != float64(len(evs)) {
				t.Errorf("%s: summary counts.%s %v, manifest lists %d", st.Pos, kind, f.Equal, len(evs))
			}
		}
	case "device_seen", "dhcp_request", "dns_query":
		if len(fields) == 1 {
			if c := st.ExpectOutput.Count; c.Op == "==" && int(c.N) != len(listed[name]) {
				t.Errorf("%s: expects %s %s, manifest lists %d for %s", st.Pos, name, c, len(listed[name]), fx.Name)
			}
			return
		}
		for _, want := range listed[name] {
			match := true
			for k, f := range fields {
				if k != "event" && fmt.Sprint(f.Equal) != want[k] {
					match = false
				}
			}
			if match {
				return
			}
		}
		t.Errorf("%s: expects an event %s not listed in the manifest of %s", st.Pos, st.ExpectOutput.Match, fx.Name)
	}
}
