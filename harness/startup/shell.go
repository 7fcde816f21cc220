package startup

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// Shell-form commands. Docker stores `ENTRYPOINT /opt/app --flag` as
// ["/bin/sh", "-c", "/opt/app --flag"]: the kernel starts the shell, and
// the shell starts what the string says. The string is parsed with
// mvdan.cc/sh (POSIX for sh/dash/ash, bash for bash) and walked like the
// shell would run it, as far as that is known without running anything:
// simple commands, `exec`, leading VAR=value assignments, `&&`/`||`/`;`
// lists, pipelines, subshells and { } groups, `cd` to a literal directory,
// `export`, command substitutions in arguments, nested `sh -c`, and the
// common wrappers (env, nohup, nice, setsid, timeout, tini, dumb-init,
// gosu, su-exec). Builtins are not programs. What decides at run time
// which program runs (a variable or command substitution in the command
// word, if/case/loops, functions, eval, `.`) is reported as not checked,
// with the reason.

// shells are the argv[0] base names taken as a POSIX-style shell.
var shells = map[string]syntax.LangVariant{
	"sh": syntax.LangPOSIX, "dash": syntax.LangPOSIX, "ash": syntax.LangPOSIX,
	"bash": syntax.LangBash,
}

// maxShellDepth bounds nested `sh -c` strings and trap actions.
const maxShellDepth = 4

// maxShellScript bounds the string parsed (a Docker config is a few KiB).
const maxShellScript = 256 << 10

// shellInvocation is `SHELL [flags] -c STRING [ARG0 [ARGS…]]`.
type shellInvocation struct {
	shell     string
	lang      syntax.LangVariant
	script    string
	arg0      string
	args      []string
	allexport bool
	noglob    bool
	noexec    bool
}

// shellCommand recognises a shell with -c in argv. Options before the
// string follow POSIX sh: -c may be combined with others (-ec), -o and +o
// take a name, and bash's --long options are skipped.
func shellCommand(argv []string) (shellInvocation, bool) {
	if len(argv) < 2 {
		return shellInvocation{}, false
	}
	lang, ok := shells[path.Base(argv[0])]
	if !ok {
		return shellInvocation{}, false
	}
	inv := shellInvocation{shell: argv[0], lang: lang}
	cmode := false
	i := 1
	for ; i < len(argv); i++ {
		a := argv[i]
		if a == "--" || a == "-" {
			i++
			break
		}
		if len(a) < 2 || (a[0] != '-' && a[0] != '+') {
			break
		}
		if strings.HasPrefix(a, "--") {
			continue // bash: --norc, --posix, --login …
		}
		on := a[0] == '-'
		for _, f := range a[1:] {
			switch f {
			case 'c':
				cmode = cmode || on
			case 'a':
				inv.allexport = on
			case 'f':
				inv.noglob = on
			case 'n':
				inv.noexec = on
			case 'o', 'O':
				i++ // the option name
			}
		}
	}
	if !cmode || i >= len(argv) {
		return shellInvocation{}, false
	}
	inv.script = argv[i]
	if i+1 < len(argv) {
		inv.arg0 = argv[i+1]
		inv.args = append([]string{}, argv[i+2:]...)
	} else {
		inv.arg0 = argv[0]
	}
	return inv, true
}

// shellVar is one shell variable as far as it is known.
type shellVar struct {
	val      string
	known    bool
	exported bool
}

// shellState is what the shell knows at a point of the string.
type shellState struct {
	vars      map[string]shellVar
	cwd       string // "" once cd went somewhere known only at run time
	pos       []string
	posKnown  bool
	arg0      string
	allexport bool
	noglob    bool
	funcs     map[string]bool
}

func (s *shellState) clone() *shellState {
	n := *s
	n.vars = make(map[string]shellVar, len(s.vars))
	for k, v := range s.vars {
		n.vars[k] = v
	}
	n.pos = append([]string{}, s.pos...)
	n.funcs = make(map[string]bool, len(s.funcs))
	for k, v := range s.funcs {
		n.funcs[k] = v
	}
	return &n
}

func (s *shellState) set(name string, v shellVar) {
	old, had := s.vars[name]
	v.exported = v.exported || (had && old.exported) || s.allexport
	s.vars[name] = v
}

