package startup

import (
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// Word expansion as far as it is known statically: literals and quotes,
// parameters whose values are known (the image's environment, literal
// assignments earlier in the string, the positional parameters given
// after the string), ${VAR:-default}, field splitting on IFS and the
// home directory for ~. A command substitution, an arithmetic expansion,
// a variable set at run time, a glob pattern or a ${…} operator makes a
// word unknown; the reason says which.

type fieldBuilder struct {
	fields []string
	cur    strings.Builder
	have   bool // cur holds a field, possibly an empty quoted one
}

func (b *fieldBuilder) add(s string) {
	b.cur.WriteString(s)
	b.have = true
}

func (b *fieldBuilder) end() {
	if b.have {
		b.fields = append(b.fields, b.cur.String())
	}
	b.cur.Reset()
	b.have = false
}

// split adds the result of an unquoted expansion: IFS characters separate
// fields (and a leading or trailing one ends the field next to it).
func (b *fieldBuilder) split(s, ifs string) {
	isSep := func(r rune) bool { return strings.ContainsRune(ifs, r) }
	if s == "" {
		return
	}
	parts := strings.FieldsFunc(s, isSep)
	if strings.IndexFunc(s[:1], isSep) == 0 {
		b.end()
	}
	for i, p := range parts {
		if i > 0 {
			b.end()
		}
		b.add(p)
	}
	if strings.LastIndexFunc(s, isSep) == len(s)-1 {
		b.end()
	}
}

const globChars = "*?["

// expand returns the fields a word expands to, or why that is not known
// without running the shell.
func (w *shellWalker) expand(word *syntax.Word, st *shellState) ([]string, string) {
	var b fieldBuilder
	ifs := " \t\n"
	if v, ok := st.vars["IFS"]; ok {
		if !v.known {
			return nil, "depends on IFS, which is set at run time"
		}
		ifs = v.val
	}
	for i, part := range word.Parts {
		switch x := part.(type) {
		case *syntax.Lit:
			v := x.Value
			if i == 0 && strings.HasPrefix(v, "~") {
				home, rest, why := w.tilde(v, st)
				if why != "" {
					return nil, why
				}
				b.add(home)
				v = rest
			}
			if !st.noglob && hasUnescapedGlob(v) {
				return nil, "is a pattern the shell matches against the files at run time"
			}
			b.add(unescapeLit(v))
		case *syntax.SglQuoted:
			if x.Dollar && strings.Contains(x.Value, `\`) {
				return nil, "uses $'…' escapes"
			}
			b.add(x.Value)
		case *syntax.DblQuoted:
			b.have = true
			for _, q := range x.Parts {
				switch y := q.(type) {
				case *syntax.Lit:
					b.add(unescapeDbl(y.Value))
				case *syntax.ParamExp:
					val, at, why := w.param(y, st)
					if why != "" {
						return nil, why
					}
					if at != nil {
						// "$@": one field per positional parameter, the
						// first and last joined to the text around them.
						if len(at) == 0 {
							b.have = b.cur.Len() > 0
							continue
						}
						for j, f := range at {
							if j > 0 {
								b.end()
							}
							b.add(f)
						}
						continue
					}
					b.add(val)
				case *syntax.CmdSubst:
					return nil, "comes from a command substitution, known only at run time"
				default:
					return nil, "uses an expansion hil does not evaluate"
				}
			}
		case *syntax.ParamExp:
			val, at, why := w.param(x, st)
			if why != "" {
				return nil, why
			}
			if at != nil {
				val = strings.Join(at, " ")
			}
			if !st.noglob && strings.ContainsAny(val, globChars) {
				return nil, "expands to a pattern the shell matches against the files at run time"
			}
			b.split(val, ifs)
		case *syntax.CmdSubst, *syntax.ProcSubst:
			return nil, "comes from a command substitution, known only at run time"
		case *syntax.ArithmExp:
			return nil, "comes from an arithmetic expansion"
		default:
			return nil, "uses an expansion hil does not evaluate"
		}
	}
	b.end()
	return b.fields, ""
}

// expandAssign expands the value of VAR=value: no field splitting, no
// globbing.
func (w *shellWalker) expandAssign(word *syntax.Word, st *shellState) (string, string) {
	saved := st.noglob
	st.noglob = true
	defer func() { st.noglob = saved }()
	fs, why := w.expand(&syntax.Word{Parts: quoteAll(word.Parts)}, st)
	if why != "" {
		return "", why
	}
	return strings.Join(fs, " "), ""
}

// quoteAll wraps bare parameter expansions in double quotes, which is how
// an assignment treats them (no field splitting).
func quoteAll(parts []syntax.WordPart) []syntax.WordPart {
	out := make([]syntax.WordPart, len(parts))
	for i, p := range parts {
		if pe, ok := p.(*syntax.ParamExp); ok {
			out[i] = &syntax.DblQuoted{Parts: []syntax.WordPart{pe}}
			continue
		}
		out[i] = p
	}
	return out
}

// param is the value of a parameter expansion; at is set (possibly empty)
// for $@ and $*, which stand for the positional parameters.
func (w *shellWalker) param(pe *syntax.ParamExp, st *shellState) (val string, at []string, why string) {
	if pe.Excl || pe.Length || pe.Width || pe.Index != nil || pe.Slice != nil || pe.Repl != nil || pe.Names != 0 || pe.Param == nil {
		return "", nil, "uses a ${…} operator hil does not evaluate"
	}
	name := pe.Param.Value
	var set, known bool
	switch {
	case name == "@" || name == "*":
		if !st.posKnown {
			return "", nil, "uses the positional parameters, known only at run time"
		}
		if pe.Exp != nil {
			return "", nil, "uses a ${…} operator hil does not evaluate"
		}
		return "", append([]string{}, st.pos...), ""
	case name == "#":
		if !st.posKnown {
			return "", nil, "uses $#, known only at run time"
		}
		val, set, known = strconv.Itoa(len(st.pos)), true, true
	case name == "0":
		val, set, known = st.arg0, true, true
	case name[0] >= '1' && name[0] <= '9':
		n, _ := strconv.Atoi(name)
		if !st.posKnown {
			return "", nil, "uses $" + name + ", known only at run time"
		}
		if n <= len(st.pos) {
			val, set = st.pos[n-1], true
		}
		known = true
	case !syntax.ValidName(name):
		return "", nil, "uses $" + name + ", known only at run time"
	default:
		v, ok := st.vars[name]
		val, set, known = v.val, ok, v.known
		if ok && !known {
			return "", nil, "uses $" + name + ", which the string sets to a value known only at run time"
		}
	}
	if pe.Exp != nil {
		switch pe.Exp.Op {
		case syntax.DefaultUnset, syntax.DefaultUnsetOrNull:
			if !set || (pe.Exp.Op == syntax.DefaultUnsetOrNull && val == "") {
				if pe.Exp.Word == nil {
					return "", nil, ""
				}
				v, why := w.expandAssign(pe.Exp.Word, st)
				return v, nil, why
			}
			return val, nil, ""
		default:
			return "", nil, "uses the ${" + name + pe.Exp.Op.String() + "…} operator, which hil does not evaluate"
		}
	}
	if !set {
		return "", nil, "uses $" + name + ", which the image does not set: its value comes from the run (docker run -e …)"
	}
	return val, nil, ""
}

// tilde expands a leading ~ or ~/ with HOME.
func (w *shellWalker) tilde(v string, st *shellState) (home, rest, why string) {
	end := strings.IndexByte(v, '/')
	if end < 0 {
		end = len(v)
	}
	if end != 1 {
		return "", "", "starts with ~user, a home directory known only at run time"
	}
	h, ok := st.vars["HOME"]
	if !ok || !h.known {
		return "", "", "starts with ~ and HOME is not known"
	}
	return h.val, v[1:], ""
}

func hasUnescapedGlob(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// unescapeLit removes the backslashes of an unquoted literal.
func unescapeLit(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unescapeDbl removes the backslashes that escape $ ` " \ inside double
// quotes (the others stay).
func unescapeDbl(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
