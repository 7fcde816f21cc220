package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/replay"
	"github.com/hilproject/hil/harness/target"
)

// FixtureResolver maps a fixture name to its file (and sha256 when known);
// the pcapfixtures manifest is the usual one.
type FixtureResolver interface {
	// Fixture returns the file of the named fixture, its sha256 (hex, may be
	// empty) and whether the name is known.
	Fixture(name string) (path, sha256 string, ok bool)
	// Names lists the known fixtures, for error messages.
	Names() []string
}

// ParseOption configures parsing.
type ParseOption func(*parser)

// WithFixtures resolves replay fixture names through r instead of the
// bundled pcapfixtures manifest; nil turns name lookup off. When r does not
// know a name, a fixture must be a path to an existing file, relative to
// the scenario file.
func WithFixtures(r FixtureResolver) ParseOption {
	return func(p *parser) { p.fixtures = r }
}

// WithBoardCatalog resolves `boards:` names against cat (default: the
// built-in board profiles, board.Builtin), e.g. one with a profile file's
// boards.
func WithBoardCatalog(cat *board.Catalog) ParseOption {
	return func(p *parser) { p.boards = cat }
}

// WithKnownTargets limits `targets:` to these names (default: system,
// user, container, device).
func WithKnownTargets(names ...string) ParseOption {
	return func(p *parser) { p.knownTargets = names }
}

// Keys is every key the parser accepts, by context. scenarios/schema.json
// must list the same ones (a test keeps them in sync).
var Keys = map[string][]string{
	"scenario":         {"name", "description", "tags", "app", "targets", "platforms", "boards", "startup", "timeout", "rx_offload", "strict_delivery", "steps"},
	"app":              {"entrypoint", "args", "env", "workdir", "iface"},
	"startup":          {"budget", "ready", "static_check"},
	"matcher":          {"contains", "regex", "json", "stream"},
	"step":             append([]string{"name"}, stepKindNames()...),
	"replay":           {"fixture", "schedule", "loops", "within"},
	"expect_output":    {"contains", "regex", "json", "stream", "count", "within", "settle", "from"},
	"expect_frames":    {"filter", "count", "within", "settle", "from"},
	"expect_exit":      {"code", "signal", "within"},
	"expect_no_output": {"contains", "regex", "json", "stream"},
	"json_value":       {"regex", "is"},
}

func stepKindNames() []string {
	s := make([]string, len(StepKinds))
	for i, k := range StepKinds {
		s[i] = string(k)
	}
	return s
}

// ParseError is one problem in a scenario file, with where it is.
type ParseError struct {
	Pos Pos
	Msg string
}

func (e *ParseError) Error() string { return e.Pos.String() + ": " + e.Msg }

// ParseErrors is every problem found in one file.
type ParseErrors []*ParseError

func (es ParseErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

type parser struct {
	file         string
	dir          string
	fixtures     FixtureResolver
	knownTargets []string
	boards       *board.Catalog
	limits       Limits
	errs         ParseErrors

	// timeout is the scenario's, known before the steps are read; the
	// steps' least durations add up in minTime.
	timeout time.Duration
	minTime time.Duration
}

func newParser(file string, opts []ParseOption) *parser {
	p := &parser{file: file, dir: filepath.Dir(file), fixtures: BundledFixtures(), knownTargets: []string{"system", "user", "container", "device"}, limits: DefaultLimits, timeout: DefaultTimeout}
	for _, o := range opts {
		o(p)
	}
	if p.boards == nil {
		p.boards = board.Builtin()
	}
	return p
}

// ParseFile reads and parses one scenario file; a file over the size
// limit is refused without reading it all.
func ParseFile(path string, opts ...ParseOption) (*Scenario, error) {
	data, err := readLimited(path, newParser(path, opts).limits.Bytes)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, opts...)
}

// LoadDir parses every *.yaml and *.yml file of dir, sorted by name. It
// returns every file's errors together, and refuses two scenarios with the
// same name.
func LoadDir(dir string, opts ...ParseOption) ([]*Scenario, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("no scenario files (*.yaml, *.yml) in %s", dir)
	}
	return LoadFiles(files, opts...)
}

