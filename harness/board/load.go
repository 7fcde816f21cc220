package board

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/platforms"
	"gopkg.in/yaml.v3"
)

// A profile file describes boards that are not in the table:
//
//	boards:
//	  - name: acme-a7                # letters, digits and . + _ -
//	    aliases: [acme]
//	    model: Acme A7 gateway
//	    device_model: "Acme A7"     # how /proc/device-tree/model begins (the device target checks it)
//	    soc: ACME7
//	    cpu: Cortex-A7
//	    cores: 4
//	    memory: 1GiB                 # or 512MiB, or a number of MiB
//	    isa:
//	      arch: v7                   # Tag_CPU_arch spelling: v6KZ, v7, v8-A, v8.2-A …
//	      fp: VFPv4                  # none, VFPv2, VFPv3, VFPv3-D16, VFPv4, VFPv4-D16, FP-ARMv8
//	      simd: NEONv2               # none, NEONv1 (NEON), NEONv2, ARMv8 NEON, ARMv8.1 NEON
//	      thumb: Thumb-2             # default: what the architecture has
//	      idiv: true
//	      aarch64: v8.0              # only for CPUs with a 64-bit state
//	    default_os: 32               # needed when os lists 32 and 64
//	    os:
//	      32:
//	        platform: linux/arm/v7   # what the board's engine asks an index for
//	        system: {emulator: qemu-system-arm, machine: virt, cpu: cortex-a7, kernel: armhf}
//	        user: {emulator: qemu-arm, cpu: cortex-a7}
//
// A board QEMU cannot model says so: `system: {unsupported: "why"}`.

// MaxProfileFileBytes bounds a profile file.
const MaxProfileFileBytes = 1 << 20

// ProfileError is one problem in a profile file, with where it is.
type ProfileError struct {
	File string
	Line int
	Msg  string
}

func (e *ProfileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// ProfileErrors is every problem found in one file.
type ProfileErrors []*ProfileError

func (es ProfileErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// WithFile returns a catalog of c's profiles plus the ones in the file at
// path. A name or alias that is already taken is an error.
func (c *Catalog) WithFile(path string) (*Catalog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the board profiles: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxProfileFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the board profiles %s: %w", path, err)
	}
	if len(data) > MaxProfileFileBytes {
		return nil, fmt.Errorf("%s: a profile file is at most %d bytes", path, MaxProfileFileBytes)
	}
	return c.WithProfiles(path, data)
}

// WithProfiles is WithFile on bytes; file is used in errors only.
func (c *Catalog) WithProfiles(file string, data []byte) (*Catalog, error) {
	ps, err := ParseProfiles(file, data)
	if err != nil {
		return nil, err
	}
	n := c.clone()
	var errs ProfileErrors
	for _, p := range ps {
		if err := n.add(p); err != nil {
			errs = append(errs, &ProfileError{File: file, Line: lineOfSource(p.Source), Msg: err.Error()})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return n, nil
}

func lineOfSource(src string) int {
	i := strings.LastIndexByte(src, ':')
	if i < 0 {
		return 0
	}
	n, _ := strconv.Atoi(src[i+1:])
	return n
}

// ParseProfiles reads profile file bytes. Unknown keys, wrong types,
// missing fields and impossible values are errors with file:line, all of
// them at once.
func ParseProfiles(file string, data []byte) ([]*Profile, error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ProfileErrors{{File: file, Msg: "empty profile file: expected a `boards:` list"}}
		}
		return nil, ProfileErrors{{File: file, Line: yamlErrLine(err), Msg: yamlErrMsg(err)}}
	}
	p := &profileParser{file: file}
	if len(root.Content) == 0 {
		return nil, ProfileErrors{{File: file, Msg: "empty profile file: expected a `boards:` list"}}
	}
	doc := root.Content[0]
	var boards []*yaml.Node
	p.mapping(doc, "the profile file", map[string]func(*yaml.Node){
		"boards": func(v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "boards: expected a list of board profiles")
				return
			}
			boards = v.Content
		},
	})
	if boards == nil && len(p.errs) == 0 {
		p.errorf(doc, "expected a `boards:` list")
	}
	var out []*Profile
	seen := map[string]int{}
	for _, b := range boards {
		prof := p.profile(b)
		if prof == nil {
			continue
		}
		for _, n := range append([]string{prof.Name}, prof.Aliases...) {
			if prev, dup := seen[strings.ToLower(n)]; dup {
				p.errorf(b, "the name %q is already used at line %d", n, prev)
			}
			seen[strings.ToLower(n)] = b.Line
		}
		out = append(out, prof)
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return out, nil
}

