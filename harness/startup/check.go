// Package startup checks statically, in pure Go, that an image's entrypoint
// can start on a platform: it resolves the command the way the kernel and
// ld.so would (PATH, #! scripts, ELF machine/class/float ABI, PT_INTERP, the
// DT_NEEDED closure through RPATH/LD_LIBRARY_PATH/RUNPATH/ld.so.cache/the
// default dirs, and every DT_VERNEED version against the provider's
// DT_VERDEF) without running anything from the image. A shell-form command
// (`sh -c STRING`) is parsed with a real shell parser and every program the
// string runs is checked the same way; what cannot be resolved statically
// is reported as not checked. With a board, every ELF of every closure is
// also held to the board's instruction set (.ARM.attributes, GOARM).
package startup

//go:generate bash testdata/gen.sh

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/hilproject/hil/harness/board"
)

// DefaultPath is what Docker sets when the image env has no PATH.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxScriptDepth is the kernel's limit of nested #! interpreters.
const maxScriptDepth = 4

// Config is what the check needs from the image config.
type Config struct {
	// Platform is an OCI platform: linux/arm/v7, linux/arm64, linux/amd64.
	Platform   string
	Entrypoint []string
	Cmd        []string
	// Env is KEY=VALUE pairs; PATH and LD_LIBRARY_PATH are used.
	Env        []string
	WorkingDir string
	// Board, when set, holds every ELF the command loads to the board's
	// instruction set (build attributes, GOARM) and word size.
	Board *board.Board
}

// Check resolves the command of cfg inside the flattened image at rootfs
// and reports whether it would start. Problems with the image go in the
// Report; the error is only for a check that could not run (no rootfs,
// unknown platform, cancelled context).
func Check(ctx context.Context, rootfs string, cfg Config) (*Report, error) {
	a, err := parsePlatform(cfg.Platform)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(rootfs)
	if err != nil {
		return nil, fmt.Errorf("startup check: rootfs: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("startup check: rootfs %s is not a directory", rootfs)
	}
	c := &checker{
		ctx: ctx, root: rootFS{dir: rootfs}, arch: a, cfg: cfg, board: cfg.Board,
		parsed:  map[string]parsedELF{},
		rep:     &Report{Platform: cfg.Platform, Problems: []Problem{}},
		elfSeen: map[string]bool{},
	}
	if c.board != nil {
		c.rep.Board = c.board.String()
	}
	if err := c.run(); err != nil {
		return nil, err
	}
	if c.board != nil {
		c.checkBoard()
	}
	// The closure walk stops early when ctx ends: never return a partial
	// report as if it were complete.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("startup check: %w", err)
	}
	return c.rep, nil
}

type parsedELF struct {
	info *elfInfo
	err  error
}

type checker struct {
	ctx         context.Context
	root        rootFS
	arch        arch
	cfg         Config
	board       *board.Board
	rep         *Report
	parsed      map[string]parsedELF // by real in-root path
	cache       *ldCache
	cacheLoaded bool

	// The program being checked: the entrypoint's, or one a shell string
	// runs. env is the environment it starts with, cwd its working
	// directory, and prefix goes before its problems ("sh -c runs X: ").
	cur    *Run
	env    map[string]string
	cwd    string
	prefix string
	// cwdUnknown is set while checking what a shell runs after a cd to a
	// directory known only at run time.
	cwdUnknown bool

	// elfs is every ELF of every closure, once, in the order met: what the
	// board check reads.
	elfs    []elfUse
	elfSeen map[string]bool
}

// elfUse is one ELF a program loads and its role there.
type elfUse struct {
	obj    *Object
	info   *elfInfo
	role   elfRole
	prefix string
}

type elfRole int

const (
	roleLibrary elfRole = iota
	// roleProgram is the executable itself (GOARM is read from programs).
	roleProgram
	// roleLoader is ld.so: built with the distribution's baseline flags.
	roleLoader
)

// node is an object in ld.so's link map while the closure is built.
type node struct {
	obj    *Object
	info   *elfInfo
	loader *node // the object whose DT_NEEDED brought it in
	origin string
}

func (c *checker) problem(kind Kind, neededBy, object, format string, args ...any) {
	c.rep.Problems = append(c.rep.Problems, Problem{
		Kind: kind, NeededBy: neededBy, Object: object, Message: c.prefix + fmt.Sprintf(format, args...),
	})
}

