package owner

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// deadOwner is a process that ran and ended: its pid is free again.
func deadOwner(t *testing.T) Owner {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	st, err := startTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	o := Owner{PID: cmd.Process.Pid, Start: st}
	if !o.Alive() {
		t.Fatal("a started process is not alive")
	}
	cmd.Wait()
	return o
}

func TestAlive(t *testing.T) {
	self := Self()
	if !self.Alive() || self.Start == 0 {
		t.Errorf("self %v not alive", self)
	}
	if o, err := Parse(self.String()); err != nil || o != self {
		t.Errorf("Parse(%q) = %v, %v", self.String(), o, err)
	}
	if dead := deadOwner(t); dead.Alive() {
		t.Errorf("%v is alive after it ended", dead)
	}
	// The same pid with another start time: a process that got a dead
	// owner's pid does not keep its leftovers.
	if (Owner{PID: self.PID, Start: self.Start + 1}).Alive() {
		t.Error("a reused pid counts as the owner")
	}
	for _, bad := range []string{"", "12", "x.1", "0.5", "-3.4", "1.x"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestSweepTemp(t *testing.T) {
	dir := t.TempDir()
	mine, err := MkdirTemp(dir, "hil-vm-")
	if err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(dir, "hil-vm-"+deadOwner(t).String()+"-0badc0de")
	legacyOld := filepath.Join(dir, "hil-vm-123456789")
	legacyNew := filepath.Join(dir, "hil-vm-987654321")
	legacyLive := filepath.Join(dir, "hil-vm-555555555")
	other := filepath.Join(dir, "something-else")
	for _, d := range []string{dead, legacyOld, legacyNew, legacyLive, other} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "console.log"), []byte("x"), 0o644)
	}
	ln, err := net.Listen("unix", filepath.Join(legacyLive, "qmp.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	old := time.Now().Add(-LegacyAge - time.Minute)
	for _, d := range []string{legacyOld, legacyLive, other} {
		os.Chtimes(d, old, old)
	}
	removed, err := SweepTemp(dir, "hil-vm-")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	want := []string{dead, legacyOld}
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %v; want %v", removed, want)
	}
	for _, d := range []string{mine, legacyNew, legacyLive, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
	for _, d := range want {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there", d)
		}
	}
}

func TestClaims(t *testing.T) {
	RunDir = t.TempDir()
	if err := Claim("veth", "hil0001"); err != nil {
		t.Fatal(err)
	}
	if err := Claim("veth", "hil0001"); err == nil {
		t.Error("a name claimed twice")
	}
	dead := deadOwner(t)
	if err := os.WriteFile(filepath.Join(RunDir, "veth-hil0002"), []byte(dead.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(RunDir, "netns-hil-0003"), []byte(dead.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var asked []string
	removed, err := SweepClaims("veth", func(name string) error { asked = append(asked, name); return nil })
	if err != nil || !slices.Equal(removed, []string{"hil0002"}) || !slices.Equal(asked, []string{"hil0002"}) {
		t.Errorf("removed %v (asked %v), %v; want only the dead owner's hil0002", removed, asked, err)
	}
	if _, err := os.Stat(filepath.Join(RunDir, "veth-hil0002")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the dead owner's claim is still there")
	}
	// A failed removal keeps the claim for the next sweep.
	removed, err = SweepClaims("netns", func(string) error { return errors.New("busy") })
	if err == nil || len(removed) != 0 {
		t.Errorf("removed %v, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(RunDir, "netns-hil-0003")); err != nil {
		t.Error("a claim went although its resource could not be removed")
	}
	if err := Release("veth", "hil0001"); err != nil {
		t.Fatal(err)
	}
	if err := Release("veth", "hil0001"); err != nil {
		t.Errorf("a second release: %v", err)
	}
}