// shellWalker walks one string.
type shellWalker struct {
	c      *checker
	inv    shellInvocation
	script string
	out    *ShellScript
	depth  int
	seen   map[string]bool // program checks already done (same command, env, dir)
}

// checkShell resolves what a shell's -c string runs and checks each
// program, under the current env and working directory.
func (c *checker) checkShell(inv shellInvocation, depth int) error {
	out := &ShellScript{Shell: inv.shell, Script: inv.script, Runs: []*Run{}}
	if depth == 0 {
		c.rep.Shell = out
	} else if c.rep.Shell != nil {
		// Nested strings add their runs to the top-level list.
		out = c.rep.Shell
	}
	if inv.noexec {
		c.note("%s -n: the shell reads the string but runs nothing", inv.shell)
		return nil
	}
	w := &shellWalker{c: c, inv: inv, script: inv.script, out: out, depth: depth, seen: map[string]bool{}}
	cwd := c.cwd
	if c.cwdUnknown {
		cwd = ""
	}
	st := &shellState{
		vars: map[string]shellVar{}, cwd: cwd, pos: inv.args, posKnown: true, arg0: inv.arg0,
		allexport: inv.allexport, noglob: inv.noglob, funcs: map[string]bool{},
	}
	for k, v := range c.env {
		st.vars[k] = shellVar{val: v, known: true, exported: true}
	}
	if _, ok := st.vars["PATH"]; !ok {
		// Docker sets PATH when the image has none (DefaultPath).
		st.vars["PATH"] = shellVar{val: DefaultPath, known: true, exported: true}
	}
	if len(inv.script) > maxShellScript {
		w.notChecked(nil, fmt.Sprintf("the string is %d bytes, more than the %d hil parses", len(inv.script), maxShellScript))
		return c.ctx.Err()
	}
	f, err := syntax.NewParser(syntax.Variant(inv.lang)).Parse(strings.NewReader(inv.script), "")
	if err != nil {
		w.notChecked(nil, fmt.Sprintf("%s's string does not parse as %s (%v): the shell may refuse it with a syntax error", path.Base(inv.shell), inv.lang, err))
		return c.ctx.Err()
	}
	w.stmts(f.Stmts, st)
	return c.ctx.Err()
}

// text is the source of a node in the string, shortened for messages.
func (w *shellWalker) text(n syntax.Node) string {
	if n == nil {
		return shorten(w.script)
	}
	a, b := int(n.Pos().Offset()), int(n.End().Offset())
	if a < 0 || b > len(w.script) || a > b {
		return "?"
	}
	return shorten(w.script[a:b])
}

func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

func posOf(n syntax.Node) string {
	if n == nil || !n.Pos().IsValid() {
		return ""
	}
	return fmt.Sprintf("%d:%d", n.Pos().Line(), n.Pos().Col())
}

func (w *shellWalker) notChecked(n syntax.Node, reason string) {
	what := w.text(n)
	if n == nil {
		what = path.Base(w.inv.shell) + " -c " + shorten(w.script)
	}
	w.c.rep.NotChecked = append(w.c.rep.NotChecked, NotChecked{What: what, Pos: posOf(n), Reason: reason})
}

func (w *shellWalker) stmts(list []*syntax.Stmt, st *shellState) {
	for _, s := range list {
		if w.c.ctx.Err() != nil {
			return
		}
		if w.stmt(s, st) {
			// exec PROGRAM or exit: nothing after it runs.
			return
		}
	}
}