func (c *checker) note(format string, args ...any) {
	c.rep.Notes = append(c.rep.Notes, c.prefix+fmt.Sprintf(format, args...))
}

func (c *checker) run() error {
	c.env = map[string]string{}
	for _, kv := range c.cfg.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			c.env[k] = v
		}
	}
	c.cwd = "/"
	if c.cfg.WorkingDir != "" {
		c.cwd = path.Clean("/" + c.cfg.WorkingDir)
	}
	argv := append(append([]string{}, c.cfg.Entrypoint...), c.cfg.Cmd...)
	c.rep.Command = argv
	if len(argv) == 0 || argv[0] == "" {
		c.problem(KindNoCommand, "", "", "the image config has neither Entrypoint nor Cmd: there is nothing to start")
		return nil
	}
	root := &Run{Command: argv}
	c.cur = root
	err := c.checkProgram(argv[0])
	c.rep.Scripts, c.rep.Program, c.rep.Interpreter, c.rep.Static = root.Scripts, root.Program, root.Interpreter, root.Static
	if err != nil {
		return err
	}
	if sh, ok := shellCommand(argv); ok {
		// Docker's shell form ["/bin/sh", "-c", "STRING"]: the shell is
		// checked above; now what the string runs.
		return c.checkShell(sh, 0)
	}
	return nil
}

// checkProgram checks one program start into c.cur: the command looked up
// like execvp, #! scripts followed to the ELF, the ELF and its closure.
func (c *checker) checkProgram(command string) error {
	// The program's float ABI may pick the ABI of the platform (arm/v6);
	// the next program picks its own.
	defer func(a arch) { c.arch = a }(c.arch)
	prog, ok := c.findCommand(command)
	if !ok {
		return nil
	}
	// Follow #! scripts to the ELF the kernel ends up executing.
	for depth := 0; ; depth++ {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		head, err := c.readHead(prog.RealPath)
		if err != nil {
			c.problem(KindNotExecutable, "", prog.Path, "cannot read %s: %v", prog.Path, err)
			return nil
		}
		if isELF(head) {
			break
		}
		if !bytes.HasPrefix(head, []byte("#!")) {
			c.problem(KindNotExecutable, "", prog.Path, "%s is neither an ELF file nor a #! script (exec format error)", prog.Path)
			return nil
		}
		if depth >= maxScriptDepth {
			c.problem(KindNotExecutable, "", prog.Path, "%s: more than %d nested #! interpreters (the kernel gives up with ELOOP)", prog.Path, maxScriptDepth)
			return nil
		}
		interp, arg := parseShebang(head)
		if interp == "" {
			c.problem(KindNotExecutable, "", prog.Path, "%s starts with #! but names no interpreter", prog.Path)
			return nil
		}
		c.cur.Scripts = append(c.cur.Scripts, Script{Path: prog.Path, Interpreter: interp, Arg: arg})
		r, err := c.resolveExec(interp)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				c.problem(KindMissingProgram, prog.Path, interp, "script %s needs the interpreter %s but it is not in the image (%v)", prog.Path, interp, err)
			} else {
				c.problem(KindNotExecutable, prog.Path, interp, "script %s needs the interpreter %s: %v", prog.Path, interp, err)
			}
			return nil
		}
		if !executable(r.Info) {
			c.problem(KindNotExecutable, prog.Path, r.Path, "script %s needs the interpreter %s but %s is not executable (mode %v)", prog.Path, interp, r.Path, r.Info.Mode())
			return nil
		}
		prog = &Object{Name: interp, Path: interp, RealPath: r.Path, Links: r.Links}
	}
	c.checkELF(prog)
	return nil
}

