// Package board describes the boards a fleet is made of: one profile per
// board model (Raspberry Pi Zero … Pi 5, and QEMU's generic virt) with its
// CPU and instruction set, memory, the OS word sizes it runs and, for each,
// the platform its container engine asks for, the QEMU machine, CPU and
// kernel the system target models it with, and the qemu-user CPU of the
// user and container targets. Pick chooses the manifest a board's engine
// pulls from an index with containerd's own matcher.
//
// A board is named by its profile name or an alias, optionally followed by
// the OS word size: "pi3b+" (Raspberry Pi OS's default for that model),
// "pi3b+/32", "pi4/64". Profiles for boards not in the table come from a
// YAML file (Catalog.WithFile).
package board

import (
	"fmt"
	"sort"
	"strings"
)

// Profile is one board model.
type Profile struct {
	// Name is the canonical name ("pi3b+").
	Name string `json:"name"`
	// Aliases are other names for the same profile ("pi3", "pi3b").
	Aliases []string `json:"aliases,omitempty"`
	// Model is the vendor's name ("Raspberry Pi 3 Model B+").
	Model string `json:"model"`
	SoC   string `json:"soc,omitempty"`
	// CPU is the core ("Cortex-A53", "ARM1176JZF-S").
	CPU   string `json:"cpu"`
	Cores int    `json:"cores,omitempty"`
	// MemoryMiB is the board's RAM; the system target gives the guest as
	// much.
	MemoryMiB int `json:"memory_mib"`
	// ISA is what the CPU executes in 32-bit (AArch32) state, plus its
	// AArch64 version when it has one.
	ISA ISA `json:"isa"`
	// DefaultOS is the word size of Raspberry Pi OS's default for the model
	// (what Raspberry Pi Imager recommends): 32 or 64.
	DefaultOS int `json:"default_os"`
	// OS is how each OS word size the board runs is modelled.
	OS map[int]OS `json:"os"`
	// DeviceModels are the beginnings of the board's device-tree model
	// (/proc/device-tree/model, e.g. "Raspberry Pi 3 Model B Plus Rev
	// 1.3"): the device target runs the profile only on a board whose
	// model starts with one of them. Empty: the model cannot be verified.
	DeviceModels []string `json:"device_models,omitempty"`
	// Source is where the profile came from: "built-in" or FILE:LINE.
	Source string `json:"source"`
}

// OS is one OS word size of a board: what its engine pulls and how each
// target models it.
type OS struct {
	// Platform is what the board's container engine asks an index for:
	// linux/arm/v6, linux/arm/v7 or linux/arm64/v8.
	Platform string `json:"platform"`
	System   System `json:"system"`
	User     User   `json:"user"`
}

// System is how the system target (full-system QEMU) models a board.
type System struct {
	// Emulator is qemu-system-arm or qemu-system-aarch64; empty when the
	// board cannot be modelled (Unsupported says why).
	Emulator string `json:"emulator,omitempty"`
	Machine  string `json:"machine,omitempty"`
	CPU      string `json:"cpu,omitempty"`
	// Kernel is the Debian architecture of the kernel (`hil kernel fetch
	// --arch KERNEL`): armhf (the armmp flavour) or arm64.
	Kernel string `json:"kernel,omitempty"`
	// Linux32 runs the userland under a PER_LINUX32 personality: 32-bit
	// userland on a 64-bit kernel, as Raspberry Pi OS does, so `uname -m`
	// says armv8l/armv7l rather than aarch64.
	Linux32 bool `json:"linux32,omitempty"`
	// Unsupported is why the system target cannot model the board.
	Unsupported string `json:"unsupported,omitempty"`
}

// User is how the user and container targets (qemu-user) model a board.
type User struct {
	// Emulator is the qemu-user binary: qemu-arm or qemu-aarch64.
	Emulator string `json:"emulator"`
	// CPU is its -cpu (QEMU_CPU for a bind-mounted emulator); empty means
	// QEMU's default.
	CPU string `json:"cpu,omitempty"`
	// Note says how close the CPU is to the board's when it is not exact.
	Note string `json:"note,omitempty"`
}