// LoadFiles parses the given files (a directory expands to its scenarios).
func LoadFiles(paths []string, opts ...ParseOption) ([]*Scenario, error) {
	var out []*Scenario
	var errs []error
	seen := map[string]Pos{}
	for _, f := range paths {
		if st, err := os.Stat(f); err == nil && st.IsDir() {
			scs, err := LoadDir(f, opts...)
			if err != nil {
				errs = append(errs, err)
			}
			out = append(out, scs...)
			continue
		}
		sc, err := ParseFile(f, opts...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := seen[sc.Name]; dup {
			errs = append(errs, &ParseError{Pos: sc.Pos, Msg: fmt.Sprintf("scenario name %q is already used by %s", sc.Name, prev)})
			continue
		}
		seen[sc.Name] = sc.Pos
		out = append(out, sc)
	}
	return out, errors.Join(errs...)
}

// Parse parses one scenario from data; file names it in errors and is the
// base for relative fixture paths. Every fixture the scenario replays is
// opened and scanned here (see replay.Scan), so that a bad one refuses the
// run before anything boots.
func Parse(file string, data []byte, opts ...ParseOption) (*Scenario, error) {
	p := newParser(file, opts)
	if int64(len(data)) > p.limits.Bytes {
		return nil, tooBig(file, nil, p.limits.Bytes)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, ParseErrors{{Pos: Pos{File: file, Line: 1, Column: 1}, Msg: "empty file: want a scenario mapping with name and steps"}}
		}
		return nil, p.yamlError(err)
	}
	if len(doc.Content) == 0 {
		return nil, ParseErrors{{Pos: Pos{File: file, Line: 1, Column: 1}, Msg: "empty file: want a scenario mapping with name and steps"}}
	}
	if !p.checkSize(&doc) {
		return nil, p.errs
	}
	sc := p.scenario(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return sc, nil
}

// Compiled on first use, not at package init, which every hil process pays for.
var yamlLineRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })

// yamlError turns a syntax error of yaml.v3 into file:line form.
func (p *parser) yamlError(err error) error {
	msg := err.Error()
	if m := yamlLineRe().FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		hint := ""
		if strings.Contains(m[2], "block") || strings.Contains(m[2], "did not find expected") {
			hint = ` (a value starting with ">" or "|" must be quoted, e.g. count: ">= 1")`
		}
		return ParseErrors{{Pos: Pos{File: p.file, Line: line, Column: 1}, Msg: "YAML syntax: " + m[2] + hint}}
	}
	return ParseErrors{{Pos: Pos{File: p.file}, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}}
}

func (p *parser) pos(n *yaml.Node) Pos { return Pos{File: p.file, Line: n.Line, Column: n.Column} }

func (p *parser) errf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &ParseError{Pos: p.pos(n), Msg: fmt.Sprintf(format, args...)})
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!null":
			return "nothing (null)"
		case "!!int":
			return "the number " + n.Value
		case "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		}
		return fmt.Sprintf("%s %q", n.Tag, n.Value)
	}
	return "an unexpected node"
}

type field struct {
	key, val *yaml.Node
}

