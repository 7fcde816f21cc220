//go:build linux

package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/link/veth"
	"github.com/hilproject/hil/pcapfixtures"
	"github.com/hilproject/hil/schemas"
)

func TestFixturesCommand(t *testing.T) {
	out, errText, code := runHil(t, "fixtures")
	if code != 0 || !strings.Contains(out, "burst-100k") || !strings.Contains(out, "two-interfaces") ||
		!regexp.MustCompile(`(?m)^tcp-bulk +recorded +pcap +1811 `).MatchString(out) {
		t.Fatalf("hil fixtures: code %d, %s\n%s", code, errText, out)
	}
	out, _, code = runHil(t, "fixtures", "--json")
	validates(t, "hil fixtures --json", schemas.Def("fixtures"), out)
	var doc struct{ Fixtures []map[string]any }
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Fixtures) != len(pcapfixtures.Manifest()) || len(doc.Fixtures) < 14 {
		t.Fatalf("hil fixtures --json: code %d, %d entries", code, len(doc.Fixtures))
	}
	if _, errText, code := runHil(t, "fixtures", "nope"); code != 2 || !strings.Contains(errText, "expected one of") {
		t.Errorf("hil fixtures nope: code %d %q", code, errText)
	}
}

func TestReplayCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	// An app namespace made the way a user would, with ip netns.
	ns := "hilcli-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })

	// No eth0 there yet: hil makes a pair for the replay and removes it.
	out, errText, code := runHil(t, "replay", "dns", "--netns", ns, "--speed", "top", "--json")
	var st map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st["frames_sent"] != 12.0 {
		t.Fatalf("hil replay dns --netns: code %d %s\n%s", code, errText, out)
	}
	validates(t, "hil replay --json", schemas.Def("replay_stats"), out)
	if _, err := veth.PeerOf("/run/netns/"+ns, "eth0"); err == nil {
		t.Error("the temporary veth pair is still there after the replay")
	}

	// An app end that exists: hil writes on its peer; frames arrive.
	l, err := veth.New(context.Background(), veth.WithNetNSPath("/run/netns/"+ns))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rd, err := veth.OpenSocketIn(l.NetNSPath(), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	out, errText, code = runHil(t, "replay", "oversize", "--netns", ns, "--speed", "x10", "--loop", "2", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st["frames_sent"] != 26.0 || st["skipped"] != 16.0 {
		t.Fatalf("hil replay oversize --loop 2: code %d %s\n%s", code, errText, out)
	}
	n := 0
	rd.SetDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		if _, err := rd.ReadFrame(); err != nil {
			break
		}
		n++
	}
	if n != 26 {
		t.Errorf("app end received %d frames; expected 26", n)
	}

	for _, bad := range [][]string{
		{"replay", "dns"}, // neither --iface nor --netns
		{"replay", "dns", "--iface", "lo", "--speed", "warp"},
		{"replay", "no-such-fixture", "--iface", "lo"},
		{"replay", "oversize", "--netns", ns, "--oversize", "fail"},
	} {
		if _, errText, code := runHil(t, bad...); code == 0 {
			t.Errorf("hil %v succeeded; expected an error", bad)
		} else if errText == "" {
			t.Errorf("hil %v: no error text", bad)
		}
	}
}