// findCommand does execvp's job: a name with a slash is a path (relative to
// WorkingDir), a bare name is searched in PATH.
func (c *checker) findCommand(cmd string) (*Object, bool) {
	if strings.Contains(cmd, "/") {
		p := cmd
		if !path.IsAbs(p) {
			p = path.Join(c.workdir(), p)
		}
		r, err := c.root.resolve(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				c.problem(KindMissingProgram, "", cmd, "the command %s is not in the image (%v)", cmd, err)
			} else {
				c.problem(KindNotExecutable, "", cmd, "the command %s cannot be looked up: %v", cmd, err)
			}
			return nil, false
		}
		if !executable(r.Info) {
			c.problem(KindNotExecutable, "", r.Path, "the command %s is not an executable file (mode %v)", r.Path, r.Info.Mode())
			return nil, false
		}
		return &Object{Name: cmd, Path: p, RealPath: r.Path, Links: r.Links}, true
	}
	pathEnv, ok := c.env["PATH"]
	if !ok {
		pathEnv = DefaultPath
	}
	var notExec string
	for _, dir := range splitPath(pathEnv) {
		if dir == "" {
			dir = c.workdir()
		}
		if !path.IsAbs(dir) {
			dir = path.Join(c.workdir(), dir)
		}
		p := path.Join(dir, cmd)
		r, err := c.root.resolve(p)
		if err != nil {
			continue
		}
		if !executable(r.Info) {
			if notExec == "" {
				notExec = fmt.Sprintf("%s (mode %v)", r.Path, r.Info.Mode())
			}
			continue
		}
		return &Object{Name: cmd, Path: p, RealPath: r.Path, Links: r.Links}, true
	}
	if notExec != "" {
		c.problem(KindNotExecutable, "", cmd, "the command %s is found in PATH=%s only as %s, which is not executable", cmd, pathEnv, notExec)
	} else {
		c.problem(KindMissingProgram, "", cmd, "the command %s is not in any directory of PATH=%s", cmd, pathEnv)
	}
	return nil, false
}

// workdir is the directory the current program starts in.
func (c *checker) workdir() string { return c.cwd }

// resolveExec resolves a path the kernel would open (interpreters are
// relative to the working directory when not absolute).
func (c *checker) resolveExec(p string) (resolved, error) {
	if !path.IsAbs(p) {
		p = path.Join(c.workdir(), p)
	}
	return c.root.resolve(p)
}