// mapping checks that n is a mapping with only allowed keys, no duplicate
// and every required key, and returns its fields by key.
func (p *parser) mapping(n *yaml.Node, what string, allowed, required []string) (map[string]field, bool) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		p.errf(n, "%s: want a mapping with keys %s, found %s", what, strings.Join(allowed, ", "), kindName(n))
		return nil, false
	}
	ok := true
	fields := map[string]field{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errf(k, "%s: keys must be plain names, found %s", what, kindName(k))
			ok = false
			continue
		}
		if k.Value == "<<" {
			p.errf(k, "%s: YAML merge keys (<<) are not supported; write the keys out", what)
			ok = false
			continue
		}
		if !contains(allowed, k.Value) {
			p.errf(k, "unknown key %q in %s; expected one of: %s", k.Value, what, strings.Join(allowed, ", "))
			ok = false
			continue
		}
		if prev, dup := fields[k.Value]; dup {
			p.errf(k, "duplicate key %q in %s (first at line %d)", k.Value, what, prev.key.Line)
			ok = false
			continue
		}
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		fields[k.Value] = field{k, v}
	}
	for _, r := range required {
		if _, has := fields[r]; !has {
			p.errf(n, "%s: missing required key %q", what, r)
			ok = false
		}
	}
	return fields, ok
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		p.errf(n, "%s: want a string, found %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

// word accepts any scalar as text (args like --count 5 are numbers to YAML).
func (p *parser) word(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errf(n, "%s: want a string, found %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) strList(n *yaml.Node, what string, any bool) ([]string, bool) {
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "%s: want a list of strings, found %s", what, kindName(n))
		return nil, false
	}
	out := []string{}
	ok := true
	for i, c := range n.Content {
		var s string
		var good bool
		if any {
			s, good = p.word(c, fmt.Sprintf("%s[%d]", what, i))
		} else {
			s, good = p.str(c, fmt.Sprintf("%s[%d]", what, i))
		}
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

func (p *parser) duration(n *yaml.Node, what string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		p.errf(n, "%s: want a duration like 500ms, 5s or 1m, found %s", what, kindName(n))
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d <= 0 {
		p.errf(n, "%s: want a positive duration like 500ms, 5s or 1m, found %q", what, n.Value)
		return 0, false
	}
	return d, true
}

func (p *parser) integer(n *yaml.Node, what string) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.errf(n, "%s: want an integer, found %s", what, kindName(n))
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		p.errf(n, "%s: want an integer, found %q", what, n.Value)
		return 0, false
	}
	return v, true
}

func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errf(n, "%s: want true or false, found %s", what, kindName(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		p.errf(n, "%s: want true or false, found %q", what, n.Value)
		return false, false
	}
	return b, true
}

// count reads a comparison; a tally (of lines or frames, not a JSON
// number) must be a whole number, 0 or more.
func (p *parser) count(n *yaml.Node, what string, tally bool) (CountExpr, bool) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
		p.errf(n, `%s: want a count expression like "== 24" or ">= 1" (quote it), found %s`, what, kindName(n))
		return CountExpr{}, false
	}
	c, err := ParseCount(n.Value)
	if err == nil && tally {
		err = c.checkTally()
	}
	if err != nil {
		p.errf(n, "%s: %v", what, err)
		return CountExpr{}, false
	}
	return c, true
}

func (p *parser) regex(n *yaml.Node, what string) (*regexp.Regexp, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return nil, false
	}
	re, err := regexp.Compile(s)
	if err != nil {
		p.errf(n, "%s: bad regular expression %q: %v", what, s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return nil, false
	}
	return re, true
}

