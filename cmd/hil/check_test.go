package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hilproject/hil/internal/testenv"
)

func TestCheckCommand(t *testing.T) {
	images := testenv.ImagesDir(t)

	out, errText, code := runHil(t, "check", "oci:"+filepath.Join(images, "pcapwatch"))
	if code != 0 {
		t.Fatalf("good image: exit %d (%s)\n%s", code, errText, out)
	}
	for _, s := range []string{"== linux/arm/v7", "== linux/amd64", "libpcap.so.0.8 =>", "OK: the program can start"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}

	out, errText, code = runHil(t, "check", filepath.Join(images, "no-libpcap"), "--platform", "linux/arm/v7", "--json")
	if code != 1 {
		t.Fatalf("no-libpcap: exit %d, want 1 (%s)\n%s", code, errText, out)
	}
	var res checkOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if res.OK || len(res.Results) != 1 || res.Results[0].Platform != "linux/arm/v7" {
		t.Fatalf("JSON result: %+v", res)
	}
	if ps := res.Results[0].Report.Problems; len(ps) != 1 || ps[0].Kind != "missing-library" || ps[0].Object != "libpcap.so.0.8" {
		t.Fatalf("problems: %+v", ps)
	}
	if !strings.Contains(errText, "cannot start on linux/arm/v7") {
		t.Errorf("error text %q", errText)
	}

	if _, errText, code = runHil(t, "check", "oci:"+filepath.Join(images, "pcapwatch"), "--platform", "linux/arm64"); code != 2 || !strings.Contains(errText, "linux/arm/v7") {
		t.Errorf("absent platform: exit %d, %q; want 2 naming the platforms present", code, errText)
	}
	if _, errText, code = runHil(t, "check", "oci:"+filepath.Join(t.TempDir(), "nope")); code != 2 {
		t.Errorf("bad reference: exit %d (%s), want 2", code, errText)
	}
}