func (c *checker) readHead(inRoot string) ([]byte, error) {
	f, err := os.Open(c.root.host(inRoot))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The kernel reads at most 256 bytes for the #! line.
	buf := make([]byte, 256)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// parseShebang splits "#!interp arg" like the kernel: one optional
// argument, the rest of the line included.
func parseShebang(head []byte) (interp, arg string) {
	line := head[2:]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	s := strings.TrimSpace(string(line))
	interp, arg, _ = strings.Cut(s, " ")
	if i := strings.IndexByte(interp, '\t'); i >= 0 {
		interp, arg = interp[:i], interp[i+1:]+" "+arg
	}
	return interp, strings.TrimSpace(arg)
}

// loadELF parses the ELF at an in-root real path, once per check.
func (c *checker) loadELF(realPath string) (*elfInfo, error) {
	if p, ok := c.parsed[realPath]; ok {
		return p.info, p.err
	}
	info, err := parseFile(c.root.host(realPath))
	c.parsed[realPath] = parsedELF{info, err}
	return info, err
}

func parseFile(hostPath string) (*elfInfo, error) {
	f, err := os.Open(hostPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	info, err := parseELF(f, fi.Size())
	if err != nil {
		return nil, err
	}
	info.r, info.hostPath = nil, hostPath
	return info, nil
}

func (c *checker) checkELF(prog *Object) {
	info, err := c.loadELF(prog.RealPath)
	if err != nil {
		c.problem(KindBadELF, "", prog.RealPath, "%s: %v", prog.RealPath, err)
		return
	}
	prog.Arch = describe(info)
	c.cur.Program = prog
	if info.Type != elf.ET_EXEC && info.Type != elf.ET_DYN {
		c.problem(KindNotExecutable, "", prog.RealPath, "%s is an ELF %v, not an executable", prog.RealPath, info.Type)
		return
	}
	if c.arch.armelOK && info.Machine == elf.EM_ARM && armFloat(info.Flags) == FloatSoft {
		c.arch = c.arch.asArmel()
	}
	if ok, why := c.arch.compatible(info, info.Interp != ""); !ok {
		c.problem(KindWrongArch, "", prog.RealPath, "%s cannot run on %s: %s", prog.RealPath, c.arch.Platform, why)
		return
	}
	if c.board != nil && !c.boardRuns(prog, info) {
		return
	}
	if info.Interp == "" {
		c.cur.Static = true
		c.note("%s is statically linked: it needs no loader and no libraries", prog.RealPath)
		c.useELF(prog, info, roleProgram)
		return
	}
	// The kernel maps the interpreter; nothing else happens without it.
	lr, err := c.resolveExec(info.Interp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			c.problem(KindMissingLoader, prog.RealPath, info.Interp,
				"%s needs the loader %s (its PT_INTERP) but the image does not have it (%v)", base(prog), info.Interp, err)
		} else {
			c.problem(KindMissingLoader, prog.RealPath, info.Interp, "%s needs the loader %s: %v", base(prog), info.Interp, err)
		}
		return
	}
	ld := &Object{Name: info.Interp, Path: info.Interp, RealPath: lr.Path, Links: lr.Links, Via: "PT_INTERP"}
	c.cur.Interpreter = ld
	if !lr.Info.Mode().IsRegular() {
		c.problem(KindMissingLoader, prog.RealPath, info.Interp, "%s needs the loader %s but %s is not a regular file", base(prog), info.Interp, lr.Path)
		return
	}
	ldInfo, err := c.loadELF(lr.Path)
	if err != nil {
		c.problem(KindBadELF, prog.RealPath, lr.Path, "the loader %s (%s): %v", info.Interp, lr.Path, err)
		return
	}
	ld.Arch = describe(ldInfo)
	if ok, why := c.arch.compatible(ldInfo, true); !ok {
		c.problem(KindWrongArch, prog.RealPath, lr.Path, "the loader %s cannot run on %s: %s", lr.Path, c.arch.Platform, why)
		return
	}
	c.link(prog, info, ld, ldInfo)
}

func base(o *Object) string { return path.Base(o.RealPath) }

// link builds the DT_NEEDED closure breadth-first, like _dl_map_object_deps,
// then checks the symbol versions.
func (c *checker) link(prog *Object, info *elfInfo, ld *Object, ldInfo *elfInfo) {
	c.loadCache()
	mainNode := &node{obj: prog, info: info, origin: path.Dir(prog.RealPath)}
	ldNode := &node{obj: ld, info: ldInfo, origin: path.Dir(ld.RealPath)}
	var loaded []*node
	byName := map[string]*node{}
	byReal := map[string]*node{}
	add := func(n *node, names ...string) {
		loaded = append(loaded, n)
		for _, s := range names {
			if s != "" {
				byName[s] = n
			}
		}
		if n.info.SOName != "" {
			byName[n.info.SOName] = n
		}
		byReal[n.obj.RealPath] = n
	}
	add(mainNode)
	add(ldNode, ld.Name, ld.Path)

	queue := []*node{mainNode}
	for len(queue) > 0 {
		if c.ctx.Err() != nil {
			return
		}
		n := queue[0]
		queue = queue[1:]
		for _, name := range n.info.Needed {
			if prev, ok := byName[name]; ok {
				n.obj.Needed = append(n.obj.Needed, repeatOf(name, prev))
				continue
			}
			child, childInfo := c.search(n, name)
			if childInfo == nil {
				n.obj.Needed = append(n.obj.Needed, child)
				continue
			}
			if prev, ok := byReal[child.RealPath]; ok {
				byName[name] = prev
				n.obj.Needed = append(n.obj.Needed, repeatOf(name, prev))
				continue
			}
			cn := &node{obj: child, info: childInfo, loader: n, origin: path.Dir(child.Path)}
			add(cn, name)
			n.obj.Needed = append(n.obj.Needed, child)
			queue = append(queue, cn)
		}
	}
	for _, n := range loaded {
		c.checkVersions(n, byName)
		role := roleLibrary
		switch n {
		case mainNode:
			role = roleProgram
		case ldNode:
			role = roleLoader
		}
		c.useELF(n.obj, n.info, role)
	}
}

// useELF records an ELF of a closure for the board check, once.
func (c *checker) useELF(o *Object, info *elfInfo, role elfRole) {
	if c.board == nil || c.elfSeen[o.RealPath] {
		return
	}
	c.elfSeen[o.RealPath] = true
	c.elfs = append(c.elfs, elfUse{obj: o, info: info, role: role, prefix: c.prefix})
}

func repeatOf(name string, prev *node) *Object {
	return &Object{Name: name, Path: prev.obj.Path, RealPath: prev.obj.RealPath, Via: "already loaded", Repeat: true}
}

func (c *checker) loadCache() {
	if c.cacheLoaded {
		return
	}
	c.cacheLoaded = true
	// Resolved inside the root first: an absolute symlink must not reach
	// the host's own cache.
	r, err := c.root.resolve("/etc/ld.so.cache")
	if err != nil || !r.Info.Mode().IsRegular() {
		// An image without a cache is normal (scratch images, musl).
		return
	}
	if r.Info.Size() > 64<<20 {
		c.rep.Notes = append(c.rep.Notes, fmt.Sprintf("/etc/ld.so.cache ignored: %d bytes is implausibly large", r.Info.Size()))
		return
	}
	b, err := os.ReadFile(c.root.host(r.Path))
	if err != nil {
		c.rep.Notes = append(c.rep.Notes, fmt.Sprintf("/etc/ld.so.cache ignored: %v", err))
		return
	}
	cache, err := parseLDCache(b)
	if err != nil {
		// ld.so ignores a cache it cannot read; say so, it is not fatal.
		c.rep.Notes = append(c.rep.Notes, fmt.Sprintf("/etc/ld.so.cache ignored: %v", err))
		return
	}
	c.cache = cache
	c.rep.LDCache = fmt.Sprintf("/etc/ld.so.cache (%s format, %d entries)", cache.Format, len(cache.Entries))
}

// searchDir is one directory ld.so tries, and why.
type searchDir struct {
	dir string
	via string
}

// search finds name for the object n like _dl_map_object: DT_RPATH of n
// and its loaders (when n has no DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH
// of n, ld.so.cache, the default dirs. Candidates of another architecture
// are skipped, as ld.so does.
func (c *checker) search(n *node, name string) (*Object, *elfInfo) {
	obj := &Object{Name: name}
	var skipped []string
	try := func(p, via string) (*elfInfo, bool) {
		r, err := c.root.resolve(p)
		if err != nil || !r.Info.Mode().IsRegular() {
			return nil, false
		}
		info, err := c.loadELF(r.Path)
		if err != nil {
			c.problem(KindBadELF, n.obj.RealPath, r.Path, "%s needs %s; ld.so stops at %s: %v", path.Base(n.obj.RealPath), name, r.Path, err)
			obj.Path, obj.RealPath, obj.Links, obj.Via, obj.Missing = p, r.Path, r.Links, via, true
			return nil, true
		}
		if ok, why := c.arch.compatible(info, true); !ok {
			skipped = append(skipped, fmt.Sprintf("%s (%s)", r.Path, why))
			return nil, false
		}
		obj.Path, obj.RealPath, obj.Links, obj.Via, obj.Arch = p, r.Path, r.Links, via, describe(info)
		return info, true
	}
	if strings.Contains(name, "/") {
		p := name
		if !path.IsAbs(p) {
			p = path.Join(c.workdir(), p)
		}
		if info, done := try(p, "path"); done {
			return obj, info
		}
	} else {
		for _, d := range c.searchDirs(n) {
			if d.dir != cacheSentinel {
				if info, done := try(path.Join(d.dir, name), d.via); done {
					return obj, info
				}
				continue
			}
			// ld.so takes the first cache entry for its ABI (ldconfig sorts
			// the preferred one first) and falls through to the default
			// dirs when that file cannot be used.
			for _, e := range c.cache.lookup(name) {
				if e.HWCap != 0 || !cacheFlagsMatch(e.Flags, c.arch.cacheFlags) {
					continue
				}
				if info, done := try(e.Path, "ld.so.cache"); done {
					return obj, info
				}
				break
			}
			for _, dir := range c.defaultDirs() {
				if info, done := try(path.Join(dir, name), "default path"); done {
					return obj, info
				}
			}
		}
	}
	obj.Missing = true
	who := path.Base(n.obj.RealPath)
	if len(skipped) > 0 {
		c.problem(KindWrongArch, n.obj.RealPath, name, "%s needs %s but no copy in the image fits %s: %s",
			who, name, c.arch.Platform, strings.Join(skipped, "; "))
		return obj, nil
	}
	msg := fmt.Sprintf("%s needs %s but the image does not have it (searched %s)", who, name, c.describeSearch(n))
	if hint := c.confHint(name); hint != "" {
		msg = fmt.Sprintf("%s needs %s, which ld.so cannot find (searched %s); %s", who, name, c.describeSearch(n), hint)
	}
	if n.info.NoDefLib {
		msg += "; it is linked with -z nodeflib, so ld.so.cache and the default dirs are not searched"
	}
	chain := chainOf(n, name)
	c.problem(KindMissingLibrary, n.obj.RealPath, name, "%s%s", msg, chainText(chain))
	c.rep.Problems[len(c.rep.Problems)-1].Chain = chain
	return obj, nil
}

func (c *checker) searchDirs(n *node) []searchDir {
	var dirs []searchDir
	if !n.info.HasRunPath {
		for l := n; l != nil; l = l.loader {
			for _, d := range l.info.RPath {
				dirs = append(dirs, c.expand(d, l, "RPATH of "+path.Base(l.obj.RealPath))...)
			}
		}
	}
	if v, ok := c.env["LD_LIBRARY_PATH"]; ok {
		for _, d := range splitLDLibraryPath(v) {
			dirs = append(dirs, c.expand(d, nil, "LD_LIBRARY_PATH")...)
		}
	}
	for _, d := range n.info.RunPath {
		dirs = append(dirs, c.expand(d, n, "RUNPATH of "+path.Base(n.obj.RealPath))...)
	}
	if n.info.NoDefLib {
		return dirs
	}
	// One entry stands for ld.so.cache and then the default dirs.
	return append(dirs, searchDir{dir: cacheSentinel, via: "ld.so.cache"})
}

const cacheSentinel = "\x00ld.so.cache"

func (c *checker) defaultDirs() []string {
	t := c.arch.Triplet
	dirs := []string{"/lib/" + t, "/usr/lib/" + t, "/lib", "/usr/lib"}
	if c.arch.lib64 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	}
	return dirs
}

