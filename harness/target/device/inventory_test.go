package device

import (
	"strings"
	"testing"
)

func TestInventoryParsesBoardsAndSelectsByTag(t *testing.T) {
	inv, err := ParseInventory("/lab/devices.yaml", []byte(`
boards:
  - name: pi-lab-1
    host: 192.0.2.10
    user: pirate
    key: keys/pi
    tags: [lab, pi3]
  - name: pi-lab-2
    host: 192.0.2.11
    port: 2222
    tags: [lab]
    board: pi4-4g
    verify_board: false
`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := inv.Machine("pi-lab-1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Key != "/lab/keys/pi" {
		t.Errorf("relative key resolved to %q, want /lab/keys/pi", b.Key)
	}
	if b2 := inv.Boards[1]; b2.Profile != "pi4-4g" || b2.VerifyBoard == nil || *b2.VerifyBoard || inv.Boards[0].VerifyBoard != nil {
		t.Errorf("board: and verify_board: read as %q, %v", b2.Profile, b2.VerifyBoard)
	}
	if got := inv.Boards[1].Addr(); got != "192.0.2.11:2222" {
		t.Errorf("Addr = %q", got)
	}
	if got := inv.Boards[0].Addr(); got != "192.0.2.10:22" {
		t.Errorf("default port: Addr = %q", got)
	}
	if got := inv.Select("pi3"); len(got) != 1 || got[0].Name != "pi-lab-1" {
		t.Errorf("Select(pi3) = %v", got)
	}
	if got := inv.Select("lab"); len(got) != 2 {
		t.Errorf("Select(lab) gave %d boards, want 2", len(got))
	}
	if _, err := inv.Machine("pi-9"); err == nil || !strings.Contains(err.Error(), "pi-lab-1, pi-lab-2") {
		t.Errorf("unknown board: %v", err)
	}
}

func TestInventoryErrorsSayWhere(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "boards:\n  - name: a\n    host: h\n    hots: x\n", "line 4"},
		{"wrong type", "boards:\n  - name: a\n    host: h\n    port: twenty\n", "line 4"},
		{"no host", "boards:\n  - name: a\n", "devices.yaml:2: board \"a\" has no host"},
		{"no name", "boards:\n  - host: h\n", "devices.yaml:2: board 1 has no name"},
		{"duplicate", "boards:\n  - name: a\n    host: h\n  - name: a\n    host: i\n", "devices.yaml:4: board name \"a\" is already used at line 2"},
		{"empty", "", "empty inventory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseInventory("devices.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
