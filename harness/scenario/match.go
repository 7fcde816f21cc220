package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/hilproject/hil/harness/target"
)

// Matcher decides whether one output line matches: by substring, by
// regular expression, or by fields of a JSON object line. Exactly one of
// Contains, Regex and Fields is set. Stream limits the lines considered
// (stdout, stderr, console); empty means the app's stdout and stderr.
type Matcher struct {
	Contains string
	Regex    *regexp.Regexp
	Fields   []FieldMatcher
	Stream   target.Stream
}

// FieldMatcher checks one field of a JSON line. Path is the dotted key path
// ("counts.device_seen"). Exactly one of Equal, Regex and Cmp is used.
type FieldMatcher struct {
	Path  []string
	Equal any // string, float64, bool or nil (JSON null)
	Regex *regexp.Regexp
	Cmp   *CountExpr
}

func (m Matcher) String() string {
	var s string
	switch {
	case m.Regex != nil:
		s = "regex " + strconv.Quote(m.Regex.String())
	case m.Fields != nil:
		parts := make([]string, len(m.Fields))
		for i, f := range m.Fields {
			parts[i] = f.String()
		}
		s = "json {" + strings.Join(parts, ", ") + "}"
	default:
		s = "contains " + strconv.Quote(m.Contains)
	}
	if m.Stream != "" {
		s += " on " + string(m.Stream)
	}
	return s
}

func (f FieldMatcher) String() string {
	k := strings.Join(f.Path, ".")
	switch {
	case f.Regex != nil:
		return fmt.Sprintf("%s =~ %q", k, f.Regex.String())
	case f.Cmp != nil:
		return fmt.Sprintf("%s %s", k, f.Cmp)
	}
	b, _ := json.Marshal(f.Equal)
	return fmt.Sprintf("%s: %s", k, b)
}

// Match reports whether l matches.
func (m Matcher) Match(l target.Line) bool {
	if m.Stream != "" {
		if l.Stream != m.Stream {
			return false
		}
	} else if l.Stream == target.Console {
		return false
	}
	switch {
	case m.Regex != nil:
		return m.Regex.MatchString(l.Text)
	case m.Fields != nil:
		return matchJSON(m.Fields, l.Text)
	default:
		return strings.Contains(l.Text, m.Contains)
	}
}

func matchJSON(fields []FieldMatcher, text string) bool {
	t := strings.TrimSpace(text)
	if !strings.HasPrefix(t, "{") {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(t)))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil {
		return false
	}
	for _, f := range fields {
		v, ok := lookup(obj, f.Path)
		if !ok || !f.matchValue(v) {
			return false
		}
	}
	return true
}

func lookup(obj map[string]any, path []string) (any, bool) {
	var cur any = obj
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func (f FieldMatcher) matchValue(v any) bool {
	switch {
	case f.Regex != nil:
		return f.Regex.MatchString(scalarText(v))
	case f.Cmp != nil:
		n, ok := number(v)
		return ok && f.Cmp.Holds(n)
	}
	switch want := f.Equal.(type) {
	case nil:
		return v == nil
	case bool:
		b, ok := v.(bool)
		return ok && b == want
	case float64:
		n, ok := number(v)
		return ok && n == want
	case string:
		s, ok := v.(string)
		return ok && s == want
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	}
	return 0, false
}

func scalarText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonKeys lists the matcher's field paths, for messages.
func (m Matcher) jsonKeys() []string {
	var ks []string
	for _, f := range m.Fields {
		ks = append(ks, strings.Join(f.Path, "."))
	}
	sort.Strings(ks)
	return ks
}
