package device

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/target"
)

func lookupBoard(t *testing.T, name string) *board.Board {
	t.Helper()
	b, err := board.Builtin().Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return &b
}

// What a board's model, memory and the inventory decide, for each profile.
func TestCheckBoard(t *testing.T) {
	no := false
	for _, c := range []struct {
		inv   Machine
		board string
		facts boardFacts
		want  string // "" passes
	}{
		{Machine{Name: "a"}, "pi3b+", boardFacts{"Raspberry Pi 3 Model B Plus Rev 1.3", 948304}, ""},
		{Machine{Name: "a"}, "pi3", boardFacts{"Raspberry Pi 3 Model B Rev 1.2", 948304}, ""},
		{Machine{Name: "a"}, "pi0w", boardFacts{"Raspberry Pi Zero W Rev 1.1", 443568}, ""},
		{Machine{Name: "a"}, "pi4", boardFacts{"Raspberry Pi 4 Model B Rev 1.4", 3884376}, `a ("Raspberry Pi 4 Model B Rev 1.4") has 3793 MiB of memory; a pi4 has 1024 MiB`},
		{Machine{Name: "a"}, "pi4-4g", boardFacts{"Raspberry Pi 4 Model B Rev 1.4", 3884376}, ""},
		{Machine{Name: "a"}, "pi3b+", boardFacts{"Raspberry Pi 4 Model B Rev 1.4", 948304}, `a is a "Raspberry Pi 4 Model B Rev 1.4", not a pi3b+ (Raspberry Pi 3 Model B+: its model begins "Raspberry Pi 3 Model B")`},
		{Machine{Name: "a"}, "pi0w", boardFacts{"Raspberry Pi Zero 2 W Rev 1.0", 443568}, `not a pi0w`},
		{Machine{Name: "a"}, "pi3b+", boardFacts{"", 16000000}, "hil could not verify that a is a Raspberry Pi 3 Model B+: it has no /proc/device-tree/model"},
		{Machine{Name: "a", VerifyBoard: &no}, "pi3b+", boardFacts{"", 16000000}, ""},
		{Machine{Name: "a", Profile: "pi4"}, "pi3b+", boardFacts{"Raspberry Pi 3 Model B Plus Rev 1.3", 948304}, "the inventory says a is a pi4, not a pi3b+"},
		{Machine{Name: "a", Profile: "pi3", VerifyBoard: &no}, "pi3b+/32", boardFacts{}, ""},
		{Machine{Name: "a"}, "virt", boardFacts{"linux,dummy-virt", 500000}, "the profile names no device-tree model"},
	} {
		_, err := checkBoard(c.inv, lookupBoard(t, c.board), c.facts)
		var ue *target.UnsupportedError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s on %q: %v; want it accepted", c.board, c.facts.model, err)
		case c.want != "" && (!errors.As(err, &ue) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s on %q: %v; want an unsupported refusal saying %q", c.board, c.facts.model, err, c.want)
		}
	}
}

// On a real board over SSH (the lab's sshd on this machine, which has no
// device tree): a board case is refused unless the inventory opts out;
// a model file that names another board refuses naming it; with the
// opt-out the case runs, and the device says the board was not verified.
func TestBoardModelOverSSH(t *testing.T) {
	b := newLabBoard(t)
	img := busyboxImage(t)
	pi3 := lookupBoard(t, "pi3b+")
	boot := func(inv Machine) (target.App, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cfg := runConfig(img)
		cfg.Board = pi3
		return New(inv).Boot(ctx, img, cfg)
	}
	var ue *target.UnsupportedError
	if _, err := os.Stat(deviceTreeModel); err == nil {
		t.Skipf("this machine has %s: the refusal of an unknown machine cannot be shown here", deviceTreeModel)
	}
	if _, err := boot(b.Machine); !errors.As(err, &ue) || !strings.Contains(err.Error(), "hil could not verify that lab-1 is a Raspberry Pi 3 Model B+") {
		t.Errorf("no device tree: %v", err)
	}
	b.assertClean(t)

	model := filepath.Join(t.TempDir(), "model")
	if err := os.WriteFile(model, []byte("Raspberry Pi 4 Model B Rev 1.4\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(old string) { deviceTreeModel = old }(deviceTreeModel)
	deviceTreeModel = model
	if _, err := boot(b.Machine); !errors.As(err, &ue) || !strings.Contains(err.Error(), `lab-1 is a "Raspberry Pi 4 Model B Rev 1.4", not a pi3b+`) {
		t.Errorf("a Pi 4's model: %v", err)
	}
	b.assertClean(t)

	no := false
	inv := b.Machine
	inv.VerifyBoard = &no
	dev, err := boot(inv)
	if err != nil {
		t.Fatalf("verify_board: false: %v", err)
	}
	defer dev.Close()
	waitLine(t, dev.Output(), "ready iface=eth0")
	info := dev.Info()
	if info["board_profile"] != "pi3b+" || !strings.HasPrefix(info.String("board_check"), "not verified (verify_board: false") || info["board_model"] != "Raspberry Pi 4 Model B Rev 1.4" {
		t.Errorf("info %v", info)
	}
	dev.Close()
	b.assertClean(t)
}
