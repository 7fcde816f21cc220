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

func pct(d, total time.Duration) string {
	p := d.Seconds() / math.Max(total.Seconds(), 1e-9) * 100
	return fmt.Sprintf("%.2f%%", math.Max(0, math.Min(99.6, p)))
}

const htmlSrc = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
:root { --pass:#1a7f37; --fail:#cf222e; --unsupported:#9a6700; --infra:#8250df; --muted:#57606a; --line:#d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 16px 24px; }
header h1 { margin: 0 0 4px; font-size: 20px; }
header .meta { color: #c9d1d9; font-size: 12px; word-break: break-all; }
main { padding: 16px 24px; max-width: 1400px; }
.totals span { display: inline-block; margin-right: 12px; padding: 4px 10px; border-radius: 12px; color: #fff; font-weight: 600; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); margin: 8px 0 16px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eaeef2; font-weight: 600; }
td.reason { white-space: pre-wrap; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; max-width: 640px; }
.v { display: inline-block; min-width: 86px; text-align: center; padding: 2px 8px; border-radius: 10px; color: #fff; font-weight: 600; font-size: 12px; }
.v-pass { background: var(--pass); } .v-fail { background: var(--fail); } .v-unsupported { background: var(--unsupported); } .v-infra-error { background: var(--infra); }
details.case { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 10px 0; }
details.case > summary { cursor: pointer; padding: 8px 12px; font-weight: 600; }
details.case .body { padding: 0 12px 12px; }
.timeline { position: relative; background: #f6f8fa; border: 1px solid var(--line); margin: 4px 0; height: 22px; }
.bar { position: absolute; top: 3px; height: 16px; border-radius: 3px; }
.bar.pass { background: #4ac26b; } .bar.fail { background: var(--fail); } .bar.unsupported { background: #d4a72c; } .bar.infra-error { background: var(--infra); }
.steps td.label { width: 34%; }
pre.log { background: #0d1117; color: #c9d1d9; padding: 10px; overflow: auto; max-height: 420px; font-size: 12px; margin: 4px 0; }
pre.log .console { color: #7d8590; } pre.log .stderr { color: #ff7b72; } pre.log .t { color: #6e7681; }
h2 { font-size: 16px; margin: 20px 0 6px; } h3 { font-size: 13px; margin: 12px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
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
<div class="totals" id="totals">
<span class="v-pass">{{.Summary.Pass}} pass</span><span class="v-fail">{{.Summary.Fail}} fail</span><span class="v-unsupported">{{.Summary.Unsupported}} unsupported</span><span class="v-infra-error">{{.Summary.InfraError}} infra-error</span>
<span style="background:#57606a">{{.Summary.Total}} cases</span>
</div>
<h2>Verdicts</h2>
<table id="verdicts">
<thead><tr><th>Scenario</th>{{if .MultiImage}}<th>Image</th>{{end}}<th>Target</th>{{if .HasBoards}}<th>Board</th>{{end}}<th>Platform</th><th>Verdict</th><th>Time</th><th>Reason</th></tr></thead>
<tbody>
{{range $i, $r := .Results}}<tr class="verdict-row" data-verdict="{{$r.Verdict}}">
<td><a href="#{{caseid $i}}">{{$r.Scenario}}</a></td>{{if $.MultiImage}}<td class="small" title="{{$r.ImageDigest}}">{{base $r.ImageRef}}<br>{{short $r.ImageDigest}}</td>{{end}}<td>{{$r.Target}}</td>{{if $.HasBoards}}<td class="board">{{$r.Board}}</td>{{end}}<td>{{$r.Platform}}</td>
<td><span class="v v-{{$r.Verdict}}">{{$r.Verdict}}</span></td><td>{{dur $r.Duration}}</td><td class="reason">{{$r.Reason}}</td>
</tr>
{{end}}</tbody>
</table>
{{range $i, $r := .Results}}
<details class="case" id="{{caseid $i}}"{{if notpass $r.Verdict}} open{{end}}>
<summary><span class="v v-{{$r.Verdict}}">{{$r.Verdict}}</span> {{$r.Scenario}}{{if $.MultiImage}} · {{base $r.ImageRef}}{{end}} · {{$r.Target}}{{if $r.Board}} · board {{$r.Board}}{{end}} · {{$r.Platform}} · {{dur $r.Duration}}{{if gt $r.Attempts 1}} · {{$r.Attempts}} attempts{{end}}</summary>
<div class="body">
{{if $r.Description}}<p>{{$r.Description}}</p>{{end}}
<h3>Timeline</h3>
<table class="steps">
<thead><tr><th>Step</th><th>Verdict</th><th>Time</th><th>When</th></tr></thead>
<tbody>
{{range $r.Steps}}<tr>
<td class="label">{{if ge .Index 0}}{{inc .Index}}. {{end}}{{.Desc}}{{if .Pos}} <span class="small">{{.Pos}}</span>{{end}}{{if .Message}}<div class="small" style="white-space:pre-wrap">{{.Message}}</div>{{end}}</td>
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
{{if $r.StaticCheck}}<h3>Static startup check</h3><pre class="log">{{$r.StaticCheck}}</pre>{{end}}
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
