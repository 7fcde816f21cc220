package startup

import (
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/hilproject/hil/harness/board"
)

// boardRuns checks an executable's machine against the board: every board
// runs 32-bit ARM code; AArch64 code needs a 64-bit core and OS. It
// reports a problem and returns false when the board cannot exec it.
func (c *checker) boardRuns(prog *Object, info *elfInfo) bool {
	b := c.board
	switch info.Machine {
	case elf.EM_ARM:
		return true
	case elf.EM_AARCH64:
		switch {
		case b.Bits == 64:
			return true
		case b.ISA.AArch64 != "":
			c.note("%s is AArch64 and %s runs a 32-bit userland: it starts only where the board's kernel is 64-bit", base(prog), b.Describe())
			return true
		}
		c.problem(KindWrongArch, "", prog.RealPath, "%s is %s; a %s has a 32-bit CPU (%s): the kernel refuses it (exec format error)",
			base(prog), describe(info), b.Describe(), b.CPU)
		return false
	}
	c.problem(KindWrongArch, "", prog.RealPath, "%s is %s; a %s runs ARM code only: the kernel refuses it (exec format error)",
		base(prog), describe(info), b.Describe())
	return false
}

// isaGroup is the ELFs that need the same thing the board lacks.
type isaGroup struct {
	need string
	objs []*Object
}

// checkBoard holds every ELF of every closure to the board's instruction
// set: the 32-bit ones through their build attributes, Go programs through
// the GOARM/GOARM64 they were built with.
//
// Build attributes record the most any object of the file was allowed to
// use, which for a distribution's library includes code it only runs after
// checking the CPU (Debian's armhf libgcrypt says ARMv8-A for its
// crypto-extension paths, libc.so.6 says NEON for its memcpy). So an ELF
// that asks for more than the board has is refused unless both: the
// loader, built with the distribution's baseline, fits the board, and the
// ELF shows that it picks code at run time (it imports getauxval or
// defines GNU indirect functions). Then it is a note: the emulation
// targets are the judge.
func (c *checker) checkBoard() {
	b := c.board
	type seen struct {
		u     elfUse
		attrs armAttributes
	}
	var arm []seen
	baselineFits := true
	for _, u := range c.elfs {
		if c.ctx.Err() != nil {
			return
		}
		if u.info.Machine != elf.EM_ARM {
			continue
		}
		c.prefix = u.prefix
		attrs, err := c.armAttributes(u.obj, u.info)
		switch {
		case err != nil:
			c.note("%s: %v: what instruction set it needs is not known", base(u.obj), err)
			continue
		case !attrs.Present:
			if u.role != roleProgram { // Go programs say it with GOARM
				c.note("%s has no build attributes (.ARM.attributes): what instruction set it needs is not known", base(u.obj))
			}
			continue
		}
		u.obj.ISA = attrs.Need.Summary()
		arm = append(arm, seen{u, attrs})
		if u.role == roleLoader && len(b.ISA.Missing(attrs.Need)) > 0 {
			baselineFits = false
		}
	}
	var groups []*isaGroup
	byNeed := map[string]*isaGroup{}
	for _, s := range arm {
		if len(b.ISA.Missing(s.attrs.Need)) == 0 {
			continue
		}
		c.prefix = s.u.prefix
		if baselineFits && s.u.role != roleLoader {
			if why, err := s.u.info.runtimeDispatch(s.u.role == roleLibrary); err == nil && why != "" {
				c.note("%s says it may use %s, more than a %s has (%s), but %s: not refused, as its loader fits the board; the emulation targets are the judge",
					displayName(s.u.obj), s.u.obj.ISA, b.Describe(), b.ISA.CPUSummary(b.CPU), why)
				continue
			}
		}
		g, ok := byNeed[s.u.obj.ISA]
		if !ok {
			g = &isaGroup{need: s.u.obj.ISA}
			byNeed[s.u.obj.ISA] = g
			groups = append(groups, g)
		}
		g.objs = append(g.objs, s.u.obj)
	}
	c.prefix = ""
	has := b.ISA.CPUSummary(b.CPU)
	for _, g := range groups {
		names, paths := objectNames(g.objs)
		them := "it"
		verb := "needs"
		if len(g.objs) > 1 {
			them, verb = "them", "need"
		}
		c.rep.Problems = append(c.rep.Problems, Problem{
			Kind: KindISA, Object: g.objs[0].RealPath, Objects: paths,
			Message: fmt.Sprintf("%s %s %s; a %s has %s: the board kills %s with SIGILL", names, verb, g.need, b.Describe(), has, them),
		})
	}
	for _, u := range c.elfs {
		if u.role == roleProgram && c.ctx.Err() == nil {
			c.prefix = u.prefix
			c.checkGoBuild(u.obj, u.info)
		}
	}
	c.prefix = ""
}

// objectNames is "a, b, c and 9 more" of the objects' file names.
func objectNames(objs []*Object) (string, []string) {
	const show = 4
	var names, paths []string
	for _, o := range objs {
		paths = append(paths, o.RealPath)
		if len(names) < show {
			names = append(names, displayName(o))
		}
	}
	s := strings.Join(names, ", ")
	if more := len(objs) - len(names); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s, paths
}

