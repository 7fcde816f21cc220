package scenario

import (
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// Limits bound what a scenario file may hold, so that a mistaken or
// hostile file is refused at once with a clear error instead of making hil
// spin or exhaust memory (a 3-million-key env took minutes before anything
// else happened).
type Limits struct {
	// Bytes is the largest scenario file.
	Bytes int64
	// Nodes bounds the YAML nodes (keys, values, list items), counting
	// what aliases repeat, so that an alias bomb is refused too.
	Nodes int
	// Steps, EnvKeys and Args bound the steps, app.env entries and
	// app.entrypoint + app.args words.
	Steps   int
	EnvKeys int
	Args    int
	// String is the longest scalar (a name, arg, env value, regex, ...),
	// in bytes.
	String int
}

// DefaultLimits are far above any real scenario: the bundled ones are
// under 2 KiB, 10 steps and 10 env keys.
var DefaultLimits = Limits{
	Bytes:   1 << 20,
	Nodes:   100_000,
	Steps:   1000,
	EnvKeys: 4096,
	Args:    4096,
	String:  64 << 10,
}

// WithLimits replaces DefaultLimits.
func WithLimits(l Limits) ParseOption { return func(p *parser) { p.limits = l } }

// readLimited reads a scenario file, refusing one over limit bytes without
// reading the rest.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading scenario %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, tooBig(path, f, limit)
	}
	return data, nil
}

func tooBig(path string, f *os.File, limit int64) error {
	size := "more than " + byteSize(limit)
	if f != nil {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = byteSize(st.Size())
		}
	}
	return ParseErrors{{Pos: Pos{File: path, Line: 1, Column: 1}, Msg: fmt.Sprintf("the file is %s: a scenario may be at most %s (scenario.Limits.Bytes)", size, byteSize(limit))}}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// checkSize walks the document once before anything reads it: too many
// nodes (aliases expanded, memoised so the walk itself stays linear in the
// file) or a scalar over the string limit is reported, and the parse
// stops there.
func (p *parser) checkSize(doc *yaml.Node) bool {
	memo := map[*yaml.Node]int{}
	var size func(n *yaml.Node, depth int) int
	size = func(n *yaml.Node, depth int) int {
		if n == nil {
			return 0
		}
		if v, ok := memo[n]; ok {
			return v
		}
		if depth > 100 {
			// A cycle or absurd nesting: count it as too much.
			return p.limits.Nodes + 1
		}
		memo[n] = 0 // a node on the current path: a cycle adds nothing more
		total := 1
		if n.Kind == yaml.ScalarNode && len(n.Value) > p.limits.String && len(p.errs) < 10 {
			p.errf(n, "a value of %s: a scenario's strings may be at most %s (scenario.Limits.String)", byteSize(int64(len(n.Value))), byteSize(int64(p.limits.String)))
		}
		if n.Kind == yaml.AliasNode {
			total += size(n.Alias, depth+1)
		}
		for _, c := range n.Content {
			total += size(c, depth+1)
			if total > p.limits.Nodes {
				break
			}
		}
		memo[n] = total
		return total
	}
	if n := size(doc, 0); n > p.limits.Nodes {
		p.errs = append(p.errs, &ParseError{Pos: Pos{File: p.file, Line: 1, Column: 1}, Msg: fmt.Sprintf("more than %d YAML nodes (keys, values, list items; aliases count each time they are used): too large for a scenario (scenario.Limits.Nodes)", p.limits.Nodes)})
	}
	return len(p.errs) == 0
}

// tooMany reports a list or mapping n with more than limit entries.
func (p *parser) tooMany(n *yaml.Node, what string, count, limit int, field string) bool {
	if count <= limit {
		return false
	}
	p.errf(n, "%s: %d entries: at most %d are allowed (scenario.Limits.%s)", what, count, limit, field)
	return true
}
