package image

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/filelock"
)

// RootFS flattens the image into the cache, keyed by manifest digest, and
// returns the rootfs dir. Treat it as read-only: other runs share it.
//
// The flatten goes into a temp dir beside the final one and is renamed
// into place only when complete, so a concurrent caller either waits for
// the lock or sees the finished dir, never a half-written one; a failed
// flatten leaves nothing behind.
func (i *Image) RootFS(ctx context.Context) (string, error) {
	base, err := cache.Dir("rootfs")
	if err != nil {
		return "", err
	}
	key := i.ManifestDigest.Algorithm + "-" + i.ManifestDigest.Hex
	if i.ManifestDigest.Hex == "" {
		return "", fmt.Errorf("image %s: no manifest digest to key the rootfs cache with", i.Ref)
	}
	final := filepath.Join(base, key)
	rootfs := filepath.Join(final, "rootfs")
	if r, ok := readCached(final); ok {
		i.Report = r
		return rootfs, nil
	}

	unlock, err := lockFile(ctx, final+".lock")
	if err != nil {
		return "", fmt.Errorf("image %s: waiting for the rootfs cache lock: %w", i.Ref, err)
	}
	defer unlock()
	if r, ok := readCached(final); ok { // flattened by someone else meanwhile
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
	rep, err := Flatten(ctx, i.Image, filepath.Join(tmp, "rootfs"), func(o *options) { *o = opts })
	if err != nil {
		return "", fmt.Errorf("image %s (%s, manifest %s): flattening: %w", i.Ref, i.Platform, i.ManifestDigest, err)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "report.json"), data, 0o644); err != nil {
		return "", fmt.Errorf("image %s: writing the flatten report: %w", i.Ref, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		if r, cached := readCached(final); cached { // another process without our lock (older hil) won
			i.Report = r
			return rootfs, nil
		}
		return "", fmt.Errorf("image %s: moving the rootfs into the cache: %w", i.Ref, err)
	}
	ok = true
	i.Report = rep
	return rootfs, nil
}

// readCached reports whether final is a complete cache entry: the rename
// is the commit point, and report.json is written before it.
func readCached(final string) (*Report, bool) {
	data, err := os.ReadFile(filepath.Join(final, "report.json"))
	if err != nil {
		return nil, false
	}
	var r Report
	if json.Unmarshal(data, &r) != nil {
		return nil, false
	}
	return &r, true
}

// lockFile takes an exclusive lock that can wait with ctx and leaves no
// file behind (internal/filelock): a failed flatten used to leave an empty
// .lock per image.
func lockFile(ctx context.Context, path string) (func(), error) {
	return filelock.Lock(ctx, path)
}

// removeStaleTemps deletes temp dirs of flattens that were killed (a
// finished or failed flatten removes its own). Only old ones: a live
// flatten of another digest may be writing its temp dir right now.
func removeStaleTemps(base string) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 6*time.Hour {
			os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}
