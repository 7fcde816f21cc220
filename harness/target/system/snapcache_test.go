package system

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/owner"
)

// A new snapshot over the cache's cap evicts the least recently used one,
// but not one another boot holds for a restore (here held as Boot holds
// it), and a boot holds and marks its snapshot used.
func TestSnapshotCacheCap(t *testing.T) {
	rootfs, img := capcountRootFS(t)
	snaps := t.TempDir()
	fake := func(key string, age time.Duration) string {
		p := filepath.Join(snaps, key+".vmstate")
		if err := os.WriteFile(p, make([]byte, 4<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+".json", []byte(`{"key":"`+key+`"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		os.Chtimes(p, when, when)
		os.Chtimes(p+".json", when, when)
		return p
	}
	held := fake("held", 3*time.Hour)
	idle := fake("idle", 2*time.Hour)
	release, err := cache.Hold(held)
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	// A cap below one snapshot: everything goes that may go.
	tg := New(WithRootFS(rootfs), WithSnapshotDir(snaps), WithSnapshotCacheMax(1))
	cfg := target.RunConfig{Entrypoint: []string{"/bin/capcount"}, Ready: readyLine}
	ctx := testCtx(t, 60*time.Second)
	d, err := tg.Boot(ctx, img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, seen, ok := waitLine(t, d, 20*time.Second, readyLine); !ok {
		t.Fatalf("never ready: %v", seen)
	}
	d.Close()
	noLeftovers(t, d)
	saved := filepath.Join(snaps, d.Info().String("snapshot_key")+".vmstate")
	if _, err := os.Stat(saved); err != nil {
		t.Fatalf("no snapshot saved: %v (info %v)", err, d.Info())
	}
	if _, err := os.Stat(idle); err == nil {
		t.Error("the least recently used snapshot was kept over the cap")
	}
	if _, err := os.Stat(held); err != nil {
		t.Error("a snapshot another boot holds was evicted")
	}

	// A warm boot of the saved one marks it used and lets it go after.
	old := time.Now().Add(-time.Hour)
	os.Chtimes(saved, old, old)
	d, err = tg.Boot(ctx, img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close(); noLeftovers(t, d) }()
	if d.Info().String("boot") != "app" {
		t.Fatalf("second boot %q, want app", d.Info().String("boot"))
	}
	if st, err := os.Stat(saved); err != nil || time.Since(st.ModTime()) > time.Minute {
		t.Errorf("the restored snapshot was not marked used: %v", err)
	}
	if err := cache.Remove(cache.Entry{Path: saved}); err != nil {
		t.Errorf("removing the snapshot after its restore: %v (still held?)", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"2GiB": 2 << 30, "500MB": 500e6, "1.5 MiB": 3 << 19, "4096": 4096, "10B": 10, "1KB": 1000} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1GiB", "0", "lots", "2TB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	t.Setenv("HIL_SNAPSHOT_CACHE_MAX", "3MiB")
	if n, err := New().snapshotCacheMax(); err != nil || n != 3<<20 {
		t.Errorf("from the environment: %d, %v", n, err)
	}
	if n, _ := New(WithSnapshotCacheMax(7)).snapshotCacheMax(); n != 7 {
		t.Errorf("the option over the environment: %d", n)
	}
}

// A save killed mid-way leaves its partial file (as large as the guest's
// memory); the next save in the directory, or the next hil run, removes it
// once it is old enough, and never a live process's save under way, a
// finished snapshot or an unowned file.
func TestKilledSavesTempIsSweptByTheNextSave(t *testing.T) {
	dir := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := owner.Owner{PID: gone.Process.Pid, Start: 1}
	self := owner.Self()
	reused := owner.Owner{PID: self.PID, Start: self.Start + 1} // this pid, another process's start
	old := time.Now().Add(-3 * time.Minute)
	base := func(key string) string { return filepath.Join(dir, key+".vmstate") }
	files := []struct {
		path  string
		mtime time.Time
		swept bool
	}{
		{snapshotTemp(base("k1"), dead), old, true},
		{snapshotTemp(base("k1")+".json", dead), old, true},
		{fmt.Sprintf("%s.%d.tmp", base("k2"), gone.Process.Pid), old, true}, // before owners had start times
		{snapshotTemp(base("k6"), reused), old, true},
		{snapshotTemp(base("k3"), self), old, false},
		{snapshotTemp(base("k3")+".json", self), old, false},
		{snapshotTemp(base("k7"), dead), time.Now(), false}, // written just now: maybe a process this host cannot see
		{base("k4"), old, false},
		{base("k4") + ".json", old, false},
		{filepath.Join(dir, "notes.tmp"), old, false},
		{base("k5") + ".someone.tmp", old, false},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(f.path, f.mtime, f.mtime)
	}
	if err := New(WithSnapshotCacheMax(1 << 30)).capSnapshots(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		_, err := os.Stat(f.path)
		if f.swept && err == nil {
			t.Errorf("%s (a gone process's partial save) was left behind", filepath.Base(f.path))
		}
		if !f.swept && err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(f.path), err)
		}
	}
	if a, b := snapshotTemp(base("k8"), self), snapshotTemp(base("k8"), self); a == b {
		t.Errorf("two saves of one key in one process share %s", a)
	}
}