func (p *parser) scenario(n *yaml.Node) *Scenario {
	f, ok := p.mapping(n, "scenario", Keys["scenario"], []string{"name", "steps"})
	if !ok && f == nil {
		return nil
	}
	sc := &Scenario{
		Pos:       p.pos(n),
		Targets:   []string{DefaultTarget},
		Platforms: []string{DefaultPlatform},
		App:       App{Iface: DefaultIface},
		Startup:   Startup{Budget: DefaultStartupBudget, Ready: Matcher{Regex: regexp.MustCompile(DefaultReadyRegex)}},
	}
	if v, has := f["name"]; has {
		if s, ok := p.str(v.val, "name"); ok {
			if strings.TrimSpace(s) == "" || strings.ContainsAny(s, "/\\\n") {
				p.errf(v.val, "name: want a non-empty single-line name without slashes, found %q", s)
			}
			sc.Name = s
		}
	}
	if v, has := f["description"]; has {
		sc.Description, _ = p.str(v.val, "description")
	}
	if v, has := f["tags"]; has {
		sc.Tags, _ = p.strList(v.val, "tags", false)
	}
	if v, has := f["app"]; has {
		p.app(v.val, &sc.App)
	}
	if v, has := f["rx_offload"]; has {
		if s, ok := p.str(v.val, "rx_offload"); ok {
			if !contains(RxOffloadModes, s) {
				p.errf(v.val, "rx_offload: want one of %s, found %q", strings.Join(RxOffloadModes, ", "), s)
			}
			if s != "off" {
				sc.RxOffload = s
			}
		}
	}
	if v, has := f["strict_delivery"]; has {
		if v.val.Kind != yaml.ScalarNode || v.val.Tag != "!!bool" {
			p.errf(v.val, "strict_delivery: want true or false, found %q", v.val.Value)
		} else {
			sc.StrictDelivery = v.val.Value == "true"
		}
	}
	if v, has := f["targets"]; has {
		if ts, ok := p.strList(v.val, "targets", false); ok {
			if len(ts) == 0 {
				p.errf(v.val, "targets: want at least one of %s", strings.Join(p.knownTargets, ", "))
			}
			for i, t := range ts {
				if !contains(p.knownTargets, t) {
					p.errf(v.val.Content[i], "targets[%d]: unknown target %q; expected one of: %s", i, t, strings.Join(p.knownTargets, ", "))
				}
			}
			sc.Targets = ts
		}
	}
	if v, has := f["platforms"]; has {
		if ps, ok := p.strList(v.val, "platforms", false); ok {
			if len(ps) == 0 {
				p.errf(v.val, "platforms: want at least one, like linux/arm/v7")
			}
			for i, pl := range ps {
				// One spelling everywhere: go-containerregistry's, which the
				// image's platforms and the gate's required ones print.
				if pp, err := v1.ParsePlatform(pl); err != nil || pp.OS == "" || pp.Architecture == "" || pp.String() != pl {
					p.errf(v.val.Content[i], "platforms[%d]: want os/arch[/variant] like linux/arm/v7, found %q", i, pl)
				}
			}
			sc.Platforms = ps
		}
	}
	if v, has := f["boards"]; has {
		if _, both := f["platforms"]; both {
			p.errf(v.key, "boards: a board runs the manifest its engine pulls from the image; give boards or platforms, not both")
		}
		if names, ok := p.strList(v.val, "boards", false); ok {
			if len(names) == 0 {
				p.errf(v.val, "boards: want at least one board, like pi3b+ (hil boards lists them)")
			}
			seen := map[string]bool{}
			for i, name := range names {
				b, err := p.boards.Lookup(name)
				if err != nil {
					p.errf(v.val.Content[i], "boards[%d]: %v", i, err)
					continue
				}
				if seen[b.Key()] {
					p.errf(v.val.Content[i], "boards[%d]: %s is listed twice", i, b)
					continue
				}
				seen[b.Key()] = true
				sc.Boards = append(sc.Boards, b)
			}
		}
	}
	if v, has := f["timeout"]; has {
		if d, ok := p.duration(v.val, "timeout"); ok {
			sc.CaseTimeout, p.timeout = d, d
		}
	}
	if v, has := f["startup"]; has {
		p.startup(v.val, &sc.Startup)
		if sc.Startup.Budget >= p.timeout {
			p.errf(v.val, "startup.budget %s: the case would time out first (timeout %s); want a budget under the scenario's timeout", sc.Startup.Budget, p.timeout)
		}
	}
	if v, has := f["steps"]; has {
		sc.Steps = p.steps(v.val)
	}
	return sc
}

