package board

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestFleetFile(t *testing.T) {
	c := Builtin()
	bs, err := c.ParseFleet("fleet.yaml", []byte("# the field\nboards:\n  - pi0w\n  - pi3\n  - pi4/64\n"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range bs {
		names = append(names, b.String())
	}
	if strings.Join(names, ",") != "pi0w,pi3b+,pi4/64" {
		t.Errorf("fleet %v", names)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"boards: [pi0w, pi9]\n", `fleet.yaml:1:16... `},
		{"boards: [pi3, pi3b+]\n", "fleet.yaml:1: pi3b+ is listed twice (line 1)"},
		{"board: [pi3]\n", `fleet.yaml:1: the fleet file: unknown key "board"; expected one of boards`},
		{"boards: []\n", "fleet.yaml:1: boards: expected a list of at least one board"},
		{"", "fleet.yaml: empty fleet file"},
		{"boards: [pi3\n", "fleet.yaml:1:"},
	} {
		_, err := c.ParseFleet("fleet.yaml", []byte(tc.yaml))
		want := tc.want
		if strings.HasSuffix(want, "... ") {
			want = `fleet.yaml:1: unknown board "pi9"; known boards: pi0w (pi0), pi1 (pi1b+)`
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", tc.yaml, err, want)
		}
	}
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	os.WriteFile(path, []byte("boards: [pi2]\n"), 0o644)
	if bs, err := c.LoadFleet(path); err != nil || len(bs) != 1 || bs[0].Name != "pi2" {
		t.Errorf("LoadFleet: %v, %v", bs, err)
	}
}

// What each board's engine pulls from an index, and from one manifest.
func TestPull(t *testing.T) {
	p := func(s string) v1.Platform { x, _ := v1.ParsePlatform(s); return *x }
	c := Builtin()
	index := []v1.Platform{p("linux/arm/v7"), p("linux/amd64"), p("linux/arm/v5"), p("linux/arm64")}
	for name, want := range map[string]string{"pi0w": "linux/arm/v5", "pi2": "linux/arm/v7", "pi3b+": "linux/arm64", "pi3b+/32": "linux/arm/v7", "pi4/64": "linux/arm64", "virt": "linux/arm/v7"} {
		b, _ := c.Lookup(name)
		got, err := b.Pull(index, false)
		if err != nil || got.Platform.String() != want || got.Note != "" {
			t.Errorf("%s pulls %v (%q), %v; want %s", name, got.Platform, got.Note, err, want)
		}
	}
	pi0w, _ := c.Lookup("pi0w")
	if _, err := pi0w.Pull([]v1.Platform{p("linux/arm/v7")}, false); err == nil {
		t.Error("pi0w pulled from an armv7-only index")
	}
	got, err := pi0w.Pull([]v1.Platform{p("linux/arm/v7")}, true)
	if err != nil || got.Platform.String() != "linux/arm/v7" || !strings.Contains(got.Note, "pi0w asks for linux/arm/v6; Docker warns") {
		t.Errorf("single manifest: %v %q %v", got.Platform, got.Note, err)
	}
}

// qemu-user's model of each board, by the program's word size.
func TestUserFor(t *testing.T) {
	c := Builtin()
	for _, tc := range []struct{ board, arch, emulator, cpu, err string }{
		{"pi0w", "arm", "qemu-arm", "arm1176", ""},
		{"pi2", "arm", "qemu-arm", "cortex-a7", ""},
		{"pi3b+", "arm", "qemu-arm", "max", ""},
		{"pi3b+", "arm64", "qemu-aarch64", "cortex-a53", ""},
		{"pi5", "arm64", "qemu-aarch64", "cortex-a76", ""},
		{"pi3b+/32", "arm64", "", "", "runs a 32-bit OS, which runs no arm64 program"},
		{"pi2", "amd64", "", "", "is an ARM board: it runs no amd64 program"},
	} {
		b, _ := c.Lookup(tc.board)
		u, err := b.UserFor(tc.arch)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %s: %v; want %q", tc.board, tc.arch, err, tc.err)
			}
			continue
		}
		if err != nil || u.Emulator != tc.emulator || u.CPU != tc.cpu {
			t.Errorf("%s %s: %+v, %v", tc.board, tc.arch, u, err)
		}
	}
}

// Device-tree models: every Raspberry Pi's model string to its profile.
func TestMatchesModel(t *testing.T) {
	c := Builtin()
	for model, want := range map[string]string{
		"Raspberry Pi Zero W Rev 1.1\x00":     "pi0w",
		"Raspberry Pi Zero Rev 1.3":           "pi0w",
		"Raspberry Pi Model B Plus Rev 1.2":   "pi1",
		"Raspberry Pi 2 Model B Rev 1.1":      "pi2",
		"Raspberry Pi Zero 2 W Rev 1.0":       "pi02w",
		"Raspberry Pi 3 Model B Plus Rev 1.3": "pi3b+",
		"Raspberry Pi 3 Model B Rev 1.2":      "pi3b+",
		"Raspberry Pi 4 Model B Rev 1.4":      "pi4",
		"Raspberry Pi 5 Model B Rev 1.0":      "pi5",
		"linux,dummy-virt":                    "",
	} {
		var got []string
		for _, p := range c.Profiles() {
			if p.MatchesModel(model) && !strings.Contains(p.Name, "-") {
				got = append(got, p.Name)
			}
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%q matches %v, want %q", model, got, want)
		}
	}
	cat, err := c.WithProfiles("x.yaml", []byte(`boards:
  - name: acme-a7
    model: Acme A7
    device_model: [Acme A7 rev]
    cpu: Cortex-A7
    memory: 1GiB
    isa: {arch: v7, fp: VFPv4, simd: NEONv2, idiv: true}
    os:
      32:
        platform: linux/arm/v7
        system: {emulator: qemu-system-arm, machine: virt, cpu: cortex-a7, kernel: armhf}
        user: {emulator: qemu-arm, cpu: cortex-a7}
`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cat.Lookup("acme-a7")
	if !b.MatchesModel("Acme A7 rev 2") || b.MatchesModel("Acme A8") {
		t.Errorf("device_model %v", b.DeviceModels)
	}
}
