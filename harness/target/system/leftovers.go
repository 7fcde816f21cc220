package system

import "github.com/hilproject/hil/internal/owner"

// TempPrefix names the per-boot dirs (QEMU's sockets) in $TMPDIR:
// TempPrefix + OWNERPID.STARTTIME + "-" + random.
const TempPrefix = "hil-vm-"

// RemoveStale deletes the per-boot dirs of hil processes that are gone
// (killed before they could close their devices) and returns their paths.
// A live process's dirs are never touched; QEMU itself dies with its
// parent (PR_SET_PDEATHSIG).
func RemoveStale() ([]string, error) { return owner.SweepTemp("", TempPrefix) }
