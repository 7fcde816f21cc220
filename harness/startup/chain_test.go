package startup

import (
	"slices"
	"strings"
	"testing"
)

// A library the program needs directly: the problem carries the two-link
// chain, and the message says nothing more than before.
func TestMissingLibraryChainDirect(t *testing.T) {
	r := check(t, mkroot(t, with(armhfBase(), map[string]file{"/app": elfFile("app-bar")})), Config{Entrypoint: []string{"/app"}})
	p := wantProblem(t, r, KindMissingLibrary, "app needs libbar.so.2")
	if !slices.Equal(p.Chain, []string{"/app", "libbar.so.2"}) {
		t.Errorf("chain: expected [/app libbar.so.2], found %q", p.Chain)
	}
	if strings.Contains(p.Message, "chain:") {
		t.Errorf("a direct need repeats itself as a chain: %q", p.Message)
	}
}

// chainOf walks the link map up from the library that needs the missing
// one, naming each object where ld.so found it.
func TestChainOfWalksTheLoaders(t *testing.T) {
	prog := &node{obj: &Object{Name: "/usr/local/bin/app", Path: "/usr/local/bin/app"}}
	pcap := &node{obj: &Object{Name: "libpcap.so.0.8", Path: "/lib/libpcap.so.0.8"}, loader: prog}
	dbus := &node{obj: &Object{Name: "libdbus-1.so.3", Path: "/usr/lib/x/libdbus-1.so.3"}, loader: pcap}
	got := chainOf(dbus, "libsystemd.so.0")
	want := []string{"/usr/local/bin/app", "/lib/libpcap.so.0.8", "/usr/lib/x/libdbus-1.so.3", "libsystemd.so.0"}
	if !slices.Equal(got, want) {
		t.Errorf("chain: expected %q, found %q", want, got)
	}
	if txt := chainText(got); txt != "; chain: /usr/local/bin/app → /lib/libpcap.so.0.8 → /usr/lib/x/libdbus-1.so.3 → libsystemd.so.0" {
		t.Errorf("chain text: %q", txt)
	}
}
