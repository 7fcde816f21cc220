package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"regexp/syntax"
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

// nearMisses returns up to max lines of lines that do not match m but
// nearly do, closest first, for a failed count's message:
//
//   - a JSON matcher: lines that are JSON objects with the same "event"
//     (every field matcher on the key event holds) but other field values;
//     without an event field, lines where all field matchers but one hold;
//   - a regex or substring matcher: lines that hold at least half of its
//     words (of three or more characters: of the substring, or of the
//     regex's literal text), those holding more first.
//
// Lines m's stream does not consider are not near misses.
func (m Matcher) nearMisses(lines []target.Line, max int) []string {
	type miss struct {
		score int
		text  string
	}
	var misses []miss
	seen := map[string]bool{}
	var frags []string
	if m.Fields == nil {
		frags = m.fragments()
		if len(frags) == 0 {
			return nil
		}
	}
	for _, l := range lines {
		if seen[l.Text] || m.Match(l) || !m.streamConsiders(l) {
			continue
		}
		score := 0
		if m.Fields != nil {
			score = nearJSON(m.Fields, l.Text)
		} else {
			for _, f := range frags {
				if strings.Contains(l.Text, f) {
					score++
				}
			}
			if 2*score < len(frags) {
				score = 0
			}
		}
		if score > 0 {
			seen[l.Text] = true
			misses = append(misses, miss{score, l.Text})
		}
	}
	sort.SliceStable(misses, func(i, j int) bool { return misses[i].score > misses[j].score })
	var out []string
	for i, ms := range misses {
		if i == max {
			out = append(out, fmt.Sprintf("... and %d more", len(misses)-max))
			break
		}
		out = append(out, ms.text)
	}
	return out
}

func (m Matcher) streamConsiders(l target.Line) bool {
	if m.Stream != "" {
		return l.Stream == m.Stream
	}
	return l.Stream != target.Console
}

// nearJSON scores a JSON line against fields that it does not match: the
// number of field matchers that hold, when the line counts as a near miss
// (see nearMisses), else 0.
func nearJSON(fields []FieldMatcher, text string) int {
	t := strings.TrimSpace(text)
	if !strings.HasPrefix(t, "{") {
		return 0
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(t)))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil {
		return 0
	}
	held, events, eventsHeld := 0, 0, 0
	for _, f := range fields {
		v, ok := lookup(obj, f.Path)
		hold := ok && f.matchValue(v)
		if hold {
			held++
		}
		if len(f.Path) == 1 && f.Path[0] == "event" {
			events++
			if hold {
				eventsHeld++
			}
		}
	}
	switch {
	case events > 0 && eventsHeld == events:
		return held
	case events == 0 && held > 0 && held == len(fields)-1:
		return held
	}
	return 0
}

// fragments are what a substring or regex matcher's text is made of, for
// near misses: the words (3+ characters) of a substring, or of the
// literal runs of a regex.
func (m Matcher) fragments() []string {
	var out []string
	words := func(s string) {
		for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '=' || r == ':' || r == ',' || r == '"' }) {
			if len(w) >= 3 {
				out = append(out, w)
			}
		}
	}
	if m.Regex == nil {
		words(m.Contains)
		return out
	}
	re, err := syntax.Parse(m.Regex.String(), syntax.Perl)
	if err != nil {
		return nil
	}
	var walk func(*syntax.Regexp)
	walk = func(r *syntax.Regexp) {
		if r.Op == syntax.OpLiteral && r.Flags&syntax.FoldCase == 0 {
			words(string(r.Rune))
		}
		for _, s := range r.Sub {
			walk(s)
		}
	}
	walk(re.Simplify())
	return out
}
