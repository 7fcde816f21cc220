package device

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/target"
)

// deviceTreeModel is where a board's kernel says what board it is
// ("Raspberry Pi 3 Model B Plus Rev 1.3", NUL-terminated).
var deviceTreeModel = "/proc/device-tree/model"

// boardFactsCmd prints the machine's device-tree model and its memory, one
// line each with a prefix (an empty model when there is no device tree).
func boardFactsCmd() string {
	return "echo \"model=$(tr -d '\\000' < " + quote(deviceTreeModel) + " 2>/dev/null)\"; " +
		"echo \"memtotal_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)\""
}

// boardFacts is what boardFactsCmd found.
type boardFacts struct {
	model string
	memKB int
}

func parseBoardFacts(lines []string) boardFacts {
	var f boardFacts
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "model="); ok {
			f.model = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "memtotal_kb="); ok {
			f.memKB, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return f
}

// checkBoard decides whether the machine inv (the inventory's entry) may run
// a case as the board want: the inventory's board: must be that profile,
// the machine's device-tree model must be one of the profile's, and its
// memory the profile's (a 1 GB Pi 4 is no pi4-4g). A machine hil cannot
// identify is refused unless the inventory opts out (verify_board: false).
// The refusal is unsupported: the lab cannot run this board, which says
// nothing about the app. It returns what the info should say about the
// check.
func checkBoard(inv Machine, want *board.Board, f boardFacts) (string, error) {
	refuse := func(format string, args ...any) error {
		return &target.UnsupportedError{Target: "device", What: "board " + want.Describe() + " on " + inv.Name, Reason: fmt.Sprintf(format, args...)}
	}
	if inv.Profile != "" && !sameProfile(inv.Profile, want) {
		return "", refuse("the inventory says %s is a %s, not a %s: hil runs a board profile only on that board", inv.Name, inv.Profile, want.Name)
	}
	if inv.VerifyBoard != nil && !*inv.VerifyBoard {
		return fmt.Sprintf("not verified (verify_board: false in the inventory; model %q)", orUnknown(f.model)), nil
	}
	if f.model == "" {
		return "", refuse("hil could not verify that %s is a %s: it has no %s (not a Raspberry Pi, or a kernel without device tree); for such a machine set verify_board: false in its inventory entry to run board cases on it unverified", inv.Name, want.Model, deviceTreeModel)
	}
	if len(want.DeviceModels) == 0 {
		return "", refuse("hil could not verify that %s (%q) is a %s: the profile names no device-tree model (device_model:); set verify_board: false in the inventory entry to run it unverified", inv.Name, f.model, want.Name)
	}
	if !want.MatchesModel(f.model) {
		return "", refuse("%s is a %q, not a %s (%s: its model begins %s): hil refuses to run a board profile on another board", inv.Name, f.model, want.String(), want.Model, quoteList(want.DeviceModels))
	}
	// The firmware keeps some memory for the GPU: a board shows somewhat
	// less than it has, never more, and never half.
	mib := f.memKB / 1024
	if f.memKB > 0 && (mib > want.MemoryMiB || mib <= want.MemoryMiB/2) {
		return "", refuse("%s (%q) has %d MiB of memory; a %s has %d MiB: hil refuses to run a board profile on a board of another size", inv.Name, f.model, mib, want.String(), want.MemoryMiB)
	}
	return fmt.Sprintf("%q (%d MiB), a %s", f.model, mib, want.String()), nil
}

func sameProfile(name string, want *board.Board) bool {
	name = strings.ToLower(strings.TrimSpace(name))
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[:i]
	}
	if name == strings.ToLower(want.Name) {
		return true
	}
	for _, a := range want.Aliases {
		if name == strings.ToLower(a) {
			return true
		}
	}
	if b, err := board.Builtin().Lookup(name); err == nil {
		return b.Name == want.Name
	}
	return false
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, " or ")
}