func (c *checker) describeSearch(n *node) string {
	var parts []string
	for _, d := range c.searchDirs(n) {
		if d.dir == cacheSentinel {
			if c.cache != nil {
				parts = append(parts, "ld.so.cache")
			}
			parts = append(parts, c.defaultDirs()...)
			continue
		}
		parts = append(parts, d.dir)
	}
	return strings.Join(parts, ", ")
}

// splitLDLibraryPath splits on ':' and ';' like ld.so; empty entries mean
// the current directory.
func splitLDLibraryPath(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ';' })
}

// expand substitutes $ORIGIN, $LIB and $PLATFORM (also in ${...} form).
// A relative result is relative to the working directory, as in ld.so.
func (c *checker) expand(d string, n *node, via string) []searchDir {
	if strings.Contains(d, "$") {
		origin := c.workdir()
		if n != nil {
			origin = n.origin
		}
		d = replaceToken(d, "ORIGIN", origin)
		d = replaceToken(d, "LIB", c.libToken())
		d = replaceToken(d, "PLATFORM", c.arch.atPlatform)
	}
	if d == "" {
		d = c.workdir()
	}
	if !path.IsAbs(d) {
		d = path.Join(c.workdir(), d)
	}
	return []searchDir{{dir: path.Clean(d), via: via}}
}

func replaceToken(s, tok, val string) string {
	s = strings.ReplaceAll(s, "${"+tok+"}", val)
	// $ORIGIN must not match $ORIGINAL: only replace when not followed by
	// an identifier character.
	var b strings.Builder
	for {
		i := strings.Index(s, "$"+tok)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + 1 + len(tok)
		if end < len(s) && isIdent(s[end]) {
			b.WriteString(s[:end])
			s = s[end:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(val)
		s = s[end:]
	}
}

func isIdent(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// libToken is $LIB: Debian's glibc expands it to the multiarch dir
// (lib/arm-linux-gnueabihf); upstream to lib or lib64.
func (c *checker) libToken() string {
	if r, err := c.root.resolve("/lib/" + c.arch.Triplet); err == nil && r.Info.IsDir() {
		return "lib/" + c.arch.Triplet
	}
	if c.arch.lib64 {
		return "lib64"
	}
	return "lib"
}