// Board is a profile with the OS word size it runs.
type Board struct {
	*Profile
	// Bits is the OS word size: 32 or 64.
	Bits int
	// Explicit is set when the name said the word size ("pi3b+/32").
	Explicit bool
}

// String is the name as a person would write it: the profile name, with
// the word size when it is not the default ("pi3b+", "pi3b+/32").
func (b Board) String() string {
	if b.Bits != b.DefaultOS || b.Explicit {
		return fmt.Sprintf("%s/%d", b.Name, b.Bits)
	}
	return b.Name
}

// Key names the board and OS the same way whatever alias or spelling
// chose it ("pi3b+/64" for pi3, pi3b+ and pi3b+/64).
func (b Board) Key() string { return fmt.Sprintf("%s/%d", b.Name, b.Bits) }

// Label is the board's name as a Ginkgo label value and a file name
// allow it: "/" (pi4/64) becomes "-".
func (b Board) Label() string { return strings.ReplaceAll(b.String(), "/", "-") }

// MatchesModel reports whether a device-tree model string is this
// board's (see Profile.DeviceModels).
func (p *Profile) MatchesModel(model string) bool {
	model = strings.TrimSpace(strings.TrimRight(model, "\x00"))
	for _, m := range p.DeviceModels {
		if strings.HasPrefix(model, m) {
			return true
		}
	}
	return false
}

// OSInfo is the OS entry of the board's word size.
func (b Board) OSInfo() OS { return b.OS[b.Bits] }

// Platform is what the board's engine asks for ("linux/arm/v7").
func (b Board) Platform() string { return b.OS[b.Bits].Platform }

// Describe is "pi0w (Raspberry Pi Zero W)" or, for a non-default word
// size, "pi3b+/32 (Raspberry Pi 3 Model B+, 32-bit OS)".
func (b Board) Describe() string {
	if b.Bits != b.DefaultOS || b.Explicit || len(b.OS) > 1 {
		return fmt.Sprintf("%s (%s, %d-bit OS)", b, b.Model, b.Bits)
	}
	return fmt.Sprintf("%s (%s)", b, b.Model)
}

// Catalog is a set of profiles that board names resolve against: the
// built-in table, plus profiles from files.
type Catalog struct {
	profiles []*Profile
	byName   map[string]*Profile
}

// Builtin returns the built-in profiles.
func Builtin() *Catalog {
	c := &Catalog{byName: map[string]*Profile{}}
	for _, p := range builtinProfiles() {
		if err := c.add(p); err != nil {
			panic("board: built-in table: " + err.Error())
		}
	}
	return c
}

func (c *Catalog) clone() *Catalog {
	n := &Catalog{profiles: append([]*Profile{}, c.profiles...), byName: map[string]*Profile{}}
	for k, v := range c.byName {
		n.byName[k] = v
	}
	return n
}

func (c *Catalog) add(p *Profile) error {
	for _, n := range append([]string{p.Name}, p.Aliases...) {
		key := strings.ToLower(n)
		if prev, dup := c.byName[key]; dup {
			return fmt.Errorf("the name %q is already used by the profile %s (%s)", n, prev.Name, prev.Source)
		}
	}
	for _, n := range append([]string{p.Name}, p.Aliases...) {
		c.byName[strings.ToLower(n)] = p
	}
	c.profiles = append(c.profiles, p)
	return nil
}

// Profiles lists the profiles in table order (built-in first, then files).
func (c *Catalog) Profiles() []*Profile { return append([]*Profile{}, c.profiles...) }

// Names lists every canonical name, in table order.
func (c *Catalog) Names() []string {
	out := make([]string, len(c.profiles))
	for i, p := range c.profiles {
		out[i] = p.Name
	}
	return out
}