// stmt walks one statement; it reports whether the statement ends the
// shell for certain (exec of a program, exit).
func (w *shellWalker) stmt(s *syntax.Stmt, st *shellState) bool {
	for _, r := range s.Redirs {
		w.substs(r.Word, st)
		w.substs(r.Hdoc, st)
	}
	switch x := s.Cmd.(type) {
	case nil:
	case *syntax.CallExpr:
		return w.call(x, st)
	case *syntax.BinaryCmd:
		switch x.Op {
		case syntax.AndStmt, syntax.OrStmt:
			// Both sides may run; what the left one changes (cd) is seen
			// by the right one.
			w.stmt(x.X, st)
			w.stmt(x.Y, st)
		default:
			// Each side of a pipeline runs in a subshell.
			w.stmt(x.X, st.clone())
			w.stmt(x.Y, st.clone())
		}
	case *syntax.Subshell:
		w.stmts(x.Stmts, st.clone())
	case *syntax.Block:
		w.stmts(x.Stmts, st)
	case *syntax.TimeClause:
		if x.Stmt != nil {
			return w.stmt(x.Stmt, st)
		}
	case *syntax.DeclClause:
		w.decl(x, st)
	case *syntax.FuncDecl:
		st.funcs[x.Name.Value] = true
		w.notChecked(x, fmt.Sprintf("defines the shell function %s: what a function runs is not followed", x.Name.Value))
	case *syntax.IfClause:
		w.notChecked(x, "an if clause: which commands run is decided at run time")
	case *syntax.WhileClause:
		w.notChecked(x, "a while/until loop: which commands run is decided at run time")
	case *syntax.ForClause:
		w.notChecked(x, "a for loop: which commands run is decided at run time")
	case *syntax.CaseClause:
		w.notChecked(x, "a case clause: which commands run is decided at run time")
	case *syntax.CoprocClause:
		w.notChecked(x, "a coprocess")
	case *syntax.TestClause, *syntax.ArithmCmd, *syntax.LetClause:
		// Builtins; only command substitutions inside run something.
		syntax.Walk(x, func(n syntax.Node) bool { return w.substNode(n, st) })
	default:
		w.notChecked(x, fmt.Sprintf("a %T is not something hil resolves", x))
	}
	return false
}

// substs walks the command substitutions of a word (they run before the
// command the word belongs to, each in a subshell).
func (w *shellWalker) substs(word *syntax.Word, st *shellState) {
	if word == nil {
		return
	}
	syntax.Walk(word, func(n syntax.Node) bool { return w.substNode(n, st) })
}

func (w *shellWalker) substNode(n syntax.Node, st *shellState) bool {
	switch x := n.(type) {
	case *syntax.CmdSubst:
		w.stmts(x.Stmts, st.clone())
		return false
	case *syntax.ProcSubst:
		w.stmts(x.Stmts, st.clone())
		return false
	}
	return true
}

// call walks a simple command; it reports whether the shell ends there.
func (w *shellWalker) call(ce *syntax.CallExpr, st *shellState) bool {
	for _, a := range ce.Assigns {
		w.substs(a.Value, st)
	}
	for _, a := range ce.Args {
		w.substs(a, st)
	}
	if len(ce.Args) == 0 {
		for _, a := range ce.Assigns {
			w.assign(a, st, false)
		}
		return false
	}
	fields, bad, why := w.expandArgs(ce.Args, st)
	if len(fields) == 0 {
		if bad != nil {
			w.notChecked(bad, "the command word "+why)
		}
		return false
	}
	// VAR=value before a command is in that command's environment only.
	env := st.clone()
	for _, a := range ce.Assigns {
		w.assign(a, env, true)
	}
	return w.command(ce, fields, bad, why, st, env)
}

// expandArgs expands the words of a command into fields, stopping at the
// first word that cannot be known; bad is that word and why says why.
func (w *shellWalker) expandArgs(words []*syntax.Word, st *shellState) (fields []string, bad *syntax.Word, why string) {
	for _, word := range words {
		fs, reason := w.expand(word, st)
		if reason != "" {
			return fields, word, reason
		}
		fields = append(fields, fs...)
	}
	return fields, nil, ""
}

// builtins run inside the shell: not programs. Special handling for
// exec, command, cd, export, readonly, unset, set, shift, local, declare,
// typeset, eval, ., source, trap and exit is in command.
var builtins = map[string]bool{
	":": true, "true": true, "false": true, "echo": true, "printf": true, "test": true, "[": true,
	"pwd": true, "read": true, "wait": true, "umask": true, "ulimit": true, "times": true, "kill": true,
	"getopts": true, "hash": true, "type": true, "alias": true, "unalias": true, "jobs": true, "fg": true,
	"bg": true, "return": true, "break": true, "continue": true,
	// bash
	"shopt": true, "enable": true, "builtin": true, "caller": true, "compgen": true, "complete": true,
	"compopt": true, "dirs": true, "disown": true, "help": true, "history": true, "logout": true,
	"mapfile": true, "readarray": true, "popd": true, "pushd": true, "suspend": true, "bind": true, "let": true,
}

