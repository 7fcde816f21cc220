package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
)

// WriteHTML writes one self-contained page (inline CSS, no scripts, no
// external assets): the verdict table, then per case the step timeline,
// replay stats, properties, and the app output and console log.
func (r *Report) WriteHTML(w io.Writer) error {
	return htmlTmpl().Execute(w, r)
}

// htmlTmpl is parsed on first use, not in the package's init: every hil
// process links this package, few write HTML.
var htmlTmpl = sync.OnceValue(func() *template.Template { return parseHTMLTemplate() })

func parseHTMLTemplate() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{
		"dur": func(d time.Duration) string {
			switch {
			case d >= time.Second:
				return d.Round(10 * time.Millisecond).String()
			case d >= time.Millisecond:
				return d.Round(time.Millisecond).String()
			}
			return d.Round(time.Microsecond).String()
		},
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"offset": func(res scenario.Result, st scenario.StepResult) string {
			return pct(st.Start.Sub(res.Start), res.Duration)
		},
		"width": func(res scenario.Result, st scenario.StepResult) string {
			p := st.Duration.Seconds() / math.Max(res.Duration.Seconds(), 1e-9) * 100
			return fmt.Sprintf("%.2f%%", math.Max(0.4, math.Min(100, p)))
		},
		"props":   Properties,
		"console": func(l target.Line) bool { return l.Stream == target.Console },
		"ts": func(res scenario.Result, l target.Line) string {
			if l.Time.IsZero() || res.Start.IsZero() {
				return ""
			}
			return fmt.Sprintf("%8.3f", l.Time.Sub(res.Start).Seconds())
		},
		"caseid": func(i int) string { return fmt.Sprintf("case-%d", i) },
		"inc":    func(i int) int { return i + 1 },
		"base": func(ref string) string {
			if i := strings.LastIndexAny(ref, "/:"); i >= 0 && i+1 < len(ref) {
				return ref[i+1:]
			}
			return ref
		},
		"short": func(d string) string {
			if len(d) > 19 {
				return d[:19]
			}
			return d
		},
		"pps":     func(f float64) string { return fmt.Sprintf("%.0f", f) },
		"anchor":  anchor,
		"first":   firstLine,
		"lower":   strings.ToLower,
		"dashed":  func(s string) string { return strings.ReplaceAll(strings.ToLower(s), " ", "-") },
		"nfails":  func(r *Report) int { return r.Summary.Fail + r.Summary.InfraError },
		"check":   func(r *Report, id string) *scenario.StaticCheck { return r.StaticCheck(id) },
		"notpass": func(v scenario.Verdict) bool { return v != scenario.Pass },
		"hasReplay": func(res scenario.Result) bool {
			for _, s := range res.Steps {
				if s.Replay != nil {
					return true
				}
			}
			return false
		},
	}).Parse(htmlSrc))
}

// anchor is an HTML id for a static check's ID ("static-linux-arm-v7").
func anchor(id string) string {
	return "static-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(id))
}

func pct(d, total time.Duration) string {
	p := d.Seconds() / math.Max(total.Seconds(), 1e-9) * 100
	return fmt.Sprintf("%.2f%%", math.Max(0, math.Min(99.6, p)))
}