// Compiled on first use, not at package init, which every hil process pays for.
var yamlLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): `) })

func yamlErrLine(err error) int {
	if m := yamlLine().FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func yamlErrMsg(err error) string {
	return strings.TrimPrefix(yamlLine().ReplaceAllString(err.Error(), ""), "yaml: ")
}

type profileParser struct {
	file string
	errs ProfileErrors
}

func (p *profileParser) errorf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &ProfileError{File: p.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

// mapping walks a mapping node, calling each key's handler; unknown and
// repeated keys are errors.
func (p *profileParser) mapping(n *yaml.Node, what string, keys map[string]func(*yaml.Node)) bool {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: expected a mapping", what)
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		h, ok := keys[k.Value]
		if !ok {
			p.errorf(k, "%s: unknown key %q; expected one of %s", what, k.Value, sortedKeys(keys))
			continue
		}
		if seen[k.Value] {
			p.errorf(k, "%s: %s is given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		h(v)
	}
	return true
}

func sortedKeys(m map[string]func(*yaml.Node)) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func (p *profileParser) str(n *yaml.Node, what string, dst *string) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s: expected a string", what)
		return
	}
	*dst = n.Value
}

func (p *profileParser) integer(n *yaml.Node, what string, dst *int) {
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v < 0 {
		p.errorf(n, "%s: expected a whole number, not %q", what, n.Value)
		return
	}
	*dst = v
}

func (p *profileParser) boolean(n *yaml.Node, what string, dst *bool) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		p.errorf(n, "%s: expected true or false, not %q", what, n.Value)
		return
	}
	*dst = b
}

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9.+_-]*$`) })

var aarch64RE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^v[89]\.\d$`) })

var memoryRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\d+)\s*(MiB|GiB|M|G|MB|GB)?$`) })

func (p *profileParser) memory(n *yaml.Node, dst *int) {
	m := memoryRE().FindStringSubmatch(strings.TrimSpace(n.Value))
	if n.Kind != yaml.ScalarNode || m == nil {
		p.errorf(n, "memory: expected a size such as 512MiB or 1GiB, not %q", n.Value)
		return
	}
	v, err := strconv.Atoi(m[1])
	if err != nil || v <= 0 || v > 1<<24 {
		p.errorf(n, "memory: %q is not a plausible size", n.Value)
		return
	}
	if strings.HasPrefix(m[2], "G") {
		v *= 1024
	}
	*dst = v
}

