package imgrun

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Interpreter returns the ELF interpreter (PT_INTERP) the program at the
// in-image path prog asks for, "" for a static program or a script.
func Interpreter(rootfs, prog string) (string, error) {
	f, err := elf.Open(filepath.Join(rootfs, prog))
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return "", err
			}
			return strings.TrimRight(string(b), "\x00"), nil
		}
	}
	return "", nil
}

// ExplainExecError turns a failed exec of prog into what is wrong with the
// image, e.g. a missing ELF interpreter (the kernel says only ENOENT).
func ExplainExecError(rootfs, prog string, err error) error {
	interp, ierr := Interpreter(rootfs, prog)
	if ierr == nil && interp != "" {
		r, rerr := Resolve(rootfs, interp)
		if rerr == nil {
			if _, serr := os.Stat(filepath.Join(rootfs, r)); serr != nil {
				return fmt.Errorf("starting %s: %w: its ELF interpreter %s is missing from the image", prog, err, interp)
			}
		}
	}
	return fmt.Errorf("starting %s: %w", prog, err)
}

// Shebang reads the "#!" line of the in-image program prog: qemu-user
// loads ELF files only, so a script entrypoint must be handed to its
// interpreter the way the kernel would (interp [arg] script args...).
func Shebang(rootfs, prog string) (interp, arg string, ok bool) {
	f, err := os.Open(filepath.Join(rootfs, prog))
	if err != nil {
		return "", "", false
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := f.Read(buf)
	line := string(buf[:n])
	if !strings.HasPrefix(line, "#!") {
		return "", "", false
	}
	line, _, _ = strings.Cut(line[2:], "\n")
	line = strings.TrimSpace(line)
	interp, arg, _ = strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	return interp, arg, interp != ""
}

// EmulatedArgv is what to hand qemu-user after its own options for the
// in-image program prog run as argv: "-0 argv0 PROGRAM args...", with a
// script replaced by its interpreter as the kernel would. progPath maps an
// in-image path to the path qemu opens (the host path for qemu -L, the
// same path inside a container).
func EmulatedArgv(rootfs, prog string, argv []string, progPath func(string) string) ([]string, error) {
	interp, arg, ok := Shebang(rootfs, prog)
	if !ok {
		return append([]string{"-0", argv[0], progPath(prog)}, argv[1:]...), nil
	}
	resolved, err := Resolve(rootfs, interp)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(rootfs, resolved)); err != nil {
		return nil, fmt.Errorf("entrypoint %s is a script for %s, which the image does not have", prog, interp)
	}
	out := []string{"-0", interp, progPath(resolved)}
	if arg != "" {
		out = append(out, arg)
	}
	return append(append(out, prog), argv[1:]...), nil
}