func (w *shellWalker) command(ce *syntax.CallExpr, fields []string, bad *syntax.Word, why string, st, env *shellState) bool {
	name, args := fields[0], fields[1:]
	if st.funcs[name] {
		return false // the definition is already reported
	}
	// needArg is for builtins whose next field matters but was not known.
	needArg := func(what string) {
		if bad != nil {
			w.notChecked(bad, what+" "+why)
		}
	}
	switch name {
	case "exec":
		for len(args) > 0 && strings.HasPrefix(args[0], "-") {
			if args[0] == "--" {
				args = args[1:]
				break
			}
			if args[0] == "-a" && len(args) > 1 {
				args = args[2:]
				continue
			}
			args = args[1:]
		}
		if len(args) == 0 {
			needArg("the program exec runs")
			return false
		}
		w.program(ce, args, bad, why, env)
		return true
	case "command":
		for len(args) > 0 && strings.HasPrefix(args[0], "-") {
			switch args[0] {
			case "-v", "-V":
				return false
			case "-p":
				env = env.clone()
				env.vars["PATH"] = shellVar{val: "/usr/bin:/bin", known: true, exported: env.vars["PATH"].exported}
			}
			args = args[1:]
		}
		if len(args) == 0 {
			needArg("the program command runs")
			return false
		}
		if builtins[args[0]] {
			return false
		}
		w.program(ce, args, bad, why, env)
		return false
	case "eval":
		w.notChecked(ce, "eval runs a string that is built at run time")
		return false
	case ".", "source":
		w.notChecked(ce, name+" reads another script into this shell: what it runs is not followed")
		return false
	case "trap":
		w.trap(ce, args, bad, st)
		return false
	case "exit":
		return true
	case "cd":
		w.cd(args, bad, st)
		return false
	case "export", "readonly", "local", "declare", "typeset":
		w.exportArgs(name, ce, args, bad, st)
		return false
	case "unset":
		for _, a := range args {
			if !strings.HasPrefix(a, "-") {
				delete(st.vars, a)
			}
		}
		return false
	case "set":
		w.set(args, bad, st)
		return false
	case "shift":
		n := 1
		if len(args) > 0 {
			if v, err := strconv.Atoi(args[0]); err == nil {
				n = v
			}
		}
		if bad != nil {
			st.posKnown = false
		} else if n <= len(st.pos) {
			st.pos = st.pos[n:]
		}
		return false
	}
	if builtins[name] {
		return false
	}
	w.program(ce, fields, bad, why, env)
	return false
}

// wrappers run another program given on their command line; skip says
// how many fields after the options belong to the wrapper itself, and
// opts lists options that take a value.
var wrappers = map[string]struct {
	skip int
	opts map[string]bool
}{
	"env":       {0, map[string]bool{"-u": true, "--unset": true, "-C": true, "--chdir": true}},
	"nohup":     {0, nil},
	"nice":      {0, map[string]bool{"-n": true, "--adjustment": true}},
	"setsid":    {0, nil},
	"timeout":   {1, map[string]bool{"-k": true, "--kill-after": true, "-s": true, "--signal": true}},
	"tini":      {0, map[string]bool{"-p": true, "-e": true}},
	"dumb-init": {0, map[string]bool{"-r": true, "--rewrite": true}},
	"gosu":      {1, nil},
	"su-exec":   {1, nil},
}

// program checks one program start, then follows wrappers and nested
// `sh -c` strings.
func (w *shellWalker) program(ce *syntax.CallExpr, fields []string, bad *syntax.Word, why string, env *shellState) {
	name := fields[0]
	if ok := w.checkRun(ce, fields, env); !ok {
		return
	}
	base := path.Base(name)
	if wr, ok := wrappers[base]; ok {
		rest := fields[1:]
		next := env.clone()
		for len(rest) > 0 {
			a := rest[0]
			if a == "--" {
				rest = rest[1:]
				break
			}
			if base == "env" && !strings.HasPrefix(a, "-") && strings.Contains(a, "=") {
				k, v, _ := strings.Cut(a, "=")
				next.vars[k] = shellVar{val: v, known: true, exported: true}
				rest = rest[1:]
				continue
			}
			if !strings.HasPrefix(a, "-") || a == "-" {
				break
			}
			if base == "env" && (a == "-i" || a == "--ignore-environment") {
				next.vars = map[string]shellVar{}
			}
			if base == "env" && (a == "-C" || a == "--chdir" || strings.HasPrefix(a, "--chdir=")) {
				w.notChecked(ce, "env --chdir starts the program in another directory: not followed")
				return
			}
			if wr.opts[a] && len(rest) > 1 {
				rest = rest[1:] // the option's value
			}
			rest = rest[1:]
		}
		if len(rest) > wr.skip {
			w.program(ce, rest[wr.skip:], bad, why, next)
		} else if bad != nil {
			w.notChecked(bad, "the program "+base+" runs "+why)
		}
		return
	}
	if inv, ok := shellCommand(fields); ok {
		if w.depth+1 >= maxShellDepth {
			w.notChecked(ce, fmt.Sprintf("more than %d nested shell strings", maxShellDepth))
			return
		}
		w.c.withRunEnv(env, func() error { return w.c.checkShell(inv, w.depth+1) })
		return
	}
	if _, ok := shells[base]; ok && len(fields) > 1 {
		w.c.note("%s %s: the script the shell reads is not followed", name, fields[1])
	}
}

