package board

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// A fleet file lists the boards a fleet has, for `hil gate --fleet`:
//
//	# the boards in the field
//	boards: [pi0w, pi3b+, pi4/64]
//
// or one per line under boards:. Each name is resolved like --boards (an
// alias, /32 or /64); an unknown one is an error with file:line that lists
// the known boards.

// LoadFleet reads a fleet file and resolves its boards against c.
func (c *Catalog) LoadFleet(path string) ([]Board, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the fleet file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxProfileFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the fleet file %s: %w", path, err)
	}
	if len(data) > MaxProfileFileBytes {
		return nil, fmt.Errorf("%s: a fleet file is at most %d bytes", path, MaxProfileFileBytes)
	}
	return c.ParseFleet(path, data)
}

// ParseFleet is LoadFleet on bytes; file is used in errors only.
func (c *Catalog) ParseFleet(file string, data []byte) ([]Board, error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ProfileError{File: file, Msg: "empty fleet file: expected `boards: [pi0w, pi3b+, ...]`"}
		}
		return nil, &ProfileError{File: file, Line: yamlErrLine(err), Msg: yamlErrMsg(err)}
	}
	p := &profileParser{file: file}
	var list *yaml.Node
	if len(root.Content) == 0 {
		return nil, &ProfileError{File: file, Msg: "empty fleet file: expected `boards: [pi0w, pi3b+, ...]`"}
	}
	p.mapping(root.Content[0], "the fleet file", map[string]func(*yaml.Node){
		"boards": func(v *yaml.Node) { list = v },
	})
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		n := root.Content[0]
		if list != nil {
			n = list
		}
		return nil, &ProfileError{File: file, Line: n.Line, Msg: "boards: expected a list of at least one board, such as [pi0w, pi3b+]"}
	}
	var out []Board
	seen := map[string]int{}
	for _, n := range list.Content {
		var name string
		p.str(n, "boards", &name)
		if name == "" {
			continue
		}
		b, err := c.Lookup(name)
		if err != nil {
			p.errorf(n, "%v", err)
			continue
		}
		if prev, dup := seen[b.Key()]; dup {
			p.errorf(n, "%s is listed twice (line %d)", b, prev)
			continue
		}
		seen[b.Key()] = n.Line
		out = append(out, b)
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return out, nil
}
