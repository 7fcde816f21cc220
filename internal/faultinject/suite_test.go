package faultinject

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hilproject/hil/harness/report"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/hilproc"
	"github.com/hilproject/hil/internal/testenv"
)

// defaultSeed makes every run inject the same faults at the same points
// (as far as the host's timing lets it); HIL_FAULT_SEED picks others.
const defaultSeed = 20261201

// vms is how many hil processes with a VM run at once: the machine has 2
// cores, shared with the rest of make test.
const vms = 2

func TestMain(m *testing.M) {
	code := m.Run()
	hilproc.Cleanup()
	os.Exit(code)
}

// suite is what every part shares.
type suite struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	rngMu   sync.Mutex
	root    string // the repository
	images  string // the built sample images
	reg     *testenv.RegistryServer
	env     []string // for every hil process
	tally   *tally
	landing map[string]int // where the emulator kills landed
	landMu  sync.Mutex
}

// TestFaultInjection runs every part of the suite and prints the table.
func TestFaultInjection(t *testing.T) {
	testenv.RequireRoot(t)
	s := &suite{t: t, seed: seed(t), root: testenv.RepoRoot(t), images: testenv.ImagesDir(t), tally: &tally{}, landing: map[string]int{}}
	setBlobs(t, s.images)
	s.rng = rand.New(rand.NewPCG(s.seed, s.seed^0x5eed))
	s.env = []string{"DOCKER_CONFIG=" + t.TempDir()}
	hilproc.Build(t)
	s.reg = testenv.Registry(t)
	start := time.Now()
	defer func() { s.printTable(time.Since(start)) }()

	t.Run("emulator", s.emulatorFaults)
	t.Run("images", s.imageFaults)
	t.Run("hil", s.hilKills)
	t.Run("insecure", s.insecureMatrix)
	t.Run("bounds", s.absurdSchedules)
}

func seed(t *testing.T) uint64 {
	v := os.Getenv("HIL_FAULT_SEED")
	if v == "" {
		return defaultSeed
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("HIL_FAULT_SEED=%q: want a whole number", v)
	}
	return n
}

// float is a random number in [0, 1) from the seeded source.
func (s *suite) float() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

func (s *suite) intn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

// hil starts the hil binary with the suite's environment plus env.
func (s *suite) hil(t testing.TB, env []string, args ...string) *hilproc.Proc {
	t.Helper()
	return hilproc.Start(t, append(append([]string(nil), s.env...), env...), args...)
}

// hilDone runs hil to its end (at most limit) and returns the process.
func (s *suite) hilDone(t testing.TB, limit time.Duration, env []string, args ...string) *hilproc.Proc {
	t.Helper()
	p := s.hil(t, env, args...)
	select {
	case <-p.Done():
	case <-time.After(limit):
		t.Fatalf("hil %s still runs after %s:\n%s", strings.Join(args, " "), limit, p.Out())
	}
	return p
}

// leftovers is what the ended hil process p left (QEMUs, hil-vm dirs,
// owner records, veth pairs, namespaces), reported as test errors.
func leftovers(t testing.TB, p *hilproc.Proc) int {
	t.Helper()
	left := hilproc.WaitGone(p.Pid(), nil)
	if len(left) > 0 {
		t.Errorf("hil %v (pid %d) left %v", p.Cmd.Args[1:], p.Pid(), left)
	}
	return len(left)
}

// results reads the results.json hil wrote into dir.
func results(t testing.TB, dir string) []scenario.Result {
	t.Helper()
	rep, err := report.ReadDir(dir)
	if err != nil {
		t.Fatalf("reading the report in %s: %v", dir, err)
	}
	return rep.Results
}

// push pushes a layout to ref in the suite's registry with hil itself.
func (s *suite) push(t testing.TB, layout, ref string) string {
	t.Helper()
	p := s.hilDone(t, time.Minute, nil, "registry", "push", "--insecure", layout, ref)
	if p.Code() != 0 {
		t.Fatalf("hil registry push %s %s: exit %d\n%s", layout, ref, p.Code(), p.Out())
	}
	return s.digest(t, ref)
}

// digest is what ref points at, "" when nothing.
func (s *suite) digest(t testing.TB, ref string) string {
	t.Helper()
	p := s.hilDone(t, time.Minute, nil, "registry", "digest", "--insecure", ref)
	out := strings.TrimSpace(p.Out())
	if p.Code() == 1 && out == "(none)" {
		return ""
	}
	if p.Code() != 0 || !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("hil registry digest %s: exit %d: %s", ref, p.Code(), out)
	}
	return out
}

