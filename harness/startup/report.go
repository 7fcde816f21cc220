package startup

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Kind classifies a Problem.
type Kind string

const (
	// KindNoCommand: the image config has neither entrypoint nor cmd.
	KindNoCommand Kind = "no-command"
	// KindMissingProgram: the command (or a #! interpreter) is not in the image.
	KindMissingProgram Kind = "missing-program"
	// KindNotExecutable: the file has no x bit, is not a regular file, or is
	// neither ELF nor a #! script.
	KindNotExecutable Kind = "not-executable"
	// KindMissingLoader: the ELF interpreter (PT_INTERP) is not in the image.
	KindMissingLoader Kind = "missing-loader"
	// KindWrongArch: machine, class, EABI or float ABI do not fit the platform.
	KindWrongArch Kind = "wrong-arch"
	// KindMissingLibrary: a DT_NEEDED library is found nowhere ld.so looks.
	KindMissingLibrary Kind = "missing-library"
	// KindMissingVersion: a library lacks a symbol version (DT_VERNEED) that
	// an object needs from it.
	KindMissingVersion Kind = "missing-version"
	// KindBadELF: a file ld.so or the kernel would read is damaged.
	KindBadELF Kind = "bad-elf"
	// KindISA: code the board's CPU cannot execute (its build attributes
	// or GOARM ask for more than the board's instruction set).
	KindISA Kind = "isa"
)

// Problem is one reason the program would not start.
type Problem struct {
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
	// NeededBy is the in-image path of the file that needs Object.
	NeededBy string `json:"needed_by,omitempty"`
	// Object is what is missing or wrong: a library name, a path, a version.
	Object string `json:"object,omitempty"`
	// Objects lists every file a problem is about when there are several
	// (an ISA problem shared by many libraries), in-image real paths.
	Objects []string `json:"objects,omitempty"`
	// Chain is, for a missing library, how the program came to need it:
	// the program, each library that needed the next (where it was found),
	// then the missing name.
	Chain []string `json:"chain,omitempty"`
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s", p.Kind, p.Message) }

// Script is one #! step between the command and the ELF that runs.
type Script struct {
	Path        string `json:"path"`
	Interpreter string `json:"interpreter"`
	Arg         string `json:"arg,omitempty"`
}

// Object is a file in the startup chain: the program, the loader or a
// library, with the libraries it needs.
type Object struct {
	// Name is what asked for it: DT_NEEDED entry, PT_INTERP, the command.
	Name string `json:"name"`
	// Path is where it was found in the image, before symlinks.
	Path string `json:"path,omitempty"`
	// RealPath is Path with symlinks resolved (inside the image).
	RealPath string `json:"real_path,omitempty"`
	// Links are the symlinks followed, "link -> target".
	Links []string `json:"links,omitempty"`
	// Via says how it was found: RPATH, LD_LIBRARY_PATH, RUNPATH,
	// ld.so.cache, default path, or "loaded" when already in memory.
	Via    string    `json:"via,omitempty"`
	Arch   string    `json:"arch,omitempty"`
	Needed []*Object `json:"needed,omitempty"`
	// Repeat marks a library already shown higher up in the tree.
	Repeat bool `json:"repeat,omitempty"`
	// Missing marks a library that was not found (or none fit).
	Missing bool `json:"missing,omitempty"`
	// ISA is what its build attributes (and GOARM for a Go program) say it
	// needs, when the check had a board: "ARMv7 (Thumb-2, VFPv3-D16)".
	ISA string `json:"isa,omitempty"`
}

// Run is one program start the check followed: the entrypoint's own, or
// one that a shell string runs.
type Run struct {
	// Command is the argv as the shell would run it (words expanded).
	Command []string `json:"command"`
	// Pos is where the command is in the shell string (line:col).
	Pos         string   `json:"pos,omitempty"`
	Scripts     []Script `json:"scripts,omitempty"`
	Program     *Object  `json:"program,omitempty"`
	Interpreter *Object  `json:"interpreter,omitempty"`
	Static      bool     `json:"static,omitempty"`
}

// ShellScript is a `sh -c STRING` command resolved statically.
type ShellScript struct {
	// Shell is the shell's argv[0]; Script the string it runs.
	Shell  string `json:"shell"`
	Script string `json:"script"`
	// Runs are the programs the string runs, in order, each checked like
	// an entrypoint (nested `sh -c` strings included).
	Runs []*Run `json:"runs"`
}

// NotChecked is something a shell string runs that cannot be known without
// running it: a command word from a variable, a command substitution, a
// branch, a function, eval.
type NotChecked struct {
	// What is the text in the string ("$APP", "if …").
	What string `json:"what"`
	// Pos is line:col in the string.
	Pos    string `json:"pos,omitempty"`
	Reason string `json:"reason"`
}

func (n NotChecked) String() string {
	at := ""
	if n.Pos != "" {
		at = " (" + n.Pos + ")"
	}
	return fmt.Sprintf("%s%s: %s", n.What, at, n.Reason)
}

// Report is the result of a startup check.
type Report struct {
	Platform string `json:"platform"`
	// Command is the argv the image config asks for (entrypoint + cmd).
	Command []string `json:"command"`
	// Scripts lists the #! scripts between the command and the ELF.
	Scripts []Script `json:"scripts,omitempty"`
	// Program is the ELF the kernel would execute, with its libraries.
	Program *Object `json:"program,omitempty"`
	// Interpreter is the dynamic loader (PT_INTERP); nil for static ELFs.
	Interpreter *Object `json:"interpreter,omitempty"`
	Static      bool    `json:"static"`
	// Shell is set for a shell-form command (`sh -c STRING`).
	Shell *ShellScript `json:"shell,omitempty"`
	// NotChecked lists what the check could not resolve statically. The
	// check is complete only when it is empty.
	NotChecked []NotChecked `json:"not_checked,omitempty"`
	// Board is the board whose instruction set every ELF was held to.
	Board string `json:"board,omitempty"`
	// LDCache says which ld.so.cache was used ("" when the image has none).
	LDCache  string    `json:"ld_cache,omitempty"`
	Problems []Problem `json:"problems"`
	Notes    []string  `json:"notes,omitempty"`
}

// OK reports whether nothing the check saw would stop the program from
// starting. It says nothing about what was not checked: see Complete.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Complete reports whether everything the command runs was resolved
// statically (no NotChecked entries).
func (r *Report) Complete() bool { return len(r.NotChecked) == 0 }

// Unresolved returns nil when Complete, else an error saying what was not
// checked and why.
func (r *Report) Unresolved() error {
	if r.Complete() {
		return nil
	}
	s := make([]string, len(r.NotChecked))
	for i, n := range r.NotChecked {
		s[i] = n.String()
	}
	return fmt.Errorf("not checked: %s", strings.Join(s, "; "))
}

// Err returns nil when OK, else an error listing the problems.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	msgs := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		msgs[i] = p.Message
	}
	return fmt.Errorf("startup check (%s) failed: %s", r.Platform, strings.Join(msgs, "; "))
}