func (p *parser) app(n *yaml.Node, a *App) {
	f, _ := p.mapping(n, "app", Keys["app"], nil)
	words := 0
	for _, k := range []string{"entrypoint", "args"} {
		if v, has := f[k]; has && v.val.Kind == yaml.SequenceNode {
			words += len(v.val.Content)
		}
	}
	if p.tooMany(n, "app.entrypoint and app.args", words, p.limits.Args, "Args") {
		return
	}
	if v, has := f["entrypoint"]; has {
		if v.val.Kind == yaml.ScalarNode {
			if s, ok := p.str(v.val, "app.entrypoint"); ok {
				a.Entrypoint = []string{s}
			}
		} else {
			a.Entrypoint, _ = p.strList(v.val, "app.entrypoint", true)
		}
	}
	if v, has := f["args"]; has {
		a.Args, _ = p.strList(v.val, "app.args", true)
	}
	if v, has := f["env"]; has {
		entries := len(v.val.Content)
		if v.val.Kind == yaml.MappingNode {
			entries /= 2
		}
		if p.tooMany(v.val, "app.env", entries, p.limits.EnvKeys, "EnvKeys") {
			return
		}
		switch v.val.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(v.val.Content); i += 2 {
				k, val := v.val.Content[i], v.val.Content[i+1]
				ks, ok1 := p.word(k, "app.env key")
				vs, ok2 := p.word(val, "app.env."+k.Value)
				if ok1 && ok2 {
					a.Env = append(a.Env, ks+"="+vs)
				}
			}
		case yaml.SequenceNode:
			env, ok := p.strList(v.val, "app.env", true)
			if ok {
				for i, e := range env {
					if !strings.Contains(e, "=") {
						p.errf(v.val.Content[i], "app.env[%d]: want KEY=VALUE, found %q", i, e)
					}
				}
				a.Env = env
			}
		default:
			p.errf(v.val, "app.env: want a mapping (KEY: value) or a list of KEY=VALUE, found %s", kindName(v.val))
		}
	}
	if v, has := f["workdir"]; has {
		a.WorkingDir, _ = p.str(v.val, "app.workdir")
	}
	if v, has := f["iface"]; has {
		if s, ok := p.str(v.val, "app.iface"); ok {
			if s == "" || len(s) > 15 || strings.ContainsAny(s, "/ \t") {
				p.errf(v.val, "app.iface: want a Linux interface name (1-15 characters, no / or spaces), found %q", s)
			}
			a.Iface = s
		}
	}
}

func (p *parser) startup(n *yaml.Node, s *Startup) {
	f, _ := p.mapping(n, "startup", Keys["startup"], nil)
	if v, has := f["budget"]; has {
		if d, ok := p.duration(v.val, "startup.budget"); ok {
			s.Budget = d
		}
	}
	if v, has := f["ready"]; has {
		if m, ok := p.matcher(v.val, "startup.ready", Keys["matcher"], nil); ok {
			s.Ready = m
		}
	}
	if v, has := f["static_check"]; has {
		if b, ok := p.boolean(v.val, "startup.static_check"); ok {
			s.SkipStaticCheck = !b
		}
	}
}

// matcher reads the matcher keys (contains/regex/json/stream) of a mapping
// whose other keys the caller handles.
func (p *parser) matcher(n *yaml.Node, what string, allowed []string, f map[string]field) (Matcher, bool) {
	if f == nil {
		var ok bool
		if f, ok = p.mapping(n, what, allowed, nil); !ok {
			return Matcher{}, false
		}
	}
	var m Matcher
	var kinds []string
	for _, k := range []string{"contains", "regex", "json"} {
		if _, has := f[k]; has {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		if len(kinds) == 0 {
			p.errf(n, "%s: want exactly one of contains, regex or json, found none", what)
		} else {
			p.errf(n, "%s: want exactly one of contains, regex or json, found %s", what, strings.Join(kinds, " and "))
		}
		return m, false
	}
	ok := true
	switch kinds[0] {
	case "contains":
		var s string
		s, ok = p.str(f["contains"].val, what+".contains")
		if ok && s == "" {
			p.errf(f["contains"].val, "%s.contains: want a non-empty substring", what)
			ok = false
		}
		m.Contains = s
	case "regex":
		m.Regex, ok = p.regex(f["regex"].val, what+".regex")
	case "json":
		m.Fields, ok = p.jsonFields(f["json"].val, what+".json")
	}
	if v, has := f["stream"]; has {
		if s, good := p.str(v.val, what+".stream"); good {
			switch target.Stream(s) {
			case target.Stdout, target.Stderr, target.Console:
				m.Stream = target.Stream(s)
			default:
				p.errf(v.val, "%s.stream: want stdout, stderr or console, found %q", what, s)
				ok = false
			}
		}
	}
	return m, ok
}

func (p *parser) jsonFields(n *yaml.Node, what string) ([]FieldMatcher, bool) {
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		p.errf(n, "%s: want a mapping of JSON fields to values, like {event: device_seen, mac: \"02:00:00:00:00:07\"}, found %s", what, kindName(n))
		return nil, false
	}
	ok := true
	var out []FieldMatcher
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key, good := p.word(k, what+" key")
		if !good {
			ok = false
			continue
		}
		if seen[key] {
			p.errf(k, "duplicate key %q in %s", key, what)
			ok = false
			continue
		}
		seen[key] = true
		path := strings.Split(key, ".")
		for _, part := range path {
			if part == "" {
				p.errf(k, "%s: bad field path %q (empty part)", what, key)
				ok = false
			}
		}
		fm := FieldMatcher{Path: path}
		fw := what + "." + key
		switch v.Kind {
		case yaml.ScalarNode:
			switch v.Tag {
			case "!!null":
				fm.Equal = nil
			case "!!bool":
				b, _ := p.boolean(v, fw)
				fm.Equal = b
			case "!!int", "!!float":
				f, err := strconv.ParseFloat(strings.ReplaceAll(v.Value, "_", ""), 64)
				if err != nil {
					p.errf(v, "%s: bad number %q", fw, v.Value)
					ok = false
				}
				fm.Equal = f
			default:
				fm.Equal = v.Value
			}
		case yaml.MappingNode:
			f, good := p.mapping(v, fw, Keys["json_value"], nil)
			if !good {
				ok = false
				continue
			}
			switch {
			case len(f) != 1:
				p.errf(v, "%s: want exactly one of regex or is", fw)
				ok = false
			case f["regex"].val != nil:
				fm.Regex, good = p.regex(f["regex"].val, fw+".regex")
				ok = ok && good
			default:
				c, good := p.count(f["is"].val, fw+".is", false)
				fm.Cmp = &c
				ok = ok && good
			}
		default:
			p.errf(v, "%s: want a value or {regex: ...} or {is: \">= N\"}, found %s", fw, kindName(v))
			ok = false
		}
		out = append(out, fm)
	}
	return out, ok
}

