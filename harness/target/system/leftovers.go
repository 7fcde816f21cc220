package system

import (
	"errors"
	"time"

	"github.com/hilproject/hil/internal/owner"
)

// TempPrefix names the per-boot dirs (QEMU's sockets) in $TMPDIR:
// TempPrefix + OWNERPID.STARTTIME + "-" + random.
const TempPrefix = "hil-vm-"

// RemoveStale deletes what hil processes that are gone (killed before they
// could close their devices) left of the system target: their per-boot
// dirs in $TMPDIR and the partial files of their snapshot saves in the
// default snapshot dir. It returns their paths. A live process's are never
// touched; QEMU itself dies with its parent (PR_SET_PDEATHSIG).
func RemoveStale() ([]string, error) {
	removed, err := owner.SweepTemp("", TempPrefix)
	dir, derr := defaultSnapshotDir()
	if derr != nil {
		return removed, errors.Join(err, derr)
	}
	saves, serr := sweepSnapshotTemps(dir, time.Now().Add(-staleSaveAge))
	return append(removed, saves...), errors.Join(err, serr)
}