// profile reads one entry of boards:.
func (p *profileParser) profile(n *yaml.Node) *Profile {
	prof := &Profile{Source: fmt.Sprintf("%s:%d", p.file, n.Line), OS: map[int]OS{}}
	errsBefore := len(p.errs)
	var isaNode, osNode *yaml.Node
	var thumbSet bool
	what := fmt.Sprintf("board at line %d", n.Line)
	ok := p.mapping(n, what, map[string]func(*yaml.Node){
		"name": func(v *yaml.Node) { p.str(v, "name", &prof.Name) },
		"aliases": func(v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "aliases: expected a list of names")
				return
			}
			for _, a := range v.Content {
				var s string
				p.str(a, "aliases", &s)
				if s != "" && !nameRE().MatchString(s) {
					p.errorf(a, "alias %q: use lower-case letters, digits and . + _ - only", s)
				}
				prof.Aliases = append(prof.Aliases, s)
			}
		},
		"model": func(v *yaml.Node) { p.str(v, "model", &prof.Model) },
		"device_model": func(v *yaml.Node) {
			if v.Kind == yaml.ScalarNode {
				var s string
				p.str(v, "device_model", &s)
				prof.DeviceModels = append(prof.DeviceModels, s)
				return
			}
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "device_model: expected a string or a list of the device-tree models (/proc/device-tree/model) the board reports")
				return
			}
			for _, m := range v.Content {
				var s string
				p.str(m, "device_model", &s)
				if s != "" {
					prof.DeviceModels = append(prof.DeviceModels, s)
				}
			}
		},
		"soc":        func(v *yaml.Node) { p.str(v, "soc", &prof.SoC) },
		"cpu":        func(v *yaml.Node) { p.str(v, "cpu", &prof.CPU) },
		"cores":      func(v *yaml.Node) { p.integer(v, "cores", &prof.Cores) },
		"memory":     func(v *yaml.Node) { p.memory(v, &prof.MemoryMiB) },
		"default_os": func(v *yaml.Node) { p.wordSize(v, "default_os", &prof.DefaultOS) },
		"isa":        func(v *yaml.Node) { isaNode = v },
		"os":         func(v *yaml.Node) { osNode = v },
	})
	if !ok {
		return nil
	}
	switch {
	case prof.Name == "":
		p.errorf(n, "%s has no name", what)
	case !nameRE().MatchString(prof.Name):
		p.errorf(n, "board name %q: use lower-case letters, digits and . + _ - only (no / or ,)", prof.Name)
	}
	what = fmt.Sprintf("board %q", prof.Name)
	if prof.Model == "" {
		p.errorf(n, "%s has no model (the vendor's name of the board)", what)
	}
	if prof.CPU == "" {
		p.errorf(n, "%s has no cpu (the core, e.g. Cortex-A7)", what)
	}
	if prof.MemoryMiB == 0 {
		p.errorf(n, "%s has no memory (e.g. memory: 1GiB)", what)
	}
	if isaNode == nil {
		p.errorf(n, "%s has no isa (arch, fp, simd, thumb, idiv)", what)
	} else {
		var arch string
		p.mapping(isaNode, what+" isa", map[string]func(*yaml.Node){
			"arch": func(v *yaml.Node) {
				p.str(v, "isa.arch", &arch)
				if a, err := ParseArch(arch); err != nil {
					p.errorf(v, "isa.arch: %v", err)
				} else {
					prof.ISA.Arch = a
				}
			},
			"fp": func(v *yaml.Node) {
				var s string
				p.str(v, "isa.fp", &s)
				if f, err := ParseFP(s); err != nil {
					p.errorf(v, "isa.fp: %v", err)
				} else {
					prof.ISA.FP = f
				}
			},
			"simd": func(v *yaml.Node) {
				var s string
				p.str(v, "isa.simd", &s)
				if x, err := ParseSIMD(s); err != nil {
					p.errorf(v, "isa.simd: %v", err)
				} else {
					prof.ISA.SIMD = x
				}
			},
			"thumb": func(v *yaml.Node) {
				var s string
				p.str(v, "isa.thumb", &s)
				if t, err := ParseThumb(s); err != nil {
					p.errorf(v, "isa.thumb: %v", err)
				} else {
					prof.ISA.Thumb, thumbSet = t, true
				}
			},
			"idiv": func(v *yaml.Node) { p.boolean(v, "isa.idiv", &prof.ISA.IDiv) },
			"aarch64": func(v *yaml.Node) {
				p.str(v, "isa.aarch64", &prof.ISA.AArch64)
				if !aarch64RE().MatchString(prof.ISA.AArch64) {
					p.errorf(v, "isa.aarch64: expected an AArch64 version such as v8.0 or v8.2, not %q", prof.ISA.AArch64)
				}
			},
		})
		if arch == "" {
			p.errorf(isaNode, "%s isa has no arch (e.g. arch: v7)", what)
		}
		if !thumbSet {
			prof.ISA.Thumb = prof.ISA.Arch.ThumbImplied()
		}
	}
	if osNode == nil {
		p.errorf(n, "%s has no os (what each OS word size pulls and how the targets model it)", what)
	} else {
		p.oses(osNode, what, prof)
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return prof
}

func (p *profileParser) wordSize(v *yaml.Node, what string, dst *int) {
	switch v.Value {
	case "32":
		*dst = 32
	case "64":
		*dst = 64
	default:
		p.errorf(v, "%s: expected 32 or 64, not %q", what, v.Value)
	}
}

func (p *profileParser) oses(n *yaml.Node, what string, prof *Profile) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s os: expected a mapping from 32 and/or 64 to what that OS runs", what)
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var bits int
		p.wordSize(k, what+" os", &bits)
		if bits == 0 {
			continue
		}
		if _, dup := prof.OS[bits]; dup {
			p.errorf(k, "%s os: %d is given twice", what, bits)
			continue
		}
		if bits == 64 && prof.ISA.AArch64 == "" {
			p.errorf(k, "%s os: a 64-bit OS needs a CPU with AArch64 (isa.aarch64: v8.0 …)", what)
		}
		prof.OS[bits] = p.os(v, fmt.Sprintf("%s os %d", what, bits), bits)
	}
	switch {
	case len(prof.OS) == 0:
		p.errorf(n, "%s os: lists no OS word size", what)
	case prof.DefaultOS == 0 && len(prof.OS) == 1:
		for b := range prof.OS {
			prof.DefaultOS = b
		}
	case prof.DefaultOS == 0:
		p.errorf(n, "%s runs a 32- and a 64-bit OS: say which is the default (default_os: 32 or 64)", what)
	default:
		if _, ok := prof.OS[prof.DefaultOS]; !ok {
			p.errorf(n, "%s: default_os %d is not in its os list", what, prof.DefaultOS)
		}
	}
}