// UnknownBoardError is a board name no profile has.
type UnknownBoardError struct {
	Name  string
	Known []string
}

func (e *UnknownBoardError) Error() string {
	return fmt.Sprintf("unknown board %q; known boards: %s (a board not in the table can be described in a profile file)", e.Name, strings.Join(e.Known, ", "))
}

// Lookup resolves "NAME[/32|/64]" to a board. An unknown name gives an
// *UnknownBoardError listing the known ones.
func (c *Catalog) Lookup(spec string) (Board, error) {
	s := strings.TrimSpace(spec)
	name, bits := s, ""
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		name, bits = s[:i], s[i+1:]
	}
	p, ok := c.byName[strings.ToLower(name)]
	if !ok {
		return Board{}, &UnknownBoardError{Name: spec, Known: c.knownList()}
	}
	b := Board{Profile: p, Bits: p.DefaultOS}
	if bits != "" {
		switch bits {
		case "32":
			b.Bits = 32
		case "64":
			b.Bits = 64
		default:
			return Board{}, fmt.Errorf("board %q: the OS word size after / must be 32 or 64, not %q", spec, bits)
		}
		b.Explicit = true
		if _, ok := p.OS[b.Bits]; !ok {
			return Board{}, fmt.Errorf("board %q: a %s (%s, %s) has no %d-bit OS; it runs %s", spec, p.Name, p.Model, p.CPU, b.Bits, p.osList())
		}
	}
	return b, nil
}

// LookupList resolves a comma-separated list ("pi0w,pi3b+/32"); each board
// once, in the order given.
func (c *Catalog) LookupList(specs ...string) ([]Board, error) {
	var out []Board
	seen := map[string]bool{}
	for _, list := range specs {
		for _, s := range strings.Split(list, ",") {
			if strings.TrimSpace(s) == "" {
				continue
			}
			b, err := c.Lookup(s)
			if err != nil {
				return nil, err
			}
			key := fmt.Sprintf("%s/%d", b.Name, b.Bits)
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no board named; known boards: %s", strings.Join(c.knownList(), ", "))
	}
	return out, nil
}

func (c *Catalog) knownList() []string {
	var out []string
	for _, p := range c.profiles {
		s := p.Name
		if len(p.Aliases) > 0 {
			s += " (" + strings.Join(p.Aliases, ", ") + ")"
		}
		out = append(out, s)
	}
	return out
}

func (p *Profile) osList() string {
	var s []string
	for _, b := range p.WordSizes() {
		s = append(s, fmt.Sprintf("%d-bit", b))
	}
	return strings.Join(s, " and ")
}

// WordSizes lists the OS word sizes the profile runs, ascending.
func (p *Profile) WordSizes() []int {
	var bits []int
	for b := range p.OS {
		bits = append(bits, b)
	}
	sort.Ints(bits)
	return bits
}

// UserFor is how qemu-user models the board for a program of GOARCH arch
// ("arm" or "arm64"): the emulator and its CPU. A 32-bit program on a
// 64-bit OS runs under the profile's 32-bit CPU model (qemu-arm has no
// AArch64 cores), as the board runs it in AArch32 state. A 32-bit OS runs
// no arm64 program, and no board runs other architectures: an error says
// so.
func (b Board) UserFor(arch string) (User, error) {
	switch arch {
	case "arm":
		if u := b.OS[b.Bits].User; u.Emulator == "qemu-arm" {
			return u, nil
		}
		if o, ok := b.OS[32]; ok {
			return o.User, nil
		}
		return User{Emulator: "qemu-arm", Note: "the profile has no 32-bit OS: QEMU's default CPU"}, nil
	case "arm64":
		if b.Bits != 64 {
			return User{}, fmt.Errorf("%s runs a 32-bit OS, which runs no arm64 program (its engine pulls %s)", b.Describe(), b.Platform())
		}
		return b.OS[64].User, nil
	}
	return User{}, fmt.Errorf("%s is an ARM board: it runs no %s program", b.Describe(), arch)
}
