//go:build linux

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/link/veth"
	"github.com/hilproject/hil/internal/testenv"
	"github.com/hilproject/hil/schemas"
)

// hil record captures from an interface in a namespace until --count and
// prints its stats; a missing namespace or interface exits 2 with a clear
// message and leaves no file.
func TestRecordCommand(t *testing.T) {
	testenv.RequireRoot(t)
	l, err := veth.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "three.pcapng")

	done := make(chan hilRun, 1)
	go func() {
		done <- execHil(t, "record", "--netns", l.NetNSName(), "--iface", "eth0", "--out", out, "--count", "3", "--json")
	}()
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5})
	var r hilRun
	deadline := time.After(30 * time.Second)
send:
	for {
		select {
		case r = <-done:
			break send
		case <-deadline:
			t.Fatal("hil record did not end after 30 s of frames")
		case <-time.After(20 * time.Millisecond):
			l.WriteFrame(frame) // until the capture, started meanwhile, has 3
		}
	}
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	validates(t, "hil record --json", schemas.Def("record_stats"), r.stdout)
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("--json output %q: %v", r.stdout, err)
	}
	if st["frames"] != 3.0 || st["format"] != "pcapng" || st["ended"] != "frame limit" || st["link_type"] != "EN10MB" {
		t.Errorf("stats %v: expected 3 frames of pcapng EN10MB, ended by the frame limit", st)
	}
	if !strings.Contains(r.stderr, "recording "+l.NetNSName()+":eth0 into "+out) {
		t.Errorf("stderr %q: expected what is recorded where", r.stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() < 3*60 {
		t.Errorf("output %s: %v, %v", out, fi, err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--netns", "hil-nope", "--iface", "eth0", "--count", "1"}, "network namespace hil-nope: /run/netns/hil-nope does not exist"},
		{[]string{"--netns", l.NetNSName(), "--iface", "wlan7", "--count", "1"}, "no interface wlan7 in network namespace " + l.NetNSName() + ": expected one of eth0, lo"},
		{[]string{"--netns", l.NetNSName(), "--iface", "eth0"}, "needs a limit"},
	} {
		missing := filepath.Join(dir, "missing.pcap")
		_, stderr, code := runHilStderr(t, append([]string{"record", "--out", missing}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; expected 2 and %q", c.args, code, stderr, c.want)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Errorf("%v: left %s behind", c.args, missing)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%s holds %d entries, expected only the recording", dir, len(ents))
	}
}