func (p *parser) steps(n *yaml.Node) []Step {
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "steps: want a list of steps, found %s", kindName(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.errf(n, "steps: want at least one step (%s)", strings.Join(stepKindNames(), ", "))
	}
	if p.tooMany(n, "steps", len(n.Content), p.limits.Steps, "Steps") {
		return nil
	}
	var out []Step
	over := false
	for i, c := range n.Content {
		st, ok := p.step(c, i)
		if !ok {
			continue
		}
		out = append(out, st)
		// Replays and waits take at least their time, one after the other:
		// if that alone passes the timeout, the case can only time out.
		switch {
		case st.Kind == StepReplay:
			p.minTime = satAdd(p.minTime, st.Replay.Duration())
		case st.Kind == StepWait:
			p.minTime = satAdd(p.minTime, st.Wait)
		default:
			continue
		}
		if p.minTime > p.timeout && !over {
			over = true
			p.errf(c, "steps[%d]: the replays and waits up to here take at least %s: more than the scenario's timeout of %s (raise timeout, or replay faster or fewer loops)", i, roundDuration(p.minTime), p.timeout)
		}
	}
	return out
}

func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// roundDuration prints a least duration readably, years included.
func roundDuration(d time.Duration) string {
	if d == math.MaxInt64 {
		return "more than 292 years"
	}
	if d > 48*time.Hour {
		return fmt.Sprintf("%.0f days", d.Hours()/24)
	}
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func (p *parser) step(n *yaml.Node, i int) (Step, bool) {
	what := fmt.Sprintf("steps[%d]", i)
	f, ok := p.mapping(n, what, Keys["step"], nil)
	if !ok {
		return Step{}, false
	}
	st := Step{Pos: p.pos(n)}
	if v, has := f["name"]; has {
		st.Name, _ = p.str(v.val, what+".name")
	}
	var kinds []string
	for _, k := range stepKindNames() {
		if _, has := f[k]; has {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		found := "none"
		if len(kinds) > 1 {
			found = strings.Join(kinds, " and ")
		}
		p.errf(n, "%s: want exactly one step kind (%s), found %s", what, strings.Join(stepKindNames(), ", "), found)
		return st, false
	}
	st.Kind = StepKind(kinds[0])
	v := f[kinds[0]].val
	what += "." + kinds[0]
	n0 := len(p.errs)
	switch st.Kind {
	case StepReplay:
		st.Replay = p.replay(v, what)
	case StepExpectOutput:
		st.ExpectOutput = p.expectOutput(v, what)
	case StepExpectFrames:
		st.ExpectFrames = p.expectFrames(v, what)
	case StepSignal:
		if s, ok := p.str(v, what); ok {
			sig, err := ParseSignal(s)
			if err != nil {
				p.errf(v, "%s: %v", what, err)
			}
			st.Signal = sig
		}
	case StepWait:
		st.Wait, _ = p.duration(v, what)
	case StepExpectExit:
		st.ExpectExit = p.expectExit(v, what)
	case StepExpectNoOutput:
		if m, ok := p.matcher(v, what, Keys["expect_no_output"], nil); ok {
			st.ExpectNoOutput = &m
		}
	}
	return st, len(p.errs) == n0
}

func (p *parser) replay(n *yaml.Node, what string) *Replay {
	if n.Kind == yaml.ScalarNode {
		// replay: NAME is short for replay: {fixture: NAME}.
		n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "fixture", Line: n.Line, Column: n.Column}, n}}
	}
	f, ok := p.mapping(n, what, Keys["replay"], []string{"fixture"})
	if !ok {
		return nil
	}
	r := &Replay{Schedule: replay.Schedule{Kind: replay.Original}, Loops: 1}
	n0 := len(p.errs)
	fixture := f["fixture"].val
	if s, ok := p.str(fixture, what+".fixture"); ok {
		r.Fixture = s
		p.resolveFixture(fixture, what+".fixture", r)
	}
	timing := fixture // where a schedule that does not fit is reported
	if v, has := f["schedule"]; has {
		timing = v.val
		if s, ok := p.str(v.val, what+".schedule"); ok {
			sch, err := replay.ParseSchedule(s)
			if err != nil {
				p.errf(v.val, "%s.schedule: %v", what, err)
			}
			r.Schedule = sch
		}
	}
	if v, has := f["loops"]; has {
		if l, ok := p.integer(v.val, what+".loops"); ok {
			if err := replay.CheckLoops(l); err != nil {
				p.errf(v.val, "%s.loops: %v", what, err)
			} else if _, sched := f["schedule"]; !sched {
				timing = v.val
			}
			r.Loops = l
		}
	}
	budget, limit := p.timeout, "the scenario's timeout"
	if v, has := f["within"]; has {
		if d, ok := p.duration(v.val, what+".within"); ok {
			r.Within = d
			if d > p.timeout {
				p.errf(v.val, "%s.within: %s is more than the scenario's timeout of %s, which ends the case first", what, d, p.timeout)
			}
			budget, limit, timing = d, "within", v.val
		}
	}
	if len(p.errs) == n0 {
		if err := replay.CheckBudget(r.Schedule, r.Records, r.Span, r.Loops, budget); err != nil {
			p.errf(timing, "%s: replaying %s: %v (%s)", what, r.Fixture, err, limit)
		}
	}
	return r
}

