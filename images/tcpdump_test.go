//go:build linux

package images_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/startup"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/pcapfixtures"
)

// The tcpdump image is Debian's own tcpdump on both platforms, with the
// user its postinst would have added, and it can start (the static check
// resolves its loader, libpcap, libcrypto and glibc versions).
func TestTcpdumpImage(t *testing.T) {
	_, imgs := built(t)
	td, ok := imgs["tcpdump"]
	if !ok {
		t.Fatal("images.json has no tcpdump: run make images")
	}
	if !slices.Equal(td.Platforms, []string{"linux/arm/v7", "linux/amd64"}) {
		t.Errorf("platforms %v, expected linux/arm/v7 and linux/amd64", td.Platforms)
	}
	for _, p := range td.Platforms {
		img := platformImage(t, td.Layout, p)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/bin/tcpdump"}) || !slices.Equal(cf.Config.Cmd, []string{"-i", "eth0", "-n", "-e", "-l", "-U"}) {
			t.Errorf("%s: entrypoint %v cmd %v", p, cf.Config.Entrypoint, cf.Config.Cmd)
		}
		hdrs, data := files(t, img, "/etc/passwd", "/etc/group")
		if !strings.Contains(string(data["/etc/passwd"]), "\ntcpdump:x:100:101:") || !strings.Contains(string(data["/etc/group"]), "\ntcpdump:x:101:") {
			t.Errorf("%s: expected the tcpdump user and group, found %q / %q", p, data["/etc/passwd"], data["/etc/group"])
		}
		mustHave(t, hdrs, "/usr/bin/tcpdump", loader(p), libpcapPath(hdrs, p))
		var pinned bool
		for _, pkg := range td.Packages[p] {
			pinned = pinned || strings.HasPrefix(pkg, "tcpdump 4.99.")
		}
		if !pinned {
			t.Errorf("%s: packages %v: expected Debian's tcpdump 4.99 from images/debs.lock", p, td.Packages[p])
		}
		root := rootfs(t, td.Layout, p)
		rep, err := startup.Check(context.Background(), root, startup.Config{Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, Env: cf.Config.Env, Platform: p})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Errorf("%s: the static check finds problems: %v", p, rep.Problems)
		}
	}
	f, err := os.Open(filepath.Join(rootfs(t, td.Layout, "linux/arm/v7"), "usr", "bin", "tcpdump"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkArmhfBinary(t, "/usr/bin/tcpdump in the arm/v7 image", f)
}

var (
	capturedRe = regexp.MustCompile(`^\^(\d+) packets captured\$$`)
	lineRe     = regexp.MustCompile(`^\^\\d\{2\}`)
)

// Every tcpdump scenario asks tcpdump to have captured exactly the frames
// its replays put on the link (the manifest's frames that fit the MTU,
// times the loops, over all its replay steps), and for none to be dropped
// by the kernel. The one that asks for receive coalescing (rx_offload:
// gro) expects fewer: the kernel's count below the frames replayed.
func TestTcpdumpScenariosMatchManifest(t *testing.T) {
	scs, err := scenario.LoadDir(filepath.Join(testenv.RepoRoot(t), "scenarios", "tcpdump"))
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, sc := range scs {
		replayed, captured, printed, dropped, fewer := 0, -1, -1, false, false
		for _, st := range sc.Steps {
			switch {
			case st.Replay != nil:
				fx, err := pcapfixtures.Lookup(st.Replay.Fixture)
				if err != nil {
					t.Errorf("%s: %v", st.Pos, err)
					continue
				}
				if st.Replay.SHA256 != fx.SHA256 {
					t.Errorf("%s: fixture sha256 %s, manifest %s", st.Pos, st.Replay.SHA256, fx.SHA256)
				}
				covered[fx.Name] = true
				replayed += fx.Expect.FramesSeen * max(st.Replay.Loops, 1)
			case st.ExpectOutput != nil && st.ExpectOutput.Match.Regex != nil:
				re := st.ExpectOutput.Match.Regex.String()
				if m := capturedRe.FindStringSubmatch(re); m != nil {
					captured, _ = strconv.Atoi(m[1])
				}
				if re == "^0 packets dropped by kernel$" {
					dropped = true
				}
				if strings.HasSuffix(re, " packets received by filter$") {
					fewer = true
				}
				if lineRe.MatchString(re) && st.ExpectOutput.Count.Op == "==" {
					printed = int(st.ExpectOutput.Count.N)
				}
			}
		}
		if sc.RxOffload == "gro" {
			if replayed == 0 || !fewer || !dropped {
				t.Errorf("%s: rx_offload gro: replays %d frames, expects the kernel's count below it %v, 0 dropped %v", sc.Pos, replayed, fewer, dropped)
			}
			continue
		}
		if replayed == 0 || captured != replayed || !dropped || (printed >= 0 && printed != replayed) {
			t.Errorf("%s: replays %d frames, expects %d captured (and %d printed), 0 dropped %v", sc.Pos, replayed, captured, printed, dropped)
		}
	}
	for _, fx := range pcapfixtures.Manifest() {
		if !covered[fx.Name] {
			t.Errorf("no tcpdump scenario replays %s", fx.Name)
		}
	}
}

func tcpdumpRef(t *testing.T) string {
	t.Helper()
	_, imgs := built(t)
	td, ok := imgs["tcpdump"]
	if !ok {
		t.Fatal("images.json has no tcpdump: run make images")
	}
	return "oci:" + td.Layout
}

func runTcpdumpScenarios(t *testing.T, cfg harness.Config, timeout time.Duration) []scenario.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	results, err := harness.RunScenarios(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	for _, r := range results {
		fmt.Fprintf(&table, "  %-28s %-9s %-12s %-11s %s\n", r.Scenario, r.Target, r.Platform, r.Verdict, r.Duration.Round(10*time.Millisecond))
	}
	t.Logf("tcpdump scenarios:\n%s", table.String())
	return results
}

// Natively (amd64) on the user and container targets, tcpdump captures
// every frame of every fixture; arm/v7 there is qemu-user, where libpcap
// cannot capture: unsupported with the emulator's reason, never a fail.
func TestTcpdumpScenariosOnUserAndContainer(t *testing.T) {
	testenv.RequireRoot(t)
	ref := tcpdumpRef(t)
	// The private engine for the container target.
	t.Setenv("DOCKER_HOST", testenv.Dockerd(t))
	results := runTcpdumpScenarios(t, harness.Config{
		Image:     ref,
		Scenarios: []string{filepath.Join(testenv.RepoRoot(t), "scenarios", "tcpdump")},
		Targets:   []string{"user", "container"},
		Platforms: []string{"linux/amd64", "linux/arm/v7"},
	}, 10*time.Minute)
	n := map[string]int{}
	for _, r := range results {
		n[r.Target+" "+r.Platform]++
		switch {
		case r.Platform == "linux/amd64" && r.Verdict != scenario.Pass:
			t.Errorf("%s: %s: %s", r.ID(), r.Verdict, r.Reason)
		case r.Platform == "linux/arm/v7" && (r.Verdict != scenario.Unsupported || !strings.Contains(r.Reason, "qemu")):
			t.Errorf("%s: %s (%s); want unsupported with the emulator's reason", r.ID(), r.Verdict, r.Reason)
		}
	}
	for _, k := range []string{"user linux/amd64", "container linux/amd64", "user linux/arm/v7", "container linux/arm/v7"} {
		if n[k] != len(pcapfixtures.Manifest()) {
			t.Errorf("%s: %d cases, want one per fixture (%d)", k, n[k], len(pcapfixtures.Manifest()))
		}
	}
}

// mergedFrame finds tcpdump's -e line of a frame longer than Ethernet
// allows at MTU 1500: segments the guest's GRO merged.
var (
	mergedFrame = regexp.MustCompile(`, length (\d+): `)
	frameLine   = regexp.MustCompile(`^\d{2}:\d{2}:\d{2}\.\d{6} `)
)

// coalesced counts the frames tcpdump printed and those over 1514 bytes.
func coalesced(r scenario.Result) (printed, merged int) {
	for _, l := range r.Output {
		if l.Stream != target.Stdout || !frameLine.MatchString(l.Text) {
			continue
		}
		printed++
		if m := mergedFrame.FindStringSubmatch(l.Text); m != nil {
			if n, _ := strconv.Atoi(m[1]); n > 1514 {
				merged++
			}
		}
	}
	return printed, merged
}

// On the system target (Debian's armhf tcpdump on an ARM kernel under
// qemu-system-arm) tcpdump captures every frame replayed, as recorded and
// at top speed: hil-init turns receive coalescing off in the guest, and
// every replay step accounts for its frames in the guest's counters. The
// one scenario that asks for GRO (rx_offload: gro, tcp-bulk-gro) must see
// it: fewer frames than were replayed, some over 1514 bytes, in tcpdump's
// output and in the step's delivery stats. The 100,000-frame burst (tag
// performance) is left to `hil run`: tcpdump prints it for about two
// minutes under TCG.
func TestTcpdumpScenariosOnSystem(t *testing.T) {
	ref := tcpdumpRef(t)
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "scenarios", "tcpdump", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "burst-100k.yaml" })
	results := runTcpdumpScenarios(t, harness.Config{
		Image:     ref,
		Scenarios: files,
		Targets:   []string{"system"},
		Platforms: []string{"linux/arm/v7"},
	}, 20*time.Minute)
	if len(results) != len(files) {
		t.Errorf("%d results for %d scenarios", len(results), len(files))
	}
	for _, r := range results {
		printed, merged := coalesced(r)
		if r.Verdict != scenario.Pass {
			t.Errorf("%s: %s: %s (tcpdump printed %d frames, %d over 1514 bytes)", r.ID(), r.Verdict, r.Reason, printed, merged)
			continue
		}
		gro := slices.Contains(r.Tags, "gro")
		if want := map[bool]string{false: "off", true: "rx-gro"}[gro]; r.Device["rx_offload"] != want {
			t.Errorf("%s: device facts say rx_offload %q, want %q", r.ID(), r.Device["rx_offload"], want)
		}
		for _, st := range r.Steps {
			if st.Replay == nil {
				continue
			}
			d := st.Replay.Delivery
			switch {
			case d == nil:
				t.Errorf("%s: step %q has no delivery stats", r.ID(), st.Desc)
			case len(st.Warnings) > 0:
				t.Errorf("%s: step %q warns: %v", r.ID(), st.Desc, st.Warnings)
			case int64(d.RxPackets) != st.Replay.FramesSent || d.RxDropped != 0:
				t.Errorf("%s: step %q sent %d frames, the guest received %d, dropped %d", r.ID(), st.Desc, st.Replay.FramesSent, d.RxPackets, d.RxDropped)
			case !gro && (d.Seen != -1 || d.SeenOverMTU != -1):
				t.Errorf("%s: step %q: with GRO off hil-init counted what a capture saw (%d, %d over the MTU); it should not (its counting sockets slow the guest's receive path)", r.ID(), st.Desc, d.Seen, d.SeenOverMTU)
			case gro && (d.Seen >= int64(d.RxPackets) || d.SeenOverMTU == 0):
				t.Errorf("%s: step %q: with GRO on, a capture saw %d frames (%d over the MTU) of %d received; want fewer, larger ones", r.ID(), st.Desc, d.Seen, d.SeenOverMTU, d.RxPackets)
			case gro:
				t.Logf("%s: GRO merged %d frames into %d (%d over the MTU); tcpdump printed %d, %d over 1514 bytes", r.ID(), d.RxPackets, d.Seen, d.SeenOverMTU, printed, merged)
			}
		}
	}
}
