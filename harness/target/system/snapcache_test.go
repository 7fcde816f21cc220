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

// A save killed mid-way leaves KEY.vmstate.OWNER.tmp (as large as the
// guest's memory); the next save in the directory removes it, and never a
// live process's save under way, a finished snapshot or an unowned file.
func TestKilledSavesTempIsSweptByTheNextSave(t *testing.T) {
	dir := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := owner.Owner{PID: gone.Process.Pid, Start: 1}
	self := owner.Self()
	files := map[string]bool{ // name: swept
		"k1.vmstate." + dead.String() + ".tmp":             true,
		"k1.vmstate.json." + dead.String() + ".tmp":        true,
		fmt.Sprintf("k2.vmstate.%d.tmp", gone.Process.Pid): true, // before owners were recorded
		"k3.vmstate." + self.String() + ".tmp":             false,
		"k3.vmstate.json." + self.String() + ".tmp":        false,
		"k4.vmstate":             false,
		"k4.vmstate.json":        false,
		"notes.tmp":              false,
		"k5.vmstate.someone.tmp": false,
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := New(WithSnapshotCacheMax(1 << 30)).capSnapshots(dir); err != nil {
		t.Fatal(err)
	}
	for name, swept := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if swept && err == nil {
			t.Errorf("%s (a gone process's partial save) was left behind", name)
		}
		if !swept && err != nil {
			t.Errorf("%s was removed: %v", name, err)
		}
	}
}
