package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/schemas"
)

func TestBoardsCommand(t *testing.T) {
	out, errText, code := runHil(t, "boards")
	if code != 0 {
		t.Fatalf("exit %d (%s)", code, errText)
	}
	for _, s := range []string{
		"pi0w", "ARM1176JZF-S", "linux/arm/v6", "qemu-arm -cpu arm1176",
		"pi3b+", "pi3,pi3b", "qemu-system-aarch64 -M virt -cpu cortex-a53, arm64 kernel, linux32",
		"unsupported (pi0w/32, pi1/32): QEMU's virt machine refuses the ARM1176",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("hil boards lacks %q:\n%s", s, out)
		}
	}

	profiles := filepath.Join(t.TempDir(), "boards.yaml")
	os.WriteFile(profiles, []byte(`boards:
  - name: acme-a7
    model: Acme A7 gateway
    cpu: Cortex-A7
    memory: 256MiB
    isa: {arch: v7, fp: VFPv4, simd: NEONv2}
    os:
      32:
        platform: linux/arm/v7
        system: {emulator: qemu-system-arm, machine: virt, cpu: cortex-a7, kernel: armhf}
        user: {emulator: qemu-arm, cpu: cortex-a7}
`), 0o644)
	out, errText, code = runHil(t, "boards", "--json", "--board-profiles", profiles)
	if code != 0 {
		t.Fatalf("--json: exit %d (%s)", code, errText)
	}
	validates(t, "hil boards --json", schemas.Def("boards"), out)
	var doc struct{ Boards []board.Profile }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	ps := doc.Boards
	last := ps[len(ps)-1]
	if last.Name != "acme-a7" || last.MemoryMiB != 256 || last.OS[32].Platform != "linux/arm/v7" || last.Source != profiles+":2" {
		t.Errorf("the file's profile: %+v", last)
	}
}
