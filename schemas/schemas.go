// Package schemas holds the JSON Schemas (draft 2020-12) of what hil
// writes for machines: results.json (results.schema.json), decision.json
// (decision.schema.json), the check report (check.schema.json) and every
// other --json output (cli.schema.json, one $defs entry per verb), and
// validates documents against them with a real JSON Schema implementation
// (santhosh-tekuri/jsonschema). The conventions they hold every output to
// are in README.md beside them.
//
// Only tests import this package: hil itself does not validate what it
// writes at run time.
package schemas

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed *.schema.json
var files embed.FS

// The schemas' $ids.
const (
	Results  = "https://hil.dev/schemas/results/v2"
	Decision = "https://hil.dev/schemas/decision/v1"
	Check    = "https://hil.dev/schemas/check/v1"
	CLI      = "https://hil.dev/schemas/cli/v1"
)

// Def names a definition of the CLI schema ("error", "image_inspect").
func Def(name string) string { return CLI + "#/$defs/" + name }

var compiler = sync.OnceValues(func() (*jsonschema.Compiler, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat() // date-time is checked, not only annotated
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		id, _ := doc.(map[string]any)["$id"].(string)
		if id == "" {
			return nil, fmt.Errorf("%s has no $id", e.Name())
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
	}
	return c, nil
})

var (
	mu       sync.Mutex
	compiled = map[string]*jsonschema.Schema{}
)

// Compile compiles the schema at loc (an $id, or $id#/$defs/NAME).
func Compile(loc string) (*jsonschema.Schema, error) {
	mu.Lock()
	defer mu.Unlock()
	if s, ok := compiled[loc]; ok {
		return s, nil
	}
	c, err := compiler()
	if err != nil {
		return nil, err
	}
	s, err := c.Compile(loc)
	if err != nil {
		return nil, err
	}
	compiled[loc] = s
	return s, nil
}

// Validate checks one JSON document against the schema at loc.
func Validate(loc string, doc []byte) error {
	s, err := Compile(loc)
	if err != nil {
		return fmt.Errorf("compiling %s: %w", loc, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("against %s: %w", loc, err)
	}
	return nil
}

// ValidateLines checks every non-empty line of out as one document (hil
// run --progress json).
func ValidateLines(loc string, out []byte) (int, error) {
	n := 0
	for i, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if err := Validate(loc, []byte(line)); err != nil {
			return n, fmt.Errorf("line %d %q: %w", i+1, line, err)
		}
		n++
	}
	return n, nil
}
