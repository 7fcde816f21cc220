package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
	// The container and device targets are plug-ins: linked in here.
	_ "github.com/hilproject/hil/harness/target/container"
	_ "github.com/hilproject/hil/harness/target/device"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/pcapfixtures"
)

// The slice make test runs: back-to-back full-size TCP segments (what
// receive coalescing would merge, and a burst for the app's ring) and a
// pcapng capture (IPv6 neighbour discovery). HIL_CONFORMANCE=full runs
// every fixture, and pcapwatch-rs too (scripts/bench/65-conformance.sh).
var slice = []string{"tcp-bulk", "ipv6-nd"}

var speeds = []string{"original", "top"}

// app is a sample image that captures, and how a scenario reads its counts.
type app struct {
	name, ready string
	// args replace the image's cmd, when set (YAML); burstArgs for the
	// 100k-frame burst, as the bundled burst scenarios run the app (a
	// ring that holds the whole burst).
	args, burstArgs string
	// steps after the replay of n frames (burst: the 100k burst): stop the
	// app and check its own count of frames captured (== n) and dropped (0).
	steps func(n int, burst bool) string
	// counts reads what the app said it captured and dropped.
	counts func(out []target.Line) (captured, dropped int)
}

var (
	tcpdumpLine = regexp.MustCompile(`^(\d+) packets (captured|dropped by kernel)$`)
	apps        = map[string]app{
		"pcapwatch": {name: "pcapwatch", ready: `^ready iface=eth0$`, burstArgs: pcapwatchBurst,
			steps: func(n int, _ bool) string {
				return fmt.Sprintf(`  - signal: TERM
  - expect_output: {json: {event: summary, frames: %d, pcap_dropped: 0, pcap_if_dropped: 0}, count: "== 1", within: 60s, settle: 10ms}
  - expect_exit: {code: 0, within: 30s}
`, n)
			},
			counts: summaryCounts},
		"pcapwatch-rs": {name: "pcapwatch-rs", ready: `^ready iface=eth0$`, burstArgs: pcapwatchBurst,
			steps: func(n int, _ bool) string {
				return fmt.Sprintf(`  - signal: TERM
  - expect_output: {json: {event: summary, frames: %d, pcap_dropped: 0}, count: "== 1", within: 60s, settle: 10ms}
  - expect_exit: {code: 0, within: 30s}
`, n)
			},
			counts: summaryCounts},
		// tcpdump prints a line per frame as it reads it: the count is
		// complete before the TERM, which ends its reading at once. The
		// burst it writes to /dev/null and stops after the 100,000th
		// frame by itself (-c): printing 100k lines takes minutes on TCG.
		"tcpdump": {name: "tcpdump", ready: `listening on eth0, link-type EN10MB`,
			// A 64 MiB ring (-B), as the tcpdump scenarios give bursts:
			// the default 2 MiB fills before tcpdump prints on TCG.
			args:      `[-i, eth0, -n, -e, -l, -U, -B, "65536"]`,
			burstArgs: `[-i, eth0, -n, -c, "100000", -w, /dev/null, -B, "65536"]`,
			steps: func(n int, burst bool) string {
				if burst {
					return fmt.Sprintf(`  - expect_output: {regex: "^%d packets captured$", stream: stderr, count: "== 1", within: 5m, settle: 10ms}
  - expect_output: {regex: "^0 packets dropped by kernel$", stream: stderr, count: "== 1", settle: 10ms}
  - expect_exit: {code: 0, within: 30s}
`, n)
				}
				return fmt.Sprintf(`  - expect_output: {regex: "^\\d{2}:\\d{2}:\\d{2}\\.\\d{6} ", stream: stdout, count: "== %d", within: 2m, settle: 10ms}
  - signal: TERM
  - expect_output: {regex: "^%d packets captured$", stream: stderr, count: "== 1", within: 30s, settle: 10ms}
  - expect_output: {regex: "^0 packets dropped by kernel$", stream: stderr, count: "== 1", settle: 10ms}
  - expect_exit: {code: 0, within: 30s}
`, n, n)
			},
			counts: func(out []target.Line) (int, int) {
				c, d := -1, -1
				for _, l := range out {
					if m := tcpdumpLine.FindStringSubmatch(l.Text); m != nil && l.Stream == target.Stderr {
						v, _ := strconv.Atoi(m[1])
						if m[2] == "captured" {
							c = v
						} else {
							d = v
						}
					}
				}
				return c, d
			}},
	}
)

// pcapwatchBurst is scenarios/burst-100k.yaml's: 256-byte slots, 64 MiB.
const pcapwatchBurst = `[--iface, eth0, --snaplen, "256", --buffer-mib, "64"]`