// passedAttestations counts the test-result attestations of ref that say
// PASSED.
func (s *suite) passedAttestations(t testing.TB, ref string) int {
	t.Helper()
	p := s.hilDone(t, time.Minute, nil, "attest", "show", "--insecure", "--json", ref)
	out := p.Out()
	if i := strings.IndexByte(out, '['); i >= 0 {
		out = out[i:]
	}
	var entries []struct {
		Statement struct {
			Predicate struct {
				Result string `json:"result"`
			} `json:"predicate"`
		} `json:"statement"`
	}
	// stdout's JSON array, then stderr's verdict line.
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&entries); err != nil {
		if strings.Contains(p.Out(), "no hil attestation is attached") {
			return 0
		}
		t.Fatalf("hil attest show --json %s: exit %d: %v\n%s", ref, p.Code(), err, p.Out())
	}
	n := 0
	for _, e := range entries {
		if e.Statement.Predicate.Result == "PASSED" {
			n++
		}
	}
	return n
}

// tally counts, per kind of fault, what was injected and what went wrong.
type tally struct {
	mu   sync.Mutex
	rows []*row
}

type row struct {
	kind                                           string
	injected, wrongPass, wrongFail, wrongPromotion int
	leftovers                                      int
	took                                           time.Duration
}

// add adds counts to the row of kind (made on first use, in order).
func (tl *tally) add(kind string, r row) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var cur *row
	for _, x := range tl.rows {
		if x.kind == kind {
			cur = x
		}
	}
	if cur == nil {
		cur = &row{kind: kind}
		tl.rows = append(tl.rows, cur)
	}
	cur.injected += r.injected
	cur.wrongPass += r.wrongPass
	cur.wrongFail += r.wrongFail
	cur.wrongPromotion += r.wrongPromotion
	cur.leftovers += r.leftovers
	cur.took += r.took
}

// injected is the count of faults injected of kind so far.
func (tl *tally) injected(kind string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, x := range tl.rows {
		if x.kind == kind {
			return x.injected
		}
	}
	return 0
}

// printTable prints the table on stdout (go test -v, or a failure) and
// writes it to $HIL_FAULT_TABLE (make test prints that file).
func (s *suite) printTable(total time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "hil fault-injection suite (internal/faultinject): seed %d (HIL_FAULT_SEED overrides), %s\n", s.seed, total.Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault kind\tinjected\twrong passes\twrong fails\twrong promotions\tleftovers\tseconds\t")
	var sum row
	for _, r := range s.tally.rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.1f\t\n", r.kind, r.injected, r.wrongPass, r.wrongFail, r.wrongPromotion, r.leftovers, r.took.Seconds())
		sum.injected += r.injected
		sum.wrongPass += r.wrongPass
		sum.wrongFail += r.wrongFail
		sum.wrongPromotion += r.wrongPromotion
		sum.leftovers += r.leftovers
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\t%d\t%.1f\t\n", sum.injected, sum.wrongPass, sum.wrongFail, sum.wrongPromotion, sum.leftovers, total.Seconds())
	tw.Flush()
	s.landMu.Lock()
	var where []string
	for k, n := range s.landing {
		where = append(where, fmt.Sprintf("%s %d", k, n))
	}
	s.landMu.Unlock()
	sort.Strings(where)
	if len(where) > 0 {
		fmt.Fprintf(&b, "emulator kills by where they landed (from the verdicts): %s\n", strings.Join(where, ", "))
	}
	if s.t.Failed() {
		b.WriteString("FAILED: see the test output above\n")
	}
	fmt.Print(b.String())
	if path := os.Getenv("HIL_FAULT_TABLE"); path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			os.WriteFile(path, []byte(b.String()), 0o644)
		}
	}
}

// parallel runs jobs as subtests of t, at most n at once, and returns
// when all have ended.
func parallel(t *testing.T, n int, names []string, job func(t *testing.T, i int)) {
	sem := make(chan struct{}, n)
	t.Run("jobs", func(t *testing.T) {
		for i, name := range names {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
				job(t, i)
			})
		}
	})
}

// netns makes a network namespace for the test and removes it after.
func netns(t testing.TB, name string) string {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
