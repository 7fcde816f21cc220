package cache

import (
	"os"
	"path/filepath"
	"testing"
)

// A relative HIL_CACHE is taken from the working directory hil started in:
// the guest init's go build and QEMU run elsewhere and were handed paths
// that did not exist there ("rename .cache/init/…: no such file").
func TestRelativeCacheIsMadeAbsolute(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	t.Setenv("HIL_CACHE", "rel/cache")
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(work, "rel", "cache")
	if root != want {
		t.Errorf("Root() = %q, want %q", root, want)
	}
	dir, err := Dir("init")
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(want, "init") {
		t.Errorf("Dir(init) = %q, want it under %q", dir, want)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Errorf("Dir did not create %s: %v", dir, err)
	}
}