// checkRun checks one program under the shell's state at that point. It
// returns false when the program could not be resolved (not checked).
func (w *shellWalker) checkRun(ce *syntax.CallExpr, fields []string, st *shellState) bool {
	name := fields[0]
	pathVar := st.vars["PATH"]
	switch {
	case !strings.Contains(name, "/") && !pathVar.known:
		w.notChecked(ce, "PATH is set to a value known only at run time, so which "+name+" runs is not known")
		return false
	case !strings.Contains(name, "/") && st.cwd == "" && hasRelativeDir(pathVar.val):
		w.notChecked(ce, "PATH has relative directories and the working directory is known only at run time")
		return false
	case strings.Contains(name, "/") && !path.IsAbs(name) && st.cwd == "":
		w.notChecked(ce, "a relative path after cd to a directory known only at run time")
		return false
	}
	if ld := st.vars["LD_LIBRARY_PATH"]; ld.exported && !ld.known {
		w.notChecked(ce, "LD_LIBRARY_PATH is set to a value known only at run time, so where "+name+"'s libraries come from is not known")
		return false
	}
	key := strings.Join([]string{name, st.cwd, pathVar.val, st.vars["LD_LIBRARY_PATH"].val}, "\x00")
	if w.seen[key] {
		return true
	}
	w.seen[key] = true
	run := &Run{Command: fields, Pos: posOf(ce)}
	w.out.Runs = append(w.out.Runs, run)
	saved := w.c.cur
	savedPrefix := w.c.prefix
	w.c.cur = run
	w.c.prefix = fmt.Sprintf("%s -c runs %s: ", path.Base(w.inv.shell), name)
	_ = w.c.withRunEnv(st, func() error { return w.c.checkProgram(name) })
	w.c.cur, w.c.prefix = saved, savedPrefix
	return true
}

func hasRelativeDir(p string) bool {
	for _, d := range splitPath(p) {
		if !path.IsAbs(d) {
			return true
		}
	}
	return false
}

// withRunEnv runs f with the checker's env and working directory set to
// the shell state's (exported, known variables; PATH as the shell has it).
func (c *checker) withRunEnv(st *shellState, f func() error) error {
	savedEnv, savedCwd := c.env, c.cwd
	env := map[string]string{}
	for k, v := range st.vars {
		if v.known && (v.exported || k == "PATH") {
			env[k] = v.val
		}
	}
	savedUnknown := c.cwdUnknown
	c.env, c.cwd, c.cwdUnknown = env, st.cwd, st.cwd == ""
	if c.cwdUnknown {
		// Only absolute paths get resolved then (checkRun refuses the
		// rest); a nested shell starts with the directory unknown.
		c.cwd = savedCwd
	}
	err := f()
	c.env, c.cwd, c.cwdUnknown = savedEnv, savedCwd, savedUnknown
	return err
}

func (w *shellWalker) assign(a *syntax.Assign, st *shellState, export bool) {
	if a.Name == nil {
		return
	}
	v := shellVar{exported: export}
	if a.Array != nil || a.Index != nil {
		st.set(a.Name.Value, v) // arrays: not a value a program sees
		return
	}
	val := ""
	if a.Value != nil {
		fs, reason := w.expandAssign(a.Value, st)
		if reason != "" {
			st.set(a.Name.Value, v)
			return
		}
		val = fs
	}
	if a.Append {
		old := st.vars[a.Name.Value]
		if !old.known {
			st.set(a.Name.Value, v)
			return
		}
		val = old.val + val
	}
	v.val, v.known = val, true
	st.set(a.Name.Value, v)
}