func (p *profileParser) os(n *yaml.Node, what string, bits int) OS {
	var o OS
	var sysNode, userNode *yaml.Node
	p.mapping(n, what, map[string]func(*yaml.Node){
		"platform": func(v *yaml.Node) {
			p.str(v, what+" platform", &o.Platform)
			spec, err := platforms.Parse(o.Platform)
			wantArch := map[int]string{32: "arm", 64: "arm64"}[bits]
			switch {
			case err != nil:
				p.errorf(v, "%s platform: %v", what, err)
			case spec.OS != "linux" || spec.Architecture != wantArch:
				p.errorf(v, "%s platform: a %d-bit OS asks for linux/%s/…, not %q", what, bits, wantArch, o.Platform)
			}
		},
		"system": func(v *yaml.Node) { sysNode = v },
		"user":   func(v *yaml.Node) { userNode = v },
	})
	if o.Platform == "" {
		p.errorf(n, "%s has no platform (what the board's engine asks for, e.g. linux/arm/v7)", what)
	}
	if sysNode == nil {
		p.errorf(n, "%s has no system (the QEMU machine, or unsupported: why)", what)
	} else {
		p.mapping(sysNode, what+" system", map[string]func(*yaml.Node){
			"emulator":    func(v *yaml.Node) { p.str(v, what+" system.emulator", &o.System.Emulator) },
			"machine":     func(v *yaml.Node) { p.str(v, what+" system.machine", &o.System.Machine) },
			"cpu":         func(v *yaml.Node) { p.str(v, what+" system.cpu", &o.System.CPU) },
			"kernel":      func(v *yaml.Node) { p.str(v, what+" system.kernel", &o.System.Kernel) },
			"linux32":     func(v *yaml.Node) { p.boolean(v, what+" system.linux32", &o.System.Linux32) },
			"unsupported": func(v *yaml.Node) { p.str(v, what+" system.unsupported", &o.System.Unsupported) },
		})
		s := o.System
		switch {
		case s.Unsupported != "" && (s.Emulator != "" || s.Machine != "" || s.CPU != "" || s.Kernel != ""):
			p.errorf(sysNode, "%s system: either unsupported or a QEMU machine, not both", what)
		case s.Unsupported != "":
		case s.Emulator != "qemu-system-arm" && s.Emulator != "qemu-system-aarch64":
			p.errorf(sysNode, "%s system: emulator must be qemu-system-arm or qemu-system-aarch64, not %q", what, s.Emulator)
		case s.Machine == "" || s.CPU == "":
			p.errorf(sysNode, "%s system: needs machine and cpu (e.g. machine: virt, cpu: cortex-a7)", what)
		case s.Kernel != "armhf" && s.Kernel != "arm64":
			p.errorf(sysNode, "%s system: kernel must be armhf or arm64 (the Debian architecture of `hil kernel fetch --arch`), not %q", what, s.Kernel)
		case s.Emulator == "qemu-system-arm" && (bits == 64 || s.Kernel != "armhf"):
			p.errorf(sysNode, "%s system: qemu-system-arm runs the armhf kernel and 32-bit userland only", what)
		}
	}
	if userNode == nil {
		p.errorf(n, "%s has no user (the qemu-user emulator and CPU)", what)
	} else {
		p.mapping(userNode, what+" user", map[string]func(*yaml.Node){
			"emulator": func(v *yaml.Node) { p.str(v, what+" user.emulator", &o.User.Emulator) },
			"cpu":      func(v *yaml.Node) { p.str(v, what+" user.cpu", &o.User.CPU) },
			"note":     func(v *yaml.Node) { p.str(v, what+" user.note", &o.User.Note) },
		})
		want := map[int]string{32: "qemu-arm", 64: "qemu-aarch64"}[bits]
		if o.User.Emulator != want {
			p.errorf(userNode, "%s user: a %d-bit OS runs under %s, not %q", what, bits, want, o.User.Emulator)
		}
	}
	return o
}
