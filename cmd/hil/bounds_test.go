package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A scenario whose fixture is not a usable capture is refused before
// anything is opened or booted, naming the reference and the record.
func TestRunRefusesBadFixtureBeforeBoot(t *testing.T) {
	dir := t.TempDir()
	pcap := filepath.Join(dir, "cut.pcap")
	// A pcap header and one record header that promises 60 bytes it lacks.
	hdr := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}
	rec := []byte{1, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 60, 0, 0, 0, 1, 2, 3}
	if err := os.WriteFile(pcap, append(hdr, rec...), 0o644); err != nil {
		t.Fatal(err)
	}
	f := writeScenario(t, dir, "s.yaml", "name: s\nsteps:\n  - wait: 1s\n  - replay: {fixture: cut.pcap, schedule: x2}\n")
	out, errText, code := runHil(t, "run", "--image", "oci:/nonexistent", "--progress", "plain", f)
	want := f + ":4:23: steps[1].replay.fixture: fixture \"cut.pcap\" cannot be replayed: " + pcap + ": record 1 (byte offset 24): truncated record: header says 60 bytes, file ends after 3"
	if code != 2 || errText != want || strings.Contains(out, "=== RUN") {
		t.Errorf("exit %d\n got %s\nwant %s\nout: %s", code, errText, want, out)
	}
}

// The report dir is checked before the image is opened or anything boots.
func TestReportDirCheckedBeforeAnything(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sc := writeScenario(t, dir, "s.yaml", "name: s\nsteps: [{wait: 1s}]\n")
	out, errText, code := runHil(t, "run", "--image", "oci:/nonexistent", "--report", filepath.Join(file, "report"), sc)
	if code != 2 || !strings.Contains(errText, "--report "+file+"/report: cannot create the report directory") || strings.Contains(out, "hil run:") {
		t.Errorf("run: exit %d: %s\n%s", code, errText, out)
	}
	_, errText, code = runHil(t, "gate", "--image", "127.0.0.1:1/nothing:candidate", "--promote", "latest", "--scenarios", dir, "--report", filepath.Join(file, "report"))
	if code != 2 || !strings.Contains(errText, "--report "+file+"/report: cannot create the report directory") {
		t.Errorf("gate: exit %d: %s", code, errText)
	}
}

// hil replay reads --speed with the scenarios' parser and bounds the
// replay by --timeout before it opens anything.
func TestReplayRefusesUnboundedSpeeds(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--speed", "1e-9pps"}, `--speed: schedule "1e-9pps": expected original, top (or topspeed), xN (x2, x0.5) or Npps (1000pps), with N a plain decimal number`},
		{[]string{"--speed", "0.000000001pps"}, "the rate must be between 0.001pps and 100000000pps"},
		{[]string{"--speed", "xNaN"}, `schedule "xNaN"`},
		{[]string{"--speed", "xInf"}, `schedule "xInf"`},
		{[]string{"--speed", "x1e308"}, `schedule "x1e308"`},
		{[]string{"--speed", "0.001pps"}, "replaying dns: 12 frames spanning 1.155s, 1 loop(s) at 0.001pps take at least 3h3m20s: more than the 1h0m0s allowed (--timeout)"},
		{[]string{"--loop", "1000000000"}, "1000000000 loops: expected 1 to 1000000"},
		{[]string{"--loop", "5000"}, "5000 loop(s) at original take at least 1h44m"},
		{[]string{"--timeout", "0s"}, "--timeout 0s: expected a positive duration"},
	} {
		_, errText, code := runHil(t, append([]string{"replay", "dns", "--iface", "lo"}, c.args...)...)
		if code != 2 || !strings.Contains(errText, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, errText, c.want)
		}
	}
	if _, errText, code := runHil(t, "replay", "dns", "--iface", "lo", "--loop", "5000", "--timeout", "2h", "--speed", "topspeed", "--oversize", "nope"); code != 2 || !strings.Contains(errText, "--oversize") {
		t.Errorf("topspeed with a bound that fits: exit %d %q (want only the --oversize refusal)", code, errText)
	}
}

// A 3-million-key env is refused by the size limit straight away (it used
// to spin in the env merge, ignoring SIGTERM). The time is for the record.
func TestHugeScenarioRefusedAtOnce(t *testing.T) {
	f := filepath.Join(t.TempDir(), "huge.yaml")
	fh, err := os.Create(f)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(fh)
	w.WriteString("name: huge\napp:\n  env:\n")
	for i := range 3_000_000 {
		fmt.Fprintf(w, "    K%07d: v\n", i)
	}
	w.WriteString("steps: [{wait: 1s}]\n")
	w.Flush()
	fh.Close()
	start := time.Now()
	_, errText, code := runHil(t, "run", "--image", "oci:/nonexistent", f)
	took := time.Since(start)
	if code != 2 || !strings.Contains(errText, "huge.yaml:1:1: the file is 45.8 MiB: a scenario may be at most 1.0 MiB (scenario.Limits.Bytes)") {
		t.Errorf("exit %d: %s", code, errText)
	}
	t.Logf("3,000,000-key env refused in %v", took)
}
