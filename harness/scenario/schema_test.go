package scenario

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// A small JSON Schema checker covering the keywords scenarios/schema.json
// uses ($ref, type, properties, additionalProperties, required, oneOf,
// enum, items, min/maxItems, min/maxProperties, minLength, maxLength, minimum,
// maximum, pattern): enough to prove that an editor using the schema
// accepts every bundled scenario and flags the usual mistakes.
type schemaChecker struct{ root map[string]any }

func (c schemaChecker) check(s map[string]any, v any, path string) []string {
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/$defs/")
		def, ok := c.root["$defs"].(map[string]any)[name].(map[string]any)
		if !ok {
			return []string{path + ": unresolved $ref " + ref}
		}
		return c.check(def, v, path)
	}
	var errs []string
	if t, ok := s["type"]; ok && !typeMatches(t, v) {
		return []string{fmt.Sprintf("%s: want type %v, found %T", path, t, v)}
	}
	if e, ok := s["enum"].([]any); ok {
		found := false
		for _, x := range e {
			if fmt.Sprint(x) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: %v not in %v", path, v, e))
		}
	}
	if one, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, sub := range one {
			if len(c.check(sub.(map[string]any), v, path)) == 0 {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Sprintf("%s: matches %d of oneOf, want exactly 1", path, n))
		}
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range asList(s["required"]) {
			if _, ok := x[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: missing required %q", path, r))
			}
		}
		if n, ok := s["minProperties"].(float64); ok && float64(len(x)) < n {
			errs = append(errs, fmt.Sprintf("%s: fewer than %v properties", path, n))
		}
		if n, ok := s["maxProperties"].(float64); ok && float64(len(x)) > n {
			errs = append(errs, fmt.Sprintf("%s: more than %v properties", path, n))
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, c.check(ps, x[k], path+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					errs = append(errs, fmt.Sprintf("%s: unknown key %q", path, k))
				}
			case map[string]any:
				errs = append(errs, c.check(ap, x[k], path+"."+k)...)
			}
		}
	case []any:
		if n, ok := s["minItems"].(float64); ok && float64(len(x)) < n {
			errs = append(errs, fmt.Sprintf("%s: fewer than %v items", path, n))
		}
		if n, ok := s["maxItems"].(float64); ok && float64(len(x)) > n {
			errs = append(errs, fmt.Sprintf("%s: more than %v items", path, n))
		}
		if it, ok := s["items"].(map[string]any); ok {
			for i, e := range x {
				errs = append(errs, c.check(it, e, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	case string:
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(x) {
			errs = append(errs, fmt.Sprintf("%s: %q does not match %s", path, x, p))
		}
		if n, ok := s["minLength"].(float64); ok && float64(len([]rune(x))) < n {
			errs = append(errs, fmt.Sprintf("%s: shorter than %v", path, n))
		}
		if n, ok := s["maxLength"].(float64); ok && float64(len([]rune(x))) > n {
			errs = append(errs, fmt.Sprintf("%s: longer than %v", path, n))
		}
	case float64:
		if n, ok := s["minimum"].(float64); ok && x < n {
			errs = append(errs, fmt.Sprintf("%s: below %v", path, n))
		}
		if n, ok := s["maximum"].(float64); ok && x > n {
			errs = append(errs, fmt.Sprintf("%s: above %v", path, n))
		}
	}
	return errs
}

func asList(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

func typeMatches(t, v any) bool {
	if l, ok := t.([]any); ok {
		for _, x := range l {
			if typeMatches(x, v) {
				return true
			}
		}
		return false
	}
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	case "number":
		_, ok := v.(float64)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	}
	return false
}

// yamlToJSON reads a scenario as an editor's YAML language server would.
func yamlToJSON(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func loadSchema(t *testing.T) schemaChecker {
	t.Helper()
	b, err := os.ReadFile(repoFile(t, "scenarios/schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatalf("schema.json: %v", err)
	}
	return schemaChecker{root}
}

func TestBundledScenariosValidateAgainstSchema(t *testing.T) {
	sc := loadSchema(t)
	files, _ := filepath.Glob(filepath.Join(repoFile(t, "scenarios"), "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no bundled scenarios")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if errs := sc.check(sc.root, yamlToJSON(t, data), filepath.Base(f)); len(errs) > 0 {
			t.Errorf("%s does not validate against schema.json:\n  %s", f, strings.Join(errs, "\n  "))
		}
	}
	// The full example of the parser tests validates too.
	if errs := sc.check(sc.root, yamlToJSON(t, []byte(fullScenario)), "full"); len(errs) > 0 {
		t.Errorf("full scenario does not validate:\n  %s", strings.Join(errs, "\n  "))
	}
}

// The schema flags what the parser refuses, for the mistakes it can see.
func TestSchemaRejectsMistakes(t *testing.T) {
	sc := loadSchema(t)
	for name, doc := range map[string]string{
		"unknown key":     "name: a\nstepz: []\nsteps: [{wait: 1s}]\n",
		"missing steps":   "name: a\n",
		"two step kinds":  "name: a\nsteps: [{wait: 1s, signal: TERM}]\n",
		"bad schedule":    "name: a\nsteps: [{replay: {fixture: dns, schedule: fast}}]\n",
		"bad count":       "name: a\nsteps: [{expect_output: {contains: x, count: about 3}}]\n",
		"two matchers":    "name: a\nsteps: [{expect_output: {contains: x, regex: y}}]\n",
		"bad target":      "name: a\ntargets: [vm]\nsteps: [{wait: 1s}]\n",
		"bad duration":    "name: a\nsteps: [{wait: soon}]\n",
		"bad signal":      "name: a\nsteps: [{signal: TREM}]\n",
		"json value keys": "name: a\nsteps: [{expect_output: {json: {n: {is: \"== 1\", regex: x}}}}]\n",
		"negative count":  "name: a\nsteps: [{expect_output: {contains: x, count: \"== -1\"}}]\n",
		"schedule exp":    "name: a\nsteps: [{replay: {fixture: dns, schedule: x1e308}}]\n",
		"schedule NaN":    "name: a\nsteps: [{replay: {fixture: dns, schedule: xNaN}}]\n",
		"too many loops":  "name: a\nsteps: [{replay: {fixture: dns, loops: 1000000000}}]\n",
	} {
		if errs := sc.check(sc.root, yamlToJSON(t, []byte(doc)), name); len(errs) == 0 {
			t.Errorf("%s: schema accepts it", name)
		}
		if _, err := Parse("x.yaml", []byte(doc)); err == nil {
			t.Errorf("%s: parser accepts it", name)
		}
	}
}
