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
)

// Problem is one reason the program would not start.
type Problem struct {
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
	// NeededBy is the in-image path of the file that needs Object.
	NeededBy string `json:"neededBy,omitempty"`
	// Object is what is missing or wrong: a library name, a path, a version.
	Object string `json:"object,omitempty"`
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
	RealPath string `json:"realPath,omitempty"`
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
	// LDCache says which ld.so.cache was used ("" when the image has none).
	LDCache  string    `json:"ldCache,omitempty"`
	Problems []Problem `json:"problems"`
	Notes    []string  `json:"notes,omitempty"`
}

// OK reports whether nothing would stop the program from starting.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

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
	if r.LDCache != "" {
		fmt.Fprintf(&b, "ld.so.cache: %s\n", r.LDCache)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if r.OK() {
		fmt.Fprintf(&b, "OK: the program can start\n")
	} else {
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
