// Package filelock is an exclusive lock between processes on a file path
// (flock) that leaves no file behind: the holder removes the lock file
// before unlocking.
//
// Removing a lock file is safe only if a waiter that was blocked on the
// removed file notices and tries again: after each flock, Lock checks that
// the path still names the file it locked (same device and inode), so two
// processes can never both believe they hold the lock.
package filelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poll is how often a waiter tries again; flock cannot wait with a context.
const poll = 50 * time.Millisecond

// Lock takes the lock at path, waiting until it is free or ctx ends. The
// returned unlock removes the file and releases the lock.
func Lock(ctx context.Context, path string) (unlock func(), err error) {
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("opening lock file %s: %w", path, err)
		}
		locked, err := tryLock(f, path)
		if err != nil {
			f.Close()
			return nil, err
		}
		if locked {
			return func() {
				os.Remove(path)
				unix.Flock(int(f.Fd()), unix.LOCK_UN)
				f.Close()
			}, nil
		}
		f.Close()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// tryLock flocks f without waiting and reports whether f is still the file
// at path (a holder may have removed it meanwhile).
func tryLock(f *os.File, path string) (bool, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("locking %s: %w", path, err)
	}
	if same(f, path) {
		return true, nil
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false, nil
}

func same(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// RemoveStale removes the lock files matching pattern in dir that nobody
// holds (left by a hil killed while holding one, or by older versions that
// never removed them), and returns their paths.
func RemoveStale(dir, pattern string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, p := range files {
		f, err := os.OpenFile(p, os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if ok, _ := tryLock(f, p); ok {
			if os.Remove(p) == nil {
				removed = append(removed, p)
			}
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
		}
		f.Close()
	}
	return removed, nil
}
