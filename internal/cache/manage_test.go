package cache

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain doubles as the other process of the concurrency tests: with
// HIL_CACHE_TEST_HOLD=PATH it holds PATH as a restoring boot does, says
// "held", and keeps it until its stdin closes.
func TestMain(m *testing.M) {
	if p := os.Getenv("HIL_CACHE_TEST_HOLD"); p != "" {
		release, err := Hold(p)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("held")
		bufio.NewReader(os.Stdin).ReadString('\n')
		release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdIn has another process hold path until the test ends.
func holdIn(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HIL_CACHE_TEST_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "held" {
		t.Fatalf("the holder process said %q", line)
	}
}

// snapshot writes a fake snapshot pair of size bytes, last used age ago.
func snapshot(t *testing.T, dir, key string, size int, age time.Duration) string {
	t.Helper()
	p := filepath.Join(dir, key+".vmstate")
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".json", []byte(`{"key":"`+key+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	when := time.Now().Add(-age)
	for _, f := range []string{p, p + ".json"} {
		if err := os.Chtimes(f, when, when); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// The cap evicts the least recently used snapshots until the rest fit,
// but never one another process holds (a restore in progress), and never
// the newest; a snapshot goes with its metadata.
func TestCapDirEvictsLRUButNotWhatIsHeld(t *testing.T) {
	dir := t.TempDir()
	const mb = 1 << 20
	oldest := snapshot(t, dir, "a", mb, 4*time.Hour)
	old := snapshot(t, dir, "b", mb, 3*time.Hour)
	recent := snapshot(t, dir, "c", mb, 2*time.Hour)
	newest := snapshot(t, dir, "d", mb, time.Minute)
	// A save in progress and a lock file are not entries.
	if err := os.WriteFile(filepath.Join(dir, "e.vmstate.123.tmp"), make([]byte, mb), 0o644); err != nil {
		t.Fatal(err)
	}
	holdIn(t, oldest)

	removed, err := CapDir(dir, 2*mb+mb/2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !exists(oldest) || !exists(oldest+".json") {
		t.Error("the snapshot another process holds was removed")
	}
	if exists(old) || exists(old+".json") || exists(recent) {
		t.Errorf("removed %v; expected b and c to go (a is held, d is newest)", removed)
	}
	if !exists(newest) || !exists(filepath.Join(dir, "e.vmstate.123.tmp")) {
		t.Error("the newest snapshot or a save in progress was removed")
	}
	// Even alone over the cap, the newest stays.
	if _, err := CapDir(dir, 1, 0); err != nil || !exists(newest) {
		t.Errorf("cap below one snapshot: %v; newest exists %v", err, exists(newest))
	}
	// The count limit applies too.
	dir2 := t.TempDir()
	for i := range 5 {
		snapshot(t, dir2, fmt.Sprint(i), 10, time.Duration(5-i)*time.Hour)
	}
	if _, err := CapDir(dir2, 1<<40, 3); err != nil {
		t.Fatal(err)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir2, "*.vmstate")); len(ents) != 3 || exists(filepath.Join(dir2, "0.vmstate")) {
		t.Errorf("count cap 3 left %v", ents)
	}
}

// Hold refuses a file that is gone, and a held file is not removed by
// Remove, Prune or rm; once released it is.
func TestHoldAndRemove(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "snapshots", "system")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := snapshot(t, dir, "k", 100, 48*time.Hour)
	if _, err := Hold(filepath.Join(dir, "missing.vmstate")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("holding a missing file: %v", err)
	}
	release, err := Hold(p)
	if err != nil {
		t.Fatal(err)
	}
	k, err := KindOf(root, "snapshots")
	if err != nil {
		t.Fatal(err)
	}
	removed, inUse, err := Prune(root, k, time.Now().Add(time.Hour))
	if err != nil || len(removed) != 0 || len(inUse) != 1 || !exists(p) {
		t.Fatalf("prune while held: removed %v, in use %v, %v", removed, inUse, err)
	}
	release()
	removed, _, err = Prune(root, k, time.Now().Add(-24*time.Hour))
	if err != nil || len(removed) != 1 || exists(p) || exists(p+".json") {
		t.Fatalf("prune of a 48h-old snapshot: removed %v, %v", removed, err)
	}
}

// A rootfs entry being flattened (its lock held) is not removed; one not
// in use goes whole, and no half-removed directory is ever visible under
// its name.
func TestRemoveDirectoryEntries(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "rootfs")
	for _, key := range []string{"sha256-aa", "sha256-bb"} {
		if err := os.MkdirAll(filepath.Join(base, key, "rootfs", "usr", "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, key, "report.json"), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, key+".lock"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Another process flattens into sha256-aa: it holds the lock.
	holdIn(t, filepath.Join(base, "sha256-aa.lock"))
	k, _ := KindOf(root, "rootfs")
	ents, err := List(root, k)
	if err != nil || len(ents) != 2 {
		t.Fatalf("listing: %v %v", ents, err)
	}
	removed, inUse, err := Prune(root, k, time.Now().Add(time.Hour))
	if err != nil || len(removed) != 1 || len(inUse) != 1 || inUse[0].Path != filepath.Join(base, "sha256-aa") {
		t.Fatalf("removed %v, in use %v, %v", removed, inUse, err)
	}
	if exists(filepath.Join(base, "sha256-bb")) || !exists(filepath.Join(base, "sha256-aa", "report.json")) {
		t.Error("wrong entry removed")
	}
	if !exists(filepath.Join(base, "sha256-bb.lock")) {
		t.Error("the lock file was removed: a process about to lock it would not exclude the next")
	}
	left, _ := os.ReadDir(base)
	for _, e := range left {
		if strings.HasPrefix(e.Name(), ".rm-") {
			t.Errorf("left %s behind", e.Name())
		}
	}
	if Usage(root, k) == 0 {
		t.Error("usage of the remaining entry is 0")
	}
}

func TestKindOf(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "custom"), 0o755); err != nil {
		t.Fatal(err)
	}
	if k, err := KindOf(root, "custom"); err != nil || k.Depth != 1 {
		t.Errorf("an unknown dir present: %v %v", k, err)
	}
	if _, err := KindOf(root, "nope"); err == nil || !strings.Contains(err.Error(), "expected one of kernels, rootfs, snapshots") {
		t.Errorf("an unknown kind: %v", err)
	}
	if _, err := KindOf(root, "../etc"); err == nil {
		t.Error("a path outside the cache was accepted as a kind")
	}
}
