package filelock

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many lockers, each removing the file as it unlocks: never two holders at
// once, and no file left at the end.
func TestExclusiveAndLeavesNoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	var holders, maxHolders, rounds atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				unlock, err := Lock(context.Background(), path)
				if err != nil {
					t.Error(err)
					return
				}
				if n := holders.Add(1); n > maxHolders.Load() {
					maxHolders.Store(n)
				}
				time.Sleep(100 * time.Microsecond)
				holders.Add(-1)
				rounds.Add(1)
				unlock()
			}
		}()
	}
	wg.Wait()
	if maxHolders.Load() != 1 || rounds.Load() != 200 {
		t.Errorf("at most %d holders at once over %d rounds; want 1 over 200", maxHolders.Load(), rounds.Load())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("lock file left: %v", err)
	}
}

func TestLockWaitsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := Lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, path); err == nil {
		t.Fatal("took a held lock")
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "a.lock")
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	unlock, err := Lock(context.Background(), filepath.Join(dir, "held.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	removed, err := RemoveStale(dir, "*.lock")
	if err != nil || len(removed) != 1 || removed[0] != stale {
		t.Errorf("removed %v, %v; want only %s", removed, err, stale)
	}
	if _, err := os.Stat(filepath.Join(dir, "held.lock")); err != nil {
		t.Errorf("a held lock was removed: %v", err)
	}
}