// displayName is the name a person knows a file by: the DT_NEEDED name of
// a library (libpcap.so.0.8, not the file it links to), the program's or
// loader's file name.
func displayName(o *Object) string {
	if o.Name != "" {
		return path.Base(o.Name)
	}
	return path.Base(o.RealPath)
}

// armAttributes reads an ELF's build attributes, once per check.
func (c *checker) armAttributes(o *Object, info *elfInfo) (armAttributes, error) {
	f, err := os.Open(c.root.host(o.RealPath))
	if err != nil {
		return armAttributes{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return armAttributes{}, err
	}
	bo := binary.ByteOrder(binary.LittleEndian)
	if info.Data == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	return readARMAttributes(f, fi.Size(), bo)
}

// goarmNeed is what a Go program built with GOARM=v needs (the Go
// runtime's checkgoarm and the compiler's use of each level): 5 is ARMv5
// with software floating point, 6 ARMv6 with VFP, 7 ARMv7 with VFPv3. A
// ",softfloat" suffix drops the FPU.
func goarmNeed(v string) (board.ISA, bool) {
	level, float, _ := strings.Cut(v, ",")
	var need board.ISA
	switch level {
	case "5":
		need = board.ISA{Arch: board.ArchV5T}
	case "6":
		need = board.ISA{Arch: board.ArchV6, FP: board.FPVFPv1}
	case "7":
		need = board.ISA{Arch: board.ArchV7, FP: board.FPVFPv3D16}
	default:
		return need, false
	}
	if float == "softfloat" || level == "5" {
		need.FP = board.FPNone
	}
	return need, true
}

// checkGoBuild reads a program's Go build info, when it is a Go program,
// and holds GOARM (32-bit) or GOARM64 to the board.
func (c *checker) checkGoBuild(o *Object, info *elfInfo) {
	bi, err := buildinfo.ReadFile(c.root.host(o.RealPath))
	if err != nil {
		return // not a Go program
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	b := c.board
	switch settings["GOARCH"] {
	case "arm":
		v, ok := settings["GOARM"]
		need, known := goarmNeed(v)
		if !ok || !known {
			c.note("%s is a Go program without a GOARM it names (%q): what it needs is not known", base(o), v)
			return
		}
		o.ISA = strings.TrimSpace(o.ISA + " GOARM=" + v)
		miss := b.ISA.Missing(need)
		if len(miss) == 0 {
			return
		}
		outcome := "the board kills it with SIGILL"
		if need.FP != board.FPNone {
			if ok, _ := b.ISA.FP.Includes(need.FP); !ok {
				// The runtime checks the FPU first (runtime.checkgoarm).
				outcome = `the Go runtime stops it at start ("this CPU has no VFPv3 floating point hardware", exit 1)`
				if need.FP == board.FPVFPv1 {
					outcome = `the Go runtime stops it at start ("this CPU has no floating point hardware", exit 1)`
				}
			}
		}
		c.rep.Problems = append(c.rep.Problems, Problem{
			Kind: KindISA, Object: o.RealPath, Objects: []string{o.RealPath},
			Message: fmt.Sprintf("%s is a Go program built with GOARM=%s: it needs %s; a %s has %s: %s",
				base(o), v, need.Summary(), b.Describe(), b.ISA.CPUSummary(b.CPU), outcome),
		})
	case "arm64":
		v := settings["GOARM64"]
		if v == "" || info.Machine != elf.EM_AARCH64 || b.ISA.AArch64 == "" {
			return
		}
		o.ISA = strings.TrimSpace(o.ISA + " GOARM64=" + v)
		level, opts, _ := strings.Cut(v, ",")
		need := level
		if strings.Contains(opts, "lse") && aarch64Less(need, "v8.1") {
			need = "v8.1" // LSE atomics came with ARMv8.1
		}
		if aarch64Less(b.ISA.AArch64, need) {
			c.rep.Problems = append(c.rep.Problems, Problem{
				Kind: KindISA, Object: o.RealPath, Objects: []string{o.RealPath},
				Message: fmt.Sprintf("%s is a Go program built with GOARM64=%s: it needs ARM%s-A; a %s has ARM%s-A (%s): the board kills it with SIGILL",
					base(o), v, need, b.Describe(), b.ISA.AArch64, b.CPU),
			})
		}
	}
}

// aarch64Less orders "v8.0" < "v8.2" < "v9.0"; unparsable versions are
// never less (no refusal on a guess).
func aarch64Less(a, b string) bool {
	pa, okA := parseAArch64(a)
	pb, okB := parseAArch64(b)
	if !okA || !okB {
		return false
	}
	return pa[0] < pb[0] || pa[0] == pb[0] && pa[1] < pb[1]
}

func parseAArch64(v string) ([2]int, bool) {
	major, minor, ok := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	x, err1 := strconv.Atoi(major)
	y, err2 := strconv.Atoi(minor)
	if !ok || err1 != nil || err2 != nil {
		return [2]int{}, false
	}
	return [2]int{x, y}, true
}
