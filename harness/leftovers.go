package harness

import (
	"errors"
	"os"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/target/system"
	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/filelock"
)

// RemoveLeftovers deletes what earlier hil processes that were killed
// (SIGKILL, OOM, a power cut) left on this host: the system target's
// per-boot dirs in $TMPDIR and partial snapshot saves, veth pairs and
// network namespaces (as root),
// and the rootfs cache's locks and flatten temp dirs nobody holds. Each
// resource records its owner when it is made (internal/owner), or is
// guarded by a lock its maker holds, so a live run's are never touched.
// It returns what it removed; hil run, gate and replay call it first.
func RemoveLeftovers() ([]string, error) {
	var out []string
	var errs []error
	add := func(what []string, err error) {
		out = append(out, what...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(system.RemoveStale())
	if os.Geteuid() == 0 {
		add(removeStaleLinks())
	}
	if dir, err := cache.Dir("rootfs"); err == nil {
		add(image.RemoveStaleFlattens())
		add(filelock.RemoveStale(dir, "*.lock"))
	}
	return out, errors.Join(errs...)
}