func summaryCounts(out []target.Line) (int, int) {
	for _, l := range out {
		var s struct {
			Event         string
			Frames        int
			PcapDropped   int `json:"pcap_dropped"`
			PcapIfDropped int `json:"pcap_if_dropped"`
		}
		if json.Unmarshal([]byte(l.Text), &s) == nil && s.Event == "summary" {
			return s.Frames, s.PcapDropped + s.PcapIfDropped
		}
	}
	return -1, -1
}

// cell is one case's outcome for the table.
type cell struct {
	verdict           scenario.Verdict
	sent, rx, dropped int64
	captured, appDrop int
	reason            string
	warnings          []string
	counted           bool // the device's interface counters were read
}

func (c cell) String() string {
	if c.verdict == "" {
		return "-"
	}
	s := fmt.Sprintf("%d/%d", c.captured, c.sent)
	if c.appDrop != 0 || c.dropped != 0 {
		s += fmt.Sprintf(" drop %d+%d", c.dropped, c.appDrop)
	}
	if c.verdict != scenario.Pass {
		s += " " + strings.ToUpper(string(c.verdict))
	}
	if len(c.warnings) > 0 || !c.counted {
		s += " WARN"
	}
	return s
}

// Every fixture of the slice (all with HIL_CONFORMANCE=full), replayed as
// recorded and at top speed, into pcapwatch and tcpdump on the system
// target (arm/v7), the user and container targets (amd64) and a lab board
// (sshd and a private Docker engine on this machine, amd64): each app's
// own count of frames captured equals the frames replayed, nothing is
// dropped by the kernel, and the device's interface received every frame
// (strict_delivery: a frame lost on the way is an infra-error). go test -v
// prints the table: captured/replayed per case.
func TestEveryFixtureEveryTargetEveryFrame(t *testing.T) {
	testenv.RequireRoot(t)
	images := testenv.ImagesDir(t)
	full := os.Getenv("HIL_CONFORMANCE") == "full"
	fixtures, appNames := slice, []string{"pcapwatch", "tcpdump"}
	if full {
		fixtures = nil
		for _, f := range pcapfixtures.Manifest() {
			fixtures = append(fixtures, f.Name)
		}
		appNames = append(appNames, "pcapwatch-rs")
	}

	if only := os.Getenv("HIL_CONFORMANCE_FIXTURES"); only != "" {
		fixtures = strings.Split(only, ",")
	}

	// One scenario per app, fixture and speed.
	type key struct{ app, fixture, speed string }
	sent := map[key]int{}
	dirs := map[string]string{}
	for _, a := range appNames {
		dir := t.TempDir()
		dirs[a] = dir
		for _, fx := range fixtures {
			f, err := pcapfixtures.Lookup(fx)
			if err != nil {
				t.Fatal(err)
			}
			n := f.Frames - f.OversizeFrames
			// Each variant: the targets it runs on, the app's arguments
			// and whether they are the burst's.
			type variant struct {
				targets, args string
				burst         bool
			}
			variants := []variant{{"system, user, container, device", apps[a].args, false}}
			if fx == "burst-100k" && apps[a].burstArgs != "" {
				variants = []variant{{"system, user, container, device", apps[a].burstArgs, true}}
				if a == "tcpdump" {
					// The user target's rootfs has no /dev/null to write
					// to; natively tcpdump prints the burst in a second.
					variants = []variant{{"system, container, device", apps[a].burstArgs, true}, {"user", apps[a].args, false}}
				}
			}
			for _, sp := range speeds {
				sent[key{a, fx, sp}] = n
				for i, v := range variants {
					y := fmt.Sprintf(`name: %s %s %s %d
targets: [%s]
strict_delivery: true
timeout: 10m
%sstartup: {budget: 90s, ready: {regex: %q%s}}
steps:
  - replay: {fixture: %s, schedule: %s}
%s`, a, fx, sp, i, v.targets, map[bool]string{true: "app: {args: " + v.args + "}\n"}[v.args != ""], apps[a].ready, map[bool]string{true: ", stream: stderr"}[a == "tcpdump"], fx, sp, apps[a].steps(n, v.burst))
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s-%d.yaml", fx, sp, i)), []byte(y), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}

	host := testenv.Dockerd(t)
	t.Setenv("DOCKER_HOST", host)
	s := testenv.SSHD(t, testenv.WithSessionEnv("DOCKER_HOST="+host))
	addr, port, _ := strings.Cut(s.Addr, ":")
	inv := filepath.Join(t.TempDir(), "devices.yaml")
	if err := os.WriteFile(inv, []byte(fmt.Sprintf("boards:\n  - name: lab-1\n    host: %s\n    port: %s\n    user: %s\n    key: %s\n    known_hosts: %s\n",
		addr, port, s.User, s.ClientKey, s.KnownHosts)), 0o600); err != nil {
		t.Fatal(err)
	}

	// HIL_CONFORMANCE_APPS, _GROUPS and _FIXTURES narrow a run (to look
	// into one app, target group or fixture): only the cells run are
	// checked.
	narrowed := os.Getenv("HIL_CONFORMANCE_APPS") != "" || os.Getenv("HIL_CONFORMANCE_GROUPS") != "" || os.Getenv("HIL_CONFORMANCE_FIXTURES") != ""
	if only := os.Getenv("HIL_CONFORMANCE_APPS"); only != "" {
		appNames = strings.Split(only, ",")
	}

	// The system target on its own, the rest beside it: separate QEMU and
	// namespaces, nothing shared but the CPUs.
	type group struct {
		name      string
		targets   []string
		platforms []string
	}
	groups := []group{
		{"system", []string{"system"}, []string{"linux/arm/v7"}},
		{"user+container", []string{"user", "container"}, []string{"linux/amd64"}},
		{"device", []string{"device"}, []string{"linux/amd64"}},
	}
	if only := os.Getenv("HIL_CONFORMANCE_GROUPS"); only != "" {
		groups = slices.DeleteFunc(groups, func(g group) bool { return !slices.Contains(strings.Split(only, ","), g.name) })
	}
	var mu sync.Mutex
	cells := map[key]map[string]cell{}
	var wg sync.WaitGroup
	start := time.Now()
	// One goroutine per target group, the apps one after the other in it:
	// one guest at a time on the system target.
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, a := range appNames {
				func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
					defer cancel()
					results, err := harness.RunScenarios(ctx, harness.Config{
						Image: "oci:" + filepath.Join(images, a), Scenarios: []string{dirs[a]},
						Targets: g.targets, Platforms: g.platforms, Devices: inv, Device: "lab-1",
					})
					if err != nil {
						t.Errorf("%s on %s: %v", a, g.name, err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					for _, r := range results {
						parts := strings.Fields(r.Scenario)
						k := key{parts[0], parts[1], parts[2]}
						c := cell{verdict: r.Verdict, sent: int64(sent[k]), reason: r.Reason}
						for _, st := range r.Steps {
							c.warnings = append(c.warnings, st.Warnings...)
							if st.Replay != nil {
								c.sent = st.Replay.FramesSent
								if d := st.Replay.Delivery; d != nil {
									c.rx, c.dropped, c.counted = int64(d.RxPackets), int64(d.RxDropped), true
								}
							}
						}
						c.captured, c.appDrop = apps[a].counts(r.Output)
						if cells[k] == nil {
							cells[k] = map[string]cell{}
						}
						cells[k][r.Target] = c
					}
				}()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	// The table, and every case checked.
	targets := []string{"system", "user", "container", "device"}
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %-8s %-13s", "fixture", "speed", "app")
	for _, tg := range targets {
		fmt.Fprintf(&b, " %-16s", tg)
	}
	b.WriteString("\n")
	var keys []key
	for k := range sent {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, c := keys[i], keys[j]
		if a.fixture != c.fixture {
			return slices.Index(fixtures, a.fixture) < slices.Index(fixtures, c.fixture)
		}
		if a.speed != c.speed {
			return a.speed < c.speed
		}
		return a.app < c.app
	})
	cases := 0
	for _, k := range keys {
		fmt.Fprintf(&b, "%-14s %-8s %-13s", k.fixture, k.speed, k.app)
		for _, tg := range targets {
			c := cells[k][tg]
			fmt.Fprintf(&b, " %-16s", c)
			cases++
			switch {
			case c.verdict == "" && narrowed:
			case c.verdict == "":
				t.Errorf("%s on %s: no result", k, tg)
			case c.verdict != scenario.Pass:
				t.Errorf("%s on %s: %s: %s", k, tg, c.verdict, c.reason)
			case len(c.warnings) > 0 || !c.counted:
				t.Errorf("%s on %s: the device's interface did not account for the frames: %v", k, tg, c.warnings)
			case int64(c.captured) != c.sent || c.appDrop != 0 || c.rx != c.sent || c.dropped != 0:
				t.Errorf("%s on %s: the app captured %d (dropped %d) of %d sent; the interface received %d (dropped %d)", k, tg, c.captured, c.appDrop, c.sent, c.rx, c.dropped)
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%d cases (captured/replayed; drop interface+app) in %s\n", cases, elapsed.Round(time.Second))
	t.Logf("conformance:\n%s", b.String())
	if out := os.Getenv("HIL_CONFORMANCE_TABLE"); out != "" {
		os.WriteFile(out, []byte(b.String()), 0o644)
	}
}