// JSON writes the report as indented JSON.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Text writes the report for a person: the command, the tree of the loader
// and libraries with the file each resolved to, then the problems.
func (r *Report) Text(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "platform %s: %s\n", r.Platform, strings.Join(r.Command, " "))
	for _, s := range r.Scripts {
		fmt.Fprintf(&b, "  script %s runs %s\n", s.Path, strings.TrimSpace(s.Interpreter+" "+s.Arg))
	}
	if r.Interpreter != nil {
		fmt.Fprintf(&b, "loader: ")
		writeObject(&b, r.Interpreter, "", true, true)
	}
	if r.Program != nil {
		fmt.Fprintf(&b, "program: ")
		writeObject(&b, r.Program, "", true, true)
	}
	if r.Shell != nil {
		fmt.Fprintf(&b, "%s -c runs %d program(s):\n", r.Shell.Shell, len(r.Shell.Runs))
		for _, run := range r.Shell.Runs {
			at := ""
			if run.Pos != "" {
				at = " (at " + run.Pos + ")"
			}
			fmt.Fprintf(&b, "  %s%s\n", strings.Join(run.Command, " "), at)
			for _, s := range run.Scripts {
				fmt.Fprintf(&b, "    script %s runs %s\n", s.Path, strings.TrimSpace(s.Interpreter+" "+s.Arg))
			}
			if run.Interpreter != nil {
				fmt.Fprintf(&b, "    loader: ")
				writeObject(&b, run.Interpreter, "    ", true, true)
			}
			if run.Program != nil {
				fmt.Fprintf(&b, "    program: ")
				writeObject(&b, run.Program, "    ", true, true)
			}
		}
	}
	if r.Board != "" {
		fmt.Fprintf(&b, "board: every ELF above held to %s's instruction set\n", r.Board)
	}
	if r.LDCache != "" {
		fmt.Fprintf(&b, "ld.so.cache: %s\n", r.LDCache)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, n := range r.NotChecked {
		fmt.Fprintf(&b, "not checked: %s\n", n)
	}
	switch {
	case r.OK() && r.Complete():
		fmt.Fprintf(&b, "OK: the program can start\n")
	case r.OK():
		fmt.Fprintf(&b, "UNRESOLVED: no problem in what was checked, but %d thing(s) the command runs could not be checked statically (above)\n", len(r.NotChecked))
	default:
		fmt.Fprintf(&b, "%d problem(s):\n", len(r.Problems))
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  - [%s] %s\n", p.Kind, p.Message)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeObject(b *strings.Builder, o *Object, indent string, root, last bool) {
	line := o.Name
	switch {
	case o.Missing:
		line += " => NOT FOUND"
	case o.Path != "":
		if o.Path != o.Name {
			line += " => " + o.Path
		}
		if o.RealPath != "" && o.RealPath != o.Path {
			line += " -> " + o.RealPath
		}
	}
	var tags []string
	if o.Arch != "" && root {
		tags = append(tags, o.Arch)
	}
	if o.ISA != "" && !o.Repeat {
		tags = append(tags, "needs "+o.ISA)
	}
	if o.Via != "" && !root && !o.Repeat {
		tags = append(tags, "via "+o.Via)
	}
	if o.Repeat {
		tags = append(tags, "already loaded")
	}
	if len(tags) > 0 {
		line += " (" + strings.Join(tags, ", ") + ")"
	}
	childIndent := indent
	if root {
		fmt.Fprintf(b, "%s\n", line)
		childIndent = indent + "  "
	} else {
		branch, next := "├── ", "│   "
		if last {
			branch, next = "└── ", "    "
		}
		fmt.Fprintf(b, "%s%s%s\n", indent, branch, line)
		childIndent = indent + next
	}
	// Like lddtree, a library is drawn once; later mentions stay in JSON.
	var shown []*Object
	for _, c := range o.Needed {
		if !c.Repeat {
			shown = append(shown, c)
		}
	}
	for i, c := range shown {
		writeObject(b, c, childIndent, false, i == len(shown)-1)
	}
}