// exportArgs handles export/readonly/local/declare/typeset in POSIX mode,
// where they are ordinary commands whose arguments are NAME[=VALUE].
func (w *shellWalker) exportArgs(name string, ce *syntax.CallExpr, args []string, bad *syntax.Word, st *shellState) {
	export := name == "export" || st.allexport
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		k, v, hasValue := strings.Cut(a, "=")
		if !hasValue {
			if old, ok := st.vars[k]; ok {
				old.exported = old.exported || export
				st.vars[k] = old
			} else if export {
				st.vars[k] = shellVar{exported: true, known: true}
			}
			continue
		}
		st.set(k, shellVar{val: v, known: true, exported: export})
	}
	if bad != nil {
		// A later NAME=$(…) is set to something known only at run time.
		if k, _, ok := strings.Cut(w.text(bad), "="); ok && syntax.ValidName(k) {
			st.set(k, shellVar{exported: export})
		}
	}
}

// decl is bash's parsed export/declare/local/readonly.
func (w *shellWalker) decl(d *syntax.DeclClause, st *shellState) {
	export := d.Variant.Value == "export"
	for _, a := range d.Args {
		w.substs(a.Value, st)
		if a.Naked && a.Name != nil {
			if old, ok := st.vars[a.Name.Value]; ok {
				old.exported = old.exported || export
				st.vars[a.Name.Value] = old
			}
			continue
		}
		w.assign(a, st, export)
	}
}

func (w *shellWalker) cd(args []string, bad *syntax.Word, st *shellState) {
	for len(args) > 0 && (args[0] == "-L" || args[0] == "-P" || args[0] == "-e" || args[0] == "-@") {
		args = args[1:]
	}
	switch {
	case bad != nil && len(args) == 0:
		st.cwd = ""
	case len(args) == 0:
		if h := st.vars["HOME"]; h.known && h.val != "" {
			st.cwd = path.Clean(h.val)
		} else {
			st.cwd = ""
		}
	case args[0] == "-":
		st.cwd = ""
	case path.IsAbs(args[0]):
		st.cwd = path.Clean(args[0])
	case st.cwd != "":
		st.cwd = path.Join(st.cwd, args[0])
	}
}

func (w *shellWalker) set(args []string, bad *syntax.Word, st *shellState) {
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || (a[0] != '-' && a[0] != '+') {
			break
		}
		on := a[0] == '-'
		for _, f := range a[1:] {
			switch f {
			case 'a':
				st.allexport = on
			case 'f':
				st.noglob = on
			case 'o':
				if i+1 < len(args) {
					i++
					switch args[i] {
					case "allexport":
						st.allexport = on
					case "noglob":
						st.noglob = on
					}
				}
			}
		}
	}
	if bad != nil {
		st.posKnown = false
		return
	}
	if i < len(args) || (len(args) > 0 && args[len(args)-1] == "--") {
		st.pos, st.posKnown = append([]string{}, args[i:]...), true
	}
}

// trap ACTION CONDITION…: the action is a string the shell runs on a
// signal; a literal one is walked like the main string.
func (w *shellWalker) trap(ce *syntax.CallExpr, args []string, bad *syntax.Word, st *shellState) {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) < 2 {
		if bad != nil {
			w.notChecked(ce, "a trap action known only at run time")
		}
		return
	}
	action := args[0]
	if action == "" || action == "-" {
		return
	}
	if _, err := strconv.Atoi(action); err == nil {
		return // trap N…: resets the conditions
	}
	if w.depth+1 >= maxShellDepth {
		w.notChecked(ce, fmt.Sprintf("more than %d nested shell strings", maxShellDepth))
		return
	}
	f, err := syntax.NewParser(syntax.Variant(w.inv.lang)).Parse(strings.NewReader(action), "")
	if err != nil {
		w.notChecked(ce, fmt.Sprintf("the trap action does not parse (%v)", err))
		return
	}
	sub := &shellWalker{c: w.c, inv: w.inv, script: action, out: w.out, depth: w.depth + 1, seen: w.seen}
	sub.stmts(f.Stmts, st.clone())
}