func (p *parser) resolveFixture(n *yaml.Node, what string, r *Replay) {
	known := ""
	if p.fixtures != nil {
		if path, sum, ok := p.fixtures.Fixture(r.Fixture); ok {
			r.Path, r.SHA256 = path, sum
			p.scanFixture(n, what, r)
			return
		}
		known = "known fixtures: " + strings.Join(p.fixtures.Names(), ", ")
	} else {
		known = "no fixture manifest configured"
	}
	path := r.Fixture
	if !filepath.IsAbs(path) {
		path = filepath.Join(p.dir, path)
	}
	if _, err := os.Stat(path); err != nil {
		p.errf(n, "%s: unknown fixture %q: not in the pcapfixtures manifest (%s) and no file %s", what, r.Fixture, known, path)
		return
	}
	r.Path = path
	p.scanFixture(n, what, r)
}

// scanFixture reads the whole capture now, so that a file that is not a
// capture, is cut short, has a broken record or a link type other than
// Ethernet refuses the run before any boot, and so that the replay's
// duration is known to check it against the timeout.
func (p *parser) scanFixture(n *yaml.Node, what string, r *Replay) {
	sum, err := scanFixture(r.Path)
	if err != nil {
		p.errf(n, "%s: fixture %q cannot be replayed: %v", what, r.Fixture, err)
		return
	}
	if sum.Records == 0 {
		p.errf(n, "%s: fixture %q (%s) holds no frames: nothing to replay", what, r.Fixture, r.Path)
		return
	}
	if r.SHA256 != "" && r.SHA256 != sum.SHA256 {
		p.errf(n, "%s: fixture %q (%s) has sha256 %s, but its manifest says %s: the file changed", what, r.Fixture, r.Path, sum.SHA256, r.SHA256)
		return
	}
	r.SHA256, r.Records, r.Span = sum.SHA256, sum.Records, sum.Span
}

