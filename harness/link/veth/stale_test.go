//go:build linux

package veth_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hilproject/hil/harness/link/veth"
	"github.com/hilproject/hil/internal/owner"
)

// TestHelperHoldPair is not a test: run by TestKilledOwnersPairIsRemoved
// in a child process, it makes a pair (and a namespace), prints their
// names and waits to be killed.
func TestHelperHoldPair(t *testing.T) {
	if os.Getenv("HIL_VETH_HELPER") != "1" {
		t.Skip("helper process")
	}
	l, err := veth.New(context.Background())
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("made", l.HostIface(), l.NetNSName())
	time.Sleep(time.Minute)
}

// A process that made a pair and a namespace is SIGKILLed: they outlive
// it; RemoveStale deletes them and their records. The test's own live
// pair is left alone.
func TestKilledOwnersPairIsRemoved(t *testing.T) {
	requireRoot(t)
	mine, err := veth.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldPair$", "-test.v")
	cmd.Env = append(os.Environ(), "HIL_VETH_HELPER=1")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var host, ns string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "made" {
			host, ns = f[1], f[2]
			break
		}
	}
	if host == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the helper made no pair")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := netlink.LinkByName(host); err != nil {
		t.Fatalf("the killed helper's %s is already gone: %v", host, err)
	}
	if _, err := os.Stat("/run/netns/" + ns); err != nil {
		t.Fatalf("the killed helper's namespace %s is already gone: %v", ns, err)
	}

	removed, err := veth.RemoveStale()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"veth " + host, "netns " + ns} {
		if !slices.Contains(removed, want) {
			t.Errorf("removed %v; want %s among them", removed, want)
		}
	}
	if _, err := netlink.LinkByName(host); err == nil {
		t.Errorf("%s still exists", host)
	}
	if _, err := os.Stat("/run/netns/" + ns); err == nil {
		t.Errorf("namespace %s still exists", ns)
	}
	for _, c := range []string{"veth-" + host, "netns-" + ns} {
		if _, err := os.Stat(filepath.Join(owner.RunDir, c)); err == nil {
			t.Errorf("record %s still exists", c)
		}
	}
	// Ours is alive: untouched, and recorded until Close.
	if _, err := netlink.LinkByName(mine.HostIface()); err != nil {
		t.Errorf("the live pair %s was removed: %v", mine.HostIface(), err)
	}
	if _, err := os.Stat(filepath.Join(owner.RunDir, "veth-"+mine.HostIface())); err != nil {
		t.Errorf("no owner record for the live pair: %v", err)
	}
	mine.Close()
	assertGone(t, mine)
	for _, c := range []string{"veth-" + mine.HostIface(), "netns-" + mine.NetNSName()} {
		if _, err := os.Stat(filepath.Join(owner.RunDir, c)); err == nil {
			t.Errorf("record %s left after Close", c)
		}
	}
}
