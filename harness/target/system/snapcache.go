package system

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/owner"
)

// The snapshot cache's bookkeeping. A snapshot is KEY.vmstate (QEMU's
// migration stream, up to the guest's RAM) with KEY.vmstate.json beside it.
// Several processes share the directory (ginkgo -p, parallel hil runs):
//   - a boot that restores a snapshot holds it (a shared flock, see
//     cache.Hold) from before QEMU opens it until the restore is done;
//   - the cache is capped in bytes (and count): after a snapshot is saved,
//     the least recently used ones go until the rest fit, skipping any
//     another process holds (cache.CapDir); a boot marks its snapshot used;
//   - hil cache rm and prune use the same locks.

// DefaultSnapshotCacheMax caps the snapshot cache: about 16 snapshots of a
// 512 MB guest running a small app.
const DefaultSnapshotCacheMax = 1 << 30

// maxSnapshots also bounds the number of snapshots.
const maxSnapshots = 16

// WithSnapshotCacheMax caps the bytes the snapshot directory holds
// (default: $HIL_SNAPSHOT_CACHE_MAX, like 2GiB or 500MB, else
// DefaultSnapshotCacheMax). The least recently used snapshots not in use
// by another process are removed after each new one; the newest is kept
// even when it alone is larger.
func WithSnapshotCacheMax(bytes int64) Option { return func(o *options) { o.snapshotCacheMax = bytes } }

// snapshotCacheMax is the cap in effect.
func (t *Target) snapshotCacheMax() (int64, error) {
	if t.o.snapshotCacheMax > 0 {
		return t.o.snapshotCacheMax, nil
	}
	if v := os.Getenv("HIL_SNAPSHOT_CACHE_MAX"); v != "" {
		n, err := ParseSize(v)
		if err != nil {
			return 0, fmt.Errorf("HIL_SNAPSHOT_CACHE_MAX: %w", err)
		}
		return n, nil
	}
	return DefaultSnapshotCacheMax, nil
}

// ParseSize reads a byte count: a number with an optional unit B, KB, MB,
// GB (powers of 1000) or KiB, MiB, GiB (powers of 1024).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("size %q: expected a number > 0 with an optional unit (B, KB, MB, GB, KiB, MiB, GiB), like 2GiB", s)
	}
	return int64(f * float64(mult)), nil
}

// holdSnapshot takes the snapshot at path for a restore: its metadata,
// marked as used (for the LRU), held against removal until release.
func holdSnapshot(path string) (*snapshotMeta, func(), error) {
	release, err := cache.Hold(path)
	if err != nil {
		return nil, nil, err
	}
	meta, err := readSnapshotMeta(path)
	if err != nil {
		release()
		return nil, nil, err
	}
	now := time.Now()
	os.Chtimes(path, now, now)
	return meta, release, nil
}

// dropSnapshot removes a snapshot that did not restore, unless another
// process is using it right now (then it restores there, or that process
// drops it).
func dropSnapshot(path string) {
	_ = cache.Remove(cache.Entry{Path: path, Sidecars: []string{path + ".json"}})
}

// capSnapshots applies the cache cap to the snapshot directory, after
// removing the partial files of saves whose process is gone.
func (t *Target) capSnapshots(dir string) error {
	_, sweepErr := sweepSnapshotTemps(dir, time.Now().Add(-staleSaveAge))
	maxBytes, err := t.snapshotCacheMax()
	if err != nil {
		return errors.Join(sweepErr, err)
	}
	_, err = cache.CapDir(filepath.Clean(dir), maxBytes, maxSnapshots)
	return errors.Join(sweepErr, err)
}

// snapshotTemp is the name a save writes path under until it is complete:
// path.OWNER-RANDOM.tmp. OWNER (this process's pid and start time) lets a
// later hil remove what a killed save left (sweepSnapshotTemps); RANDOM
// keeps two saves of one key in one process (hil run --parallel) out of
// each other's file.
func snapshotTemp(path string, o owner.Owner) string {
	return owner.NameFor(path+".", o) + ".tmp"
}

// staleSaveAge is how long a partial save must have been left untouched
// before a gone owner's is removed: a save under way writes all the time,
// and a process in another pid namespace (a cache shared with a container)
// looks gone from here.
const staleSaveAge = 2 * time.Minute

// defaultSnapshotDir is where snapshots go without WithSnapshotDir (not
// created here).
func defaultSnapshotDir() (string, error) {
	root, err := cache.Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "snapshots", "system"), nil
}

// sweepSnapshotTemps removes the partial snapshot files in dir (named by
// snapshotTemp, or PATH.PID.tmp before owners had start times) of gone
// processes, untouched since before cutoff (a save killed mid-way leaves
// one as large as the guest's memory). A live process's saves and names
// without an owner are left alone.
func sweepSnapshotTemps(dir string, cutoff time.Time) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweeping partial snapshots: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".tmp")
		if !ok {
			continue
		}
		_, rec, ok := strings.Cut(name, ".vmstate.")
		if !ok {
			continue
		}
		rec = strings.TrimPrefix(rec, "json.")
		o, ok := owner.OfName(rec)
		if !ok {
			pid, perr := strconv.Atoi(rec)
			if perr != nil || pid <= 0 {
				continue
			}
			o = owner.Owner{PID: pid}
		}
		if o.Alive() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if st, err := os.Stat(p); err != nil || st.ModTime().After(cutoff) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing a partial snapshot left by a gone process: %w", err))
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}
