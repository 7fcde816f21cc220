//go:build !linux

package image

import "golang.org/x/sys/unix"

// oPath: without Linux's O_PATH, directories are opened for reading, which
// needs read permission on them (the flattener owns what it makes).
const oPath = unix.O_RDONLY
