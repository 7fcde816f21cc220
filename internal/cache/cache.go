// Package cache locates hil's download and build cache: $HIL_CACHE when set,
// else the user cache dir (~/.cache/hil). Everything under it can be
// recreated; it only saves downloads and work.
package cache

import (
	"fmt"
	"os"
	"path/filepath"
)

// Dir returns the cache directory joined with sub, creating it.
func Dir(sub ...string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(append([]string{root}, sub...)...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating cache dir %s: %w", dir, err)
	}
	return dir, nil
}