const htmlSrc = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{with .Decision}}{{.Verdict}} · {{end}}{{.Title}}</title>
<style>
:root { --pass:#1a7f37; --fail:#cf222e; --unsupported:#9a6700; --infra:#8250df; --muted:#57606a; --line:#d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 10px 24px; }
header h1 { margin: 0 0 2px; font-size: 18px; }
header .meta { color: #c9d1d9; font-size: 12px; word-break: break-all; }
main { padding: 12px 24px; max-width: 1400px; }
.decision { border-radius: 6px; padding: 10px 16px; margin: 0 0 12px; color: #fff; }
.decision h2 { margin: 0 0 6px; font-size: 26px; letter-spacing: .03em; color: #fff; }
.decision table { background: transparent; border: 0; margin: 0; width: auto; }
.decision td { border: 0; padding: 1px 12px 1px 0; color: #fff; font-size: 13px; }
.decision td.k { opacity: .85; }
.decision .digest { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.decision .reason { white-space: pre-wrap; max-height: 4.6em; overflow: auto; }
.d-promoted { background: var(--pass); } .d-refused { background: var(--fail); } .d-error { background: var(--infra); } .d-would-promote { background: #0969da; }
.totals span { display: inline-block; margin-right: 12px; padding: 3px 10px; border-radius: 12px; color: #fff; font-weight: 600; }
.totals span.none { background: #d0d7de; color: #57606a; } /* a zero count is not an alarm */
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); margin: 6px 0 14px; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eaeef2; font-weight: 600; }
td.reason div { white-space: pre-wrap; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; max-width: 720px; max-height: 7.5em; overflow: auto; }
.v { display: inline-block; min-width: 86px; text-align: center; padding: 2px 8px; border-radius: 10px; color: #fff; font-weight: 600; font-size: 12px; }
.v-pass { background: var(--pass); } .v-fail { background: var(--fail); } .v-unsupported { background: var(--unsupported); } .v-infra-error { background: var(--infra); }
details.case, section.check { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 10px 0; }
details.case > summary { cursor: pointer; padding: 8px 12px; font-weight: 600; }
details.case .body, section.check { padding: 0 12px 12px; }
section.check h3 { margin-top: 10px; }
section.check ul { margin: 4px 0; padding-left: 20px; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
section.check li { margin: 2px 0; white-space: pre-wrap; }
.timeline { position: relative; background: #f6f8fa; border: 1px solid var(--line); margin: 4px 0; height: 22px; }
.bar { position: absolute; top: 3px; height: 16px; border-radius: 3px; }
.bar.pass { background: #4ac26b; } .bar.fail { background: var(--fail); } .bar.unsupported { background: #d4a72c; } .bar.infra-error { background: var(--infra); }
.steps td.label { width: 34%; }
pre.log { background: #0d1117; color: #c9d1d9; padding: 10px; overflow: auto; max-height: 420px; font-size: 12px; margin: 4px 0; }
pre.log .console { color: #7d8590; } pre.log .stderr { color: #ff7b72; } pre.log .t { color: #6e7681; }
.near { background: #fff8c5; border: 1px solid #d4a72c; padding: 4px 8px; margin: 4px 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; white-space: pre-wrap; }
h2 { font-size: 16px; margin: 14px 0 4px; } h3 { font-size: 13px; margin: 12px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.small { font-size: 12px; color: var(--muted); }
</style>
</head>
<body>
<header>
<h1>{{.Title}}</h1>
<div class="meta">{{if .MultiImage}}several images: see the table{{else}}image {{.ImageRef}}{{if .ImageDigest}} @ {{.ImageDigest}}{{end}}{{end}}</div>
<div class="meta">{{when .Start}} · {{dur .Duration}}{{if .HilVersion}} · hil {{.HilVersion}}{{end}}{{range $k, $v := .Meta}} · {{$k}}: {{$v}}{{end}}{{if .Shard}} · shard {{.Shard}} of {{.Planned}} planned cases{{end}}{{if .MergedFrom}} · merged from {{len .MergedFrom}} shards{{end}}</div>
</header>
<main>
{{with .Decision}}<section id="decision" class="decision d-{{dashed .Verdict}}" data-verdict="{{.Verdict}}">
<h2>{{.Verdict}}</h2>
<table><tbody>
<tr><td class="k">tag</td><td class="digest">{{.Tag}}</td></tr>
<tr><td class="k">old digest</td><td class="digest">{{if .OldDigest}}{{.OldDigest}}{{else}}(none){{end}}</td></tr>
<tr><td class="k">new digest</td><td class="digest">{{if .NewDigest}}{{.NewDigest}}{{else}}(none){{end}}</td></tr>
<tr><td class="k">tested</td><td class="digest">{{if .Tested}}{{.Tested}}{{else}}{{.Candidate}}{{end}}</td></tr>
<tr><td class="k">attestation</td><td class="digest">{{if .Attestation}}{{.Attestation}}{{else}}(none attached){{end}}</td></tr>
<tr><td class="k">reason</td><td><div class="reason">{{.Reason}}</div></td></tr>
</tbody></table>
</section>
{{end}}<div class="totals" id="totals">
<span class="{{if .Summary.Fail}}v-fail{{else}}none{{end}}">{{.Summary.Fail}} fail</span><span class="{{if .Summary.InfraError}}v-infra-error{{else}}none{{end}}">{{.Summary.InfraError}} infra-error</span><span class="{{if .Summary.Unsupported}}v-unsupported{{else}}none{{end}}">{{.Summary.Unsupported}} unsupported</span><span class="{{if .Summary.Pass}}v-pass{{else}}none{{end}}">{{.Summary.Pass}} pass</span>
<span style="background:#57606a">{{.Summary.Total}} cases</span>
</div>
<h2>Verdicts{{if nfails .}} (failures first){{end}}</h2>
<table id="verdicts">
<thead><tr><th>Scenario</th>{{if .MultiImage}}<th>Image</th>{{end}}<th>Target</th>{{if .HasBoards}}<th>Board</th>{{end}}<th>Platform</th><th>Verdict</th><th>Time</th><th>Reason</th></tr></thead>
<tbody>
{{range $i, $r := .Results}}<tr class="verdict-row" id="row-{{$i}}" data-verdict="{{$r.Verdict}}">
<td><a href="#{{caseid $i}}">{{$r.Scenario}}</a></td>{{if $.MultiImage}}<td class="small" title="{{$r.ImageDigest}}">{{base $r.ImageRef}}<br>{{short $r.ImageDigest}}</td>{{end}}<td>{{$r.Target}}</td>{{if $.HasBoards}}<td class="board">{{$r.Board}}</td>{{end}}<td>{{$r.Platform}}</td>
<td><span class="v v-{{$r.Verdict}}">{{$r.Verdict}}</span></td><td>{{dur $r.Duration}}</td><td class="reason"><div>{{$r.Reason}}</div></td>
</tr>
{{end}}</tbody>
</table>
{{if .StaticChecks}}<h2>Static startup checks</h2>
{{range .StaticChecks}}<section class="check" id="{{anchor .ID}}" data-ok="{{.OK}}">
<h3>{{.ID}}{{if $.MultiImage}} · {{short .ImageDigest}}{{end}}: {{if .OK}}the program can start{{else}}{{len .Problems}} problem(s){{end}}</h3>
{{if .Problems}}<ul class="problems">{{range .Problems}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{if .Summary}}<details><summary class="small">the startup chain (loader, libraries, where each was found)</summary><pre class="log">{{.Summary}}</pre></details>{{end}}
</section>
{{end}}{{end}}
{{range $i, $r := .Results}}
<details class="case" id="{{caseid $i}}"{{if notpass $r.Verdict}} open{{end}}>
<summary><span class="v v-{{$r.Verdict}}">{{$r.Verdict}}</span> {{$r.Scenario}}{{if $.MultiImage}} · {{base $r.ImageRef}}{{end}} · {{$r.Target}}{{if $r.Board}} · board {{$r.Board}}{{end}} · {{$r.Platform}} · {{dur $r.Duration}}{{if gt $r.Attempts 1}} · {{$r.Attempts}} attempts{{end}}</summary>
<div class="body">
{{if $r.Description}}<p>{{$r.Description}}</p>{{end}}
<p class="small">exit: <span class="exit">{{if $r.Exit}}{{$r.Exit}}{{else}}not observed (the app did not start){{end}}</span>{{with $r.StaticCheckID}}{{with check $ .}} · static startup check: <a href="#{{anchor .ID}}">{{.ID}}</a> ({{if .OK}}ok{{else}}{{len .Problems}} problem(s){{end}}){{end}}{{end}}{{if $r.ConsoleLog}} · <a class="console-log" href="{{$r.ConsoleLog}}">guest console log</a>{{end}}</p>
<h3>Timeline</h3>
<table class="steps">
<thead><tr><th>Step</th><th>Verdict</th><th>Time</th><th>When</th></tr></thead>
<tbody>
{{range $r.Steps}}<tr>
<td class="label">{{if ge .Index 0}}{{inc .Index}}. {{end}}{{.Desc}}{{if .Pos}} <span class="small">{{.Pos}}</span>{{end}}{{if .Message}}<div class="small" style="white-space:pre-wrap">{{.Message}}</div>{{end}}{{if .NearMisses}}<div class="near"><b>nearly matched:</b>{{range .NearMisses}}
{{.}}{{end}}</div>{{end}}</td>
<td><span class="v v-{{.Verdict}}">{{.Verdict}}</span></td><td>{{dur .Duration}}</td>
<td style="width:40%"><div class="timeline"><div class="bar {{.Verdict}}" style="left:{{offset $r .}};width:{{width $r .}}"></div></div></td>
</tr>
{{end}}</tbody>
</table>
{{if hasReplay $r}}<h3>Replay</h3>
<table class="replay">
<thead><tr><th>Fixture</th><th>Schedule</th><th>Frames</th><th>Bytes</th><th>Skipped</th><th>Elapsed</th><th>Rate (pps)</th><th>Gap error p50 / p99 / max</th><th>sha256</th></tr></thead>
<tbody>
{{range $r.Steps}}{{with .Replay}}<tr><td>{{.Fixture}}</td><td>{{.Schedule}}</td><td>{{.FramesSent}}</td><td>{{.BytesSent}}</td><td>{{.Skipped}}</td><td>{{dur .Elapsed}}</td><td>{{pps .PPS}}</td><td>{{dur .GapErrorP50}} / {{dur .GapErrorP99}} / {{dur .GapErrorMax}}</td><td class="small">{{.SHA256}}</td></tr>
{{end}}{{end}}</tbody>
</table>{{end}}
<h3>Properties</h3>
<table class="props"><tbody>
{{range props $r}}<tr><td style="width:260px">{{index . 0}}</td><td class="small">{{index . 1}}</td></tr>
{{end}}</tbody></table>
{{if $r.Retried}}<h3>Retried attempts</h3><pre class="log">{{range $r.Retried}}{{.}}
{{end}}</pre>{{end}}
<h3>Output and console{{if $r.OutputDropped}} ({{$r.OutputDropped}} lines not kept){{end}}</h3>
<pre class="log">{{range $r.Output}}<span class="t">{{ts $r .}}</span> <span class="{{.Stream}}">{{.Text}}</span>
{{else}}(no output){{end}}</pre>
</div>
</details>
{{end}}
</main>
</body>
</html>
`
