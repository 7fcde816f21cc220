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
