package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/internal/testenv"
)

// glanceProbe is appended to a copy of report.html (the report itself has
// no script): it measures, in the browser's own layout, where the decision
// and the first failure are, and leaves it in the DOM for --dump-dom.
const glanceProbe = `<script>
(function () {
  function box(el) { if (!el) return null; var r = el.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, text: el.innerText.slice(0, 2000)}; }
  var first = document.querySelector('tr.verdict-row[data-verdict="fail"], tr.verdict-row[data-verdict="infra-error"]');
  var g = {height: window.innerHeight, width: window.innerWidth, decision: box(document.getElementById('decision')),
           first_failure: box(first), first_failure_reason: first ? box(first.querySelector('td.reason')) : null};
  var pre = document.createElement('pre'); pre.id = 'glance'; pre.textContent = JSON.stringify(g);
  document.body.appendChild(pre);
})();
</script>`

type glanceBox struct {
	Top, Bottom float64
	Text        string
}

type glance struct {
	Height, Width      float64
	Decision           *glanceBox
	FirstFailure       *glanceBox `json:"first_failure"`
	FirstFailureReason *glanceBox `json:"first_failure_reason"`
}

// TestAtAGlanceInChromium renders a gate's report (promoted, refused) and
// a failed run's report in headless Chromium at 1280×800: the decision
// (verdict, tag, old and new digest, attestation) and the first failure
// with its reason are on the first screen, without scrolling. Screenshots
// are kept in $HIL_KEEP_SCREENSHOTS (a directory) when it is set.
func TestAtAGlanceInChromium(t *testing.T) {
	testenv.RequireCommand(t, "/usr/bin/chromium", "chromium")
	const oldD = "sha256:9f2c1a7e4b0d6c3a8e5f1b2d4c6a8e0f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9e1b"
	const newD = "sha256:4e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d"
	const att = "registry.example.com/pcapwatch@sha256:0c9e8d7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d"
	// Ten glibc problems: the reason a static check gives for an image
	// built against a newer libc, long enough to push a naive layout down.
	var problems []string
	for i := 0; i < 10; i++ {
		problems = append(problems, fmt.Sprintf("/usr/bin/pcapwatch needs GLIBC_2.%d (symbol sym%d) but /lib/arm-linux-gnueabihf/libc.so.6 provides up to GLIBC_2.31", 32+i%3, i))
	}
	refusedResults := sampleResults()
	for i := 0; i < 6; i++ {
		p := refusedResults[0]
		p.Scenario = fmt.Sprintf("passing-%d", i)
		refusedResults = append([]scenario.Result{p}, refusedResults...) // passes before the failure: sorting must move it up
	}
	refusedResults[len(refusedResults)-3].Reason = "the static startup check failed:\n" + strings.Join(problems, "\n")
	var passes []scenario.Result
	for i := 0; i < 9; i++ {
		p := sampleResults()[0]
		p.Scenario = fmt.Sprintf("scenario-%d", i)
		passes = append(passes, p)
	}
	cases := []struct {
		name     string
		results  []scenario.Result
		decision *Decision
		failure  string // text the first failure's row shows; "" when none
	}{
		{"gate-promoted", passes, &Decision{Verdict: "PROMOTED", Candidate: "registry.example.com/pcapwatch:candidate", Tested: "registry.example.com/pcapwatch@" + newD,
			Tag: "registry.example.com/pcapwatch:latest", OldDigest: oldD, NewDigest: newD, Attestation: att, Reason: "9 of 9 cases passed"}, ""},
		{"gate-refused", refusedResults, &Decision{Verdict: "REFUSED", Candidate: "registry.example.com/pcapwatch:candidate", Tested: "registry.example.com/pcapwatch@" + newD,
			Tag: "registry.example.com/pcapwatch:latest", OldDigest: oldD, NewDigest: oldD, Attestation: att,
			Reason: "2 of 10 cases did not pass: dns-names on system linux/arm/v7: expected count == 12, saw 11\n" + strings.Join(problems, "\n")}, "dns-names"},
		{"run-failed", sampleResults(), nil, "dns-names"},
	}
	keep := os.Getenv("HIL_KEEP_SCREENSHOTS")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var opts []Option
			if c.decision != nil {
				opts = append(opts, WithDecision(*c.decision), WithTitle("hil gate: "+c.decision.Candidate))
			}
			if _, err := New(c.results, opts...).WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			page := filepath.Join(dir, HTMLFile)
			html, err := os.ReadFile(page)
			if err != nil {
				t.Fatal(err)
			}
			// A zero count is grey, not an alarm: a promoted report shows
			// no red.
			if c.failure == "" && !bytes.Contains(html, []byte(`<span class="none">0 fail</span>`)) {
				t.Errorf("a report without failures shows its 0 fail in red")
			}
			probe := filepath.Join(dir, "probe.html")
			if err := os.WriteFile(probe, bytes.Replace(html, []byte("</body>"), []byte(glanceProbe+"</body>"), 1), 0o644); err != nil {
				t.Fatal(err)
			}
			dom := headlessChromium(t, "--virtual-time-budget=2000", "--dump-dom", "file://"+probe)
			m := regexp.MustCompile(`(?s)<pre id="glance">(.*?)</pre>`).FindSubmatch(dom)
			if m == nil {
				t.Fatalf("the probe did not run:\n%.1500s", dom)
			}
			var g glance
			if err := json.Unmarshal(bytes.ReplaceAll(m[1], []byte("&quot;"), []byte(`"`)), &g); err != nil {
				t.Fatalf("probe output %s: %v", m[1], err)
			}
			// Headless Chromium keeps room for a browser's own bars in a
			// 1280×800 window (the page gets 1280×657 here): what is on the
			// first screen is measured against that, as a user with a
			// 1280×800 screen would see it.
			if g.Width != 1280 || g.Height < 600 || g.Height > 800 {
				t.Fatalf("viewport %vx%v, want 1280 wide and at most 800 high", g.Width, g.Height)
			}
			onScreen := func(what string, b *glanceBox) {
				t.Helper()
				if b == nil {
					t.Errorf("%s: not in the page", what)
				} else if b.Top < 0 || b.Bottom > g.Height {
					t.Errorf("%s: at %.0f-%.0f px, below the first %v px (scrolling needed)", what, b.Top, b.Bottom, g.Height)
				}
			}
			if c.decision != nil {
				onScreen("the decision", g.Decision)
				if g.Decision != nil {
					for _, want := range []string{c.decision.Verdict, c.decision.Tag, c.decision.OldDigest, c.decision.NewDigest, c.decision.Attestation} {
						if !strings.Contains(g.Decision.Text, want) {
							t.Errorf("the decision does not show %q: %q", want, g.Decision.Text)
						}
					}
				}
			}
			if c.failure != "" {
				onScreen("the first failure", g.FirstFailure)
				onScreen("the first failure's reason", g.FirstFailureReason)
				if g.FirstFailure != nil && !strings.Contains(g.FirstFailure.Text, c.failure) {
					t.Errorf("the first failure row is %q, want %s's", g.FirstFailure.Text, c.failure)
				}
			}
			if keep != "" {
				headlessChromium(t, "--screenshot="+filepath.Join(keep, c.name+".png"), "file://"+page)
				if f, err := os.Open(filepath.Join(keep, c.name+".png")); err == nil {
					if _, err := png.Decode(f); err != nil {
						t.Errorf("screenshot: %v", err)
					}
					f.Close()
				}
			}
		})
	}
}

// headlessChromium runs Debian's Chromium headless in a 1280×800 window
// with a profile of its own and returns its stdout.
func headlessChromium(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	profile := t.TempDir()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + profile, "--window-size=1280,800"}
	cmd := exec.CommandContext(ctx, "/usr/bin/chromium", append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}
