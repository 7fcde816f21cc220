package harness

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/testenv"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A suite is planned without opening the image or booting: the runner's
// own planner (a scenario's target T matches every board T@NAME of a
// selection), the platforms of the config replacing the scenarios', a
// shard's part of the cases, and the per-case timeout from the scenario's.
func TestLoadSuitePlansWithoutTheImage(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	writeFile(t, dir, "a.yaml", "name: a\ntargets: [system, device]\nplatforms: [linux/arm/v7, linux/arm64]\ntimeout: 2m\nsteps:\n  - wait: 1s\n")
	writeFile(t, dir, "b.yaml", "name: b\ntargets: [user]\nsteps:\n  - wait: 1s\n")
	inv := writeFile(t, other, "devices.yaml", "boards:\n  - name: pi-1\n    host: 192.0.2.1\n    tags: [lab]\n  - name: pi-2\n    host: 192.0.2.2\n    tags: [lab]\n")
	retries := 2
	cfg := Config{Image: "oci:/nonexistent", Scenarios: []string{dir}, Targets: []string{"system", "device"}, Devices: inv, Device: "tag:lab", Retries: &retries}
	s, err := LoadSuite(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range s.Cases() {
		got = append(got, CaseName(c))
	}
	want := "a on system linux-arm-v7,a on system linux-arm64,a on device@pi-1 linux-arm-v7,a on device@pi-1 linux-arm64,a on device@pi-2 linux-arm-v7,a on device@pi-2 linux-arm64"
	if strings.Join(got, ",") != want {
		t.Errorf("cases:\n%s\nwant\n%s", strings.Join(got, ","), want)
	}
	if d := s.Timeout(s.Cases()[0]); d != 3*2*time.Minute+time.Minute {
		t.Errorf("timeout %s: want 3 attempts of the scenario's 2m and a minute", d)
	}

	cfg.Platforms = []string{"linux/amd64"}
	cfg.Shard = &scenario.Shard{Index: 2, Count: 2}
	s, err = LoadSuite(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Planned() != 3 || len(s.Cases()) == 0 || len(s.Cases()) >= 3 {
		t.Errorf("shard 2/2 of 3 planned cases: planned %d, cases %d", s.Planned(), len(s.Cases()))
	}
	for _, c := range s.Cases() {
		if c.Platform != "linux/amd64" {
			t.Errorf("%s: the config's platforms replace the scenario's", CaseName(c))
		}
	}
	// The image is opened by the first Run, and a bad reference says so.
	if _, err := s.Run(t.Context(), s.Cases()[0]); err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("run with a missing image: %v", err)
	}
}

func TestLoadSuiteInputErrors(t *testing.T) {
	dir := t.TempDir()
	sc := writeFile(t, dir, "a.yaml", "name: a\nsteps:\n  - wait: 1s\n")
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no scenarios given"},
		{Config{Scenarios: []string{writeFile(t, dir, "bad.yaml", "name: a\nstepz: []\n")}}, "bad.yaml:2:1"},
		{Config{Scenarios: []string{sc}, Targets: []string{"vm"}}, `unknown target "vm"`},
		{Config{Scenarios: []string{sc}, Timings: scenario.Timings{}}, "give a shard"},
	} {
		if _, err := LoadSuite(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	base := Config{Image: "oci:build/images/pcapwatch", Targets: []string{"system"}, Devices: "devices.yaml"}
	cfg, err := ConfigFromEnv(base)
	if err != nil || cfg.Image != base.Image || len(cfg.Targets) != 1 || cfg.Shard != nil || len(cfg.ImageOptions) != 0 {
		t.Fatalf("nothing set: %+v, %v", cfg, err)
	}
	timings := writeFile(t, t.TempDir(), "results.json", `{"results": []}`)
	t.Setenv(EnvImage, "registry.lan/app:1")
	t.Setenv(EnvTargets, "user, container")
	t.Setenv(EnvPlatforms, "linux/amd64")
	t.Setenv(EnvDevice, "pi-1")
	t.Setenv(EnvInsecure, "1")
	t.Setenv(EnvShard, "2/3")
	t.Setenv(EnvTimings, timings)
	cfg, err = ConfigFromEnv(base)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Image != "registry.lan/app:1" || strings.Join(cfg.Targets, ",") != "user,container" || cfg.Platforms[0] != "linux/amd64" ||
		cfg.Devices != "devices.yaml" || cfg.Device != "pi-1" || len(cfg.ImageOptions) != 1 || cfg.Shard == nil || cfg.Shard.String() != "2/3" || cfg.Timings == nil {
		t.Errorf("from the environment: %+v", cfg)
	}
	t.Setenv(EnvShard, "3/2")
	if _, err := ConfigFromEnv(base); err == nil || !strings.Contains(err.Error(), EnvShard) {
		t.Errorf("bad shard: %v", err)
	}
	t.Setenv(EnvShard, "")
	if _, err := ConfigFromEnv(base); err == nil || !strings.Contains(err.Error(), "set HIL_SHARD") {
		t.Errorf("timings without a shard: %v", err)
	}
}

// With boards, the suite opens the image to plan what each board pulls
// (and its runner uses that image); cases are named with the board.
func TestLoadSuitePlansBoards(t *testing.T) {
	images := testenv.ImagesDir(t)
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", "name: a\ntargets: [system, user]\nsteps:\n  - wait: 1s\n")
	writeFile(t, dir, "z.yaml", "name: z\ntargets: [user]\nboards: [pi0w, pi2]\nsteps:\n  - wait: 1s\n")
	boards, err := board.Builtin().LookupList("pi0w", "pi4/64")
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSuite(Config{Image: "oci:" + filepath.Join(images, "pcapwatch"), Scenarios: []string{dir}, Targets: []string{"system", "user"}, Boards: boards})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range s.Cases() {
		got = append(got, CaseName(c))
	}
	want := "a on system pi0w linux-arm-v5,a on system pi4-64 linux-arm64,a on user pi0w linux-arm-v5,a on user pi4-64 linux-arm64,z on user pi0w linux-arm-v5"
	if strings.Join(got, ",") != want {
		t.Errorf("cases:\n%s\nwant\n%s", strings.Join(got, ","), want)
	}
	if _, img, err := s.Runner(t.Context()); err != nil || img.Digest() != s.plannedDigest {
		t.Errorf("the runner's image %v, planned on %s", err, s.plannedDigest)
	}
	// A board name no profile has, from the environment.
	t.Setenv(EnvBoards, "pi3b+,pi9")
	if _, err := ConfigFromEnv(Config{}); err == nil || !strings.Contains(err.Error(), `HIL_BOARDS: unknown board "pi9"; known boards: pi0w (pi0)`) {
		t.Errorf("HIL_BOARDS with an unknown board: %v", err)
	}
	t.Setenv(EnvBoards, "pi3, pi4/32")
	cfg, err := ConfigFromEnv(Config{})
	if err != nil || len(cfg.Boards) != 2 || cfg.Boards[0].String() != "pi3b+" || cfg.Boards[1].String() != "pi4/32" {
		t.Errorf("HIL_BOARDS: %v, %v", cfg.Boards, err)
	}
}

// Board cases are planned on the image's platforms: a tag that moves to
// another digest before the runner opens it is refused, never run with a
// plan made for another image.
func TestLoadSuiteBoardsTagMoved(t *testing.T) {
	images := testenv.ImagesDir(t)
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := registry.New(registry.WithInsecure())
	ref := strings.TrimPrefix(srv.URL, "http://") + "/app:candidate"
	r, err := reg.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	push := func(image string) {
		if _, err := promote.PushLayout(t.Context(), reg, filepath.Join(images, image), r); err != nil {
			t.Fatal(err)
		}
	}
	push("pcapwatch")
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", "name: a\ntargets: [user]\nsteps:\n  - wait: 1s\n")
	boards, _ := board.Builtin().LookupList("pi2")
	s, err := LoadSuite(Config{Image: ref, Scenarios: []string{dir}, Targets: []string{"user"}, Boards: boards,
		ImageOptions: []image.Option{image.WithRegistry(reg)}})
	if err != nil {
		t.Fatal(err)
	}
	push("pcapwatch-armhf")
	if _, _, err := s.Runner(t.Context()); err == nil || !strings.Contains(err.Error(), "when the board cases were planned") {
		t.Errorf("a moved tag: %v", err)
	}
}

// HIL_BOARD_PROFILES adds the boards of a profile file, which HIL_BOARDS
// can then name (and the suite's catalog holds, for scenarios' boards:);
// a file with an error says the variable, the file and the line.
func TestConfigFromEnvBoardProfiles(t *testing.T) {
	dir := t.TempDir()
	profiles := writeFile(t, dir, "boards.yaml", `boards:
  - name: acme-a7
    aliases: [acme]
    model: Acme A7 gateway
    cpu: Cortex-A7
    memory: 256MiB
    isa: {arch: v7, fp: VFPv4, simd: NEONv2, idiv: true}
    os:
      32:
        platform: linux/arm/v7
        system: {emulator: qemu-system-arm, machine: virt, cpu: cortex-a7, kernel: armhf}
        user: {emulator: qemu-arm, cpu: cortex-a7}
`)
	t.Setenv(EnvBoards, "acme,pi2")
	if _, err := ConfigFromEnv(Config{}); err == nil || !strings.Contains(err.Error(), `HIL_BOARDS: unknown board "acme"`) {
		t.Fatalf("a profile-file board without HIL_BOARD_PROFILES: %v", err)
	}
	t.Setenv(EnvBoardProfiles, profiles)
	cfg, err := ConfigFromEnv(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Boards) != 2 || cfg.Boards[0].Name != "acme-a7" || cfg.Boards[0].MemoryMiB != 256 || cfg.Boards[1].Name != "pi2" {
		t.Errorf("HIL_BOARDS with HIL_BOARD_PROFILES: %v", cfg.Boards)
	}
	if cfg.BoardCatalog == nil {
		t.Fatal("no board catalog in the configuration")
	}
	if _, err := cfg.BoardCatalog.Lookup("acme"); err != nil {
		t.Errorf("the suite's catalog lacks the file's board: %v", err)
	}
	bad := writeFile(t, dir, "bad.yaml", "boards:\n  - name: acme-a7\n    colour: red\n")
	t.Setenv(EnvBoardProfiles, bad)
	if _, err := ConfigFromEnv(Config{}); err == nil || !strings.Contains(err.Error(), "HIL_BOARD_PROFILES: "+bad+":3: ") {
		t.Errorf("a profile file with an error: %v", err)
	}
}