// expectCommon reads count, within, settle and from.
func (p *parser) expectCommon(f map[string]field, what string, count *CountExpr, within, settle *time.Duration, fromStep *bool) {
	*count = CountExpr{Op: ">=", N: 1}
	*within = DefaultWithin
	*settle = DefaultSettle
	if v, has := f["count"]; has {
		if c, ok := p.count(v.val, what+".count", true); ok {
			*count = c
		}
	}
	if v, has := f["within"]; has {
		if d, ok := p.duration(v.val, what+".within"); ok {
			*within = d
		}
	}
	if v, has := f["settle"]; has {
		if d, ok := p.duration(v.val, what+".settle"); ok {
			*settle = d
		}
	}
	if v, has := f["from"]; has {
		if s, ok := p.str(v.val, what+".from"); ok {
			switch s {
			case "run":
			case "step":
				*fromStep = true
			default:
				p.errf(v.val, "%s.from: want run (count every line since boot) or step (only lines after this step began), found %q", what, s)
			}
		}
	}
}

func (p *parser) expectOutput(n *yaml.Node, what string) *ExpectOutput {
	f, ok := p.mapping(n, what, Keys["expect_output"], nil)
	if !ok {
		return nil
	}
	e := &ExpectOutput{}
	e.Match, _ = p.matcher(n, what, nil, f)
	p.expectCommon(f, what, &e.Count, &e.Within, &e.Settle, &e.FromStep)
	return e
}

func (p *parser) expectFrames(n *yaml.Node, what string) *ExpectFrames {
	f, ok := p.mapping(n, what, Keys["expect_frames"], []string{"filter"})
	if !ok {
		return nil
	}
	e := &ExpectFrames{}
	if v, has := f["filter"]; has {
		if s, ok := p.str(v.val, what+".filter"); ok {
			e.Filter = s
			m, err := replay.CompileFilter(s)
			switch {
			case errors.Is(err, replay.ErrNoFilterCompiler):
				p.errf(v.val, "%s.filter: cannot compile %q: %v", what, s, err)
			case err != nil:
				p.errf(v.val, "%s.filter: bad BPF filter %q: %v", what, s, err)
			}
			e.match = m
		}
	}
	p.expectCommon(f, what, &e.Count, &e.Within, &e.Settle, &e.FromStep)
	return e
}

func (p *parser) expectExit(n *yaml.Node, what string) *ExpectExit {
	e := &ExpectExit{Within: DefaultWithin}
	if n.Kind == yaml.ScalarNode {
		// expect_exit: 0 is short for expect_exit: {code: 0}.
		if c, ok := p.integer(n, what); ok {
			e.Code = &c
		}
		return e
	}
	f, ok := p.mapping(n, what, Keys["expect_exit"], nil)
	if !ok {
		return nil
	}
	_, hasCode := f["code"]
	_, hasSig := f["signal"]
	if hasCode && hasSig {
		p.errf(n, "%s: want code or signal, not both", what)
	}
	if hasCode {
		if c, ok := p.integer(f["code"].val, what+".code"); ok {
			if c < 0 || c > 255 {
				p.errf(f["code"].val, "%s.code: want 0..255, found %d", what, c)
			}
			e.Code = &c
		}
	}
	if hasSig {
		if s, ok := p.str(f["signal"].val, what+".signal"); ok {
			sig, err := ParseSignal(s)
			if err != nil {
				p.errf(f["signal"].val, "%s.signal: %v", what, err)
			}
			e.Signal = sig
		}
	}
	if v, has := f["within"]; has {
		if d, ok := p.duration(v.val, what+".within"); ok {
			e.Within = d
		}
	}
	return e
}
