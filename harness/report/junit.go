package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name       string          `xml:"name,attr"`
	Classname  string          `xml:"classname,attr"`
	File       string          `xml:"file,attr,omitempty"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Failure    *junitResult    `xml:"failure,omitempty"`
	Error      *junitResult    `xml:"error,omitempty"`
	Skipped    *junitResult    `xml:"skipped,omitempty"`
	SystemOut  string          `xml:"system-out,omitempty"`
	SystemErr  string          `xml:"system-err,omitempty"`
}

type junitResult struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// Properties lists what a test case was run against: image digest,
// platform, target, board, the device's versions (QEMU, kernel, ...) and the
// sha256 of every fixture replayed. JUnit and HTML show the same list.
func Properties(res scenario.Result) [][2]string {
	ps := [][2]string{
		{"scenario", res.Scenario},
		{"scenario.file", res.File},
		{"target", res.Target},
		{"platform", res.Platform},
		{"verdict", string(res.Verdict)},
		{"image.ref", res.ImageRef},
		{"image.digest", res.ImageDigest},
		{"image.manifest_digest", res.ManifestDigest},
		{"attempts", fmt.Sprint(res.Attempts)},
	}
	if res.Board != "" {
		ps = append(ps, [2]string{"board", res.Board})
	}
	if res.Exit != nil {
		ps = append(ps, [2]string{"exit", res.Exit.String()})
	}
	if res.StaticCheckID != "" {
		ps = append(ps, [2]string{"static_check", res.StaticCheckID})
	}
	if res.ConsoleLog != "" {
		ps = append(ps, [2]string{"console_log", res.ConsoleLog})
	}
	if len(res.Tags) > 0 {
		ps = append(ps, [2]string{"tags", strings.Join(res.Tags, ",")})
	}
	var keys []string
	for k := range res.Device {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ps = append(ps, [2]string{"device." + k, res.Device.String(k)})
	}
	keys = keys[:0]
	for k := range res.Fixtures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ps = append(ps, [2]string{"fixture." + k + ".sha256", res.Fixtures[k]})
	}
	return ps
}

// JUnitTimestamp is the layout of a testsuite's timestamp: an ISO 8601
// date and time without a zone (UTC), as the JUnit schema Jenkins holds
// reports to wants it (its xs:dateTime pattern has no "Z").
const JUnitTimestamp = "2006-01-02T15:04:05"

// WriteJUnit writes JUnit XML as Jenkins and GitLab read it: one
// testsuite per target × board × platform (hil.system.pi3b+.linux/arm64;
// no board part for a case without one), one testcase per scenario on
// it. fail → <failure>, infra-error → <error>, unsupported → <skipped>
// (with the reason); the app's stdout and the console go to system-out
// (console lines marked "[console]"), the app's stderr and the steps'
// warnings to system-err.
func (r *Report) WriteJUnit(w io.Writer) error {
	top := junitSuites{Name: r.Title, Time: secs(r.Duration)}
	bySuite := map[string]*junitSuite{}
	var order []string
	suiteKey := func(res scenario.Result) string { return res.Target + " " + res.Board + " " + res.Platform }
	for _, res := range r.Results {
		key := suiteKey(res)
		s, ok := bySuite[key]
		if !ok {
			name := "hil." + res.Target
			props := []junitProperty{{"image.ref", res.ImageRef}, {"image.digest", res.ImageDigest}, {"target", res.Target}}
			if res.Board != "" {
				name += "." + res.Board
				props = append(props, junitProperty{"board", res.Board})
			}
			name += "." + res.Platform
			s = &junitSuite{Name: name, Properties: append(props, junitProperty{"platform", res.Platform})}
			if !res.Start.IsZero() {
				s.Timestamp = res.Start.UTC().Format(JUnitTimestamp)
			}
			bySuite[key] = s
			order = append(order, key)
		}
		class := "hil." + res.Target
		if res.Board != "" {
			class += "." + strings.ReplaceAll(res.Board, "/", "_")
		}
		c := junitCase{
			Name:      res.Scenario,
			Classname: class + "." + strings.ReplaceAll(res.Platform, "/", "_"),
			File:      res.File,
			Time:      secs(res.Duration),
		}
		for _, p := range Properties(res) {
			c.Properties = append(c.Properties, junitProperty{p[0], p[1]})
		}
		msg := firstLine(res.Reason)
		switch res.Verdict {
		case scenario.Fail:
			c.Failure = &junitResult{Message: msg, Type: "fail", Text: caseDetail(res)}
			s.Failures++
		case scenario.InfraError:
			c.Error = &junitResult{Message: msg, Type: "infra-error", Text: caseDetail(res)}
			s.Errors++
		case scenario.Unsupported:
			c.Skipped = &junitResult{Message: "unsupported: " + msg, Text: caseDetail(res)}
			s.Skipped++
		}
		var out, errs strings.Builder
		for _, l := range res.Output {
			switch l.Stream {
			case target.Stderr:
				errs.WriteString(l.Text + "\n")
			case target.Console:
				out.WriteString("[console] " + l.Text + "\n")
			default:
				out.WriteString(l.Text + "\n")
			}
		}
		// A step's warning (frames sent that the device did not count as
		// received): a passing case's only body.
		for _, st := range res.Steps {
			for _, w := range st.Warnings {
				fmt.Fprintf(&errs, "hil: warning: step %d (%s): %s\n", st.Index+1, st.Desc, w)
			}
		}
		c.SystemOut, c.SystemErr = out.String(), errs.String()
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	for _, k := range order {
		s := bySuite[k]
		var d time.Duration
		for _, res := range r.Results {
			if suiteKey(res) == k {
				d += res.Duration
			}
		}
		s.Time = secs(d)
		top.Tests += s.Tests
		top.Failures += s.Failures
		top.Errors += s.Errors
		top.Skipped += s.Skipped
		top.Suites = append(top.Suites, *s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(top); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// caseDetail is the reason and the step list, for a failure's body.
func caseDetail(res scenario.Result) string {
	var b strings.Builder
	b.WriteString(res.Reason)
	b.WriteString("\n\nsteps:\n")
	for _, st := range res.Steps {
		fmt.Fprintf(&b, "  %-11s %8s  %s", st.Verdict, st.Duration.Round(time.Millisecond), st.Desc)
		if st.Verdict != scenario.Pass && st.Message != "" {
			fmt.Fprintf(&b, "\n              %s", firstLine(st.Message))
		}
		b.WriteString("\n")
	}
	for _, r := range res.Retried {
		b.WriteString("retried: " + r + "\n")
	}
	return b.String()
}
