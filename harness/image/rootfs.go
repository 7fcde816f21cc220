package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hilproject/hil/harness/activity"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/filelock"
)

// RootFS flattens the image into the cache and returns the rootfs dir.
// Treat it as read-only: other runs share it.
//
// A cache entry is keyed by the chain of the layers' diff_ids (Docker's
// ChainID) and records them; an entry is used only when its record names
// exactly the diff_ids of this image's verified config. It enters the
// cache only after every layer was read to its end and checked against
// its digest, size and diff_id, so bytes that are not what the image pins
// can never be cached, and no source (a tampered layout, say) can poison
// what another (the registry the gate pulls from) reads: the same diff_ids
// are the same rootfs, whatever the source.
//
// The flatten goes into a temp dir beside the final one and is renamed
// into place only when complete, so a concurrent caller either waits for
// the lock or sees the finished dir, never a half-written one; a failed
// flatten leaves nothing behind, lock file included.
func (i *Image) RootFS(ctx context.Context) (string, error) {
	vi, err := verifiedOf(i.Image)
	if err != nil {
		return "", fmt.Errorf("image %s (%s): %w", i.Ref, i.Platform, err)
	}
	base, err := cache.Dir("rootfs")
	if err != nil {
		return "", err
	}
	rec := cacheRecord{DiffIDs: vi.diffIDs(), Manifest: vi.desc.Digest.String(), Source: vi.src.String()}
	key := chainKey(rec.DiffIDs)
	final := filepath.Join(base, key)
	rootfs := filepath.Join(final, "rootfs")
	if r, ok := readCached(final, rec.DiffIDs); ok {
		i.Report = r
		return rootfs, nil
	}

	unlock, err := lockFile(ctx, final+".lock")
	if err != nil {
		return "", fmt.Errorf("image %s: waiting for the rootfs cache lock %s.lock: %w", i.Ref, final, err)
	}
	defer unlock()
	if r, ok := readCached(final, rec.DiffIDs); ok { // flattened by someone else meanwhile
		i.Report = r
		return rootfs, nil
	}
	removeStaleTemps(base)

	tmp, err := os.MkdirTemp(base, ".tmp-"+key+"-")
	if err != nil {
		return "", fmt.Errorf("image %s: making a temp dir for the rootfs: %w", i.Ref, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	opts := i.opts
	activity.Report(ctx, "flattening %s (%s) into the rootfs cache (once per image)", i.Ref, i.Platform)
	rep, err := Flatten(ctx, vi, filepath.Join(tmp, "rootfs"), func(o *options) { *o = opts })
	if err != nil {
		return "", fmt.Errorf("image %s (%s, manifest %s): flattening: %w", i.Ref, i.Platform, i.ManifestDigest, err)
	}
	if err := writeJSON(filepath.Join(tmp, "report.json"), rep); err != nil {
		return "", fmt.Errorf("image %s: writing the flatten report: %w", i.Ref, err)
	}
	if err := writeJSON(filepath.Join(tmp, recordFile), rec); err != nil {
		return "", fmt.Errorf("image %s: writing the cache record: %w", i.Ref, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	// An entry that is there but was not usable (its record does not name
	// these diff_ids, or it has none: planted, or left by an older hil) is
	// moved aside and removed, never merged with.
	if _, err := os.Lstat(final); err == nil {
		if r, ok := readCached(final, rec.DiffIDs); ok { // a good entry after all: keep it
			i.Report = r
			return rootfs, nil
		}
		if err := discardEntry(base, key, final); err != nil {
			return "", fmt.Errorf("image %s: removing the unusable cache entry %s: %w", i.Ref, final, err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("image %s: moving the rootfs into the cache: %w", i.Ref, err)
	}
	ok = true
	i.Report = rep
	return rootfs, nil
}

// recordFile names what a cache entry is: written before the entry is
// renamed into place.
const recordFile = "verified.json"

// cacheRecord binds a cache entry to the verified layers it was made of.
type cacheRecord struct {
	// DiffIDs are the layers' diff_ids in order, from the config that was
	// checked against the manifest; every layer's stream matched its own.
	DiffIDs []v1.Hash `json:"diff_ids"`
	// Manifest and Source say which image first made the entry (for
	// people reading the cache; not part of the binding).
	Manifest string `json:"manifest"`
	Source   string `json:"source"`
}

// chainKey is the cache key for a chain of layers: Docker's ChainID
// (chain(1) = diff_id(1); chain(n) = sha256(chain(n-1) + " " +
// diff_id(n))), so the key changes with any layer and with their order.
func chainKey(diffIDs []v1.Hash) string {
	chain := ""
	for i, d := range diffIDs {
		if i == 0 {
			chain = d.String()
			continue
		}
		s := sha256.Sum256([]byte(chain + " " + d.String()))
		chain = "sha256:" + hex.EncodeToString(s[:])
	}
	if chain == "" {
		s := sha256.Sum256(nil)
		chain = "sha256:" + hex.EncodeToString(s[:])
	}
	return "chain-" + strings.Replace(chain, ":", "-", 1)
}

// readCached reports whether final is a complete cache entry of exactly
// these diff_ids: the rename is the commit point, and the record and the
// report are written before it.
func readCached(final string, diffIDs []v1.Hash) (*Report, bool) {
	data, err := os.ReadFile(filepath.Join(final, recordFile))
	if err != nil {
		return nil, false
	}
	var rec cacheRecord
	if json.Unmarshal(data, &rec) != nil || len(rec.DiffIDs) != len(diffIDs) {
		return nil, false
	}
	for i := range diffIDs {
		if rec.DiffIDs[i] != diffIDs[i] {
			return nil, false
		}
	}
	data, err = os.ReadFile(filepath.Join(final, "report.json"))
	if err != nil {
		return nil, false
	}
	var r Report
	if json.Unmarshal(data, &r) != nil {
		return nil, false
	}
	return &r, true
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// discardEntry moves an unusable entry into a temp dir (one rename, so
// nobody sees it half-removed) and removes it; a crash in between leaves a
// .tmp- dir that removeStaleTemps collects.
func discardEntry(base, key, final string) error {
	aside, err := os.MkdirTemp(base, ".tmp-"+key+"-discarded-")
	if err != nil {
		return err
	}
	if err := os.Rename(final, filepath.Join(aside, "entry")); err != nil {
		os.Remove(aside)
		return err
	}
	return removeTree(aside)
}

// removeTree removes a tree a flatten wrote, whose directory modes may
// forbid writing (0555 dirs of the image).
func removeTree(dir string) error {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// lockFile takes an exclusive lock that can wait with ctx and leaves no
// file behind (internal/filelock): a failed flatten used to leave an empty
// .lock per image.
func lockFile(ctx context.Context, path string) (func(), error) {
	return filelock.Lock(ctx, path)
}

// RemoveStaleFlattens removes the temp dirs that flattens of killed hil
// processes left in the rootfs cache (a rootfs half written, up to the
// image's size), and returns their paths. A flatten writes its
// .tmp-KEY-* dir only while it holds KEY.lock (and removes it before
// letting go, on every path but a kill), so a temp dir whose lock nobody
// holds is a dead process's: hil run, gate and replay call this at start
// (harness.RemoveLeftovers). A live flatten's dir is never touched.
func RemoveStaleFlattens() ([]string, error) {
	base, err := cache.Dir("rootfs")
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil, err
	}
	// Lock tries once when its context has ended: never wait on a live one.
	now, cancel := context.WithCancel(context.Background())
	cancel()
	var removed []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), ".tmp-")
		i := strings.LastIndexByte(rest, '-')
		if !ok || !e.IsDir() || i <= 0 {
			continue
		}
		key := strings.TrimSuffix(rest[:i], "-discarded")
		unlock, err := filelock.Lock(now, filepath.Join(base, key+".lock"))
		if err != nil {
			continue // a live flatten of key holds it
		}
		p := filepath.Join(base, e.Name())
		if removeTree(p) == nil {
			removed = append(removed, p)
		}
		unlock()
	}
	return removed, nil
}

// removeStaleTemps deletes temp dirs of flattens that were killed (a
// finished or failed flatten removes its own), and the empty lock files
// older hil versions left beside every entry. Only old ones: a live
// flatten of another digest may be writing its temp dir right now, and a
// lock file is removed only while holding its lock.
func removeStaleTemps(base string) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < 6*time.Hour {
			continue
		}
		p := filepath.Join(base, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), ".tmp-"):
			removeTree(p)
		case strings.HasSuffix(e.Name(), ".lock") && info.Mode().IsRegular():
			filelock.RemoveStale(base, e.Name())
		}
	}
}
