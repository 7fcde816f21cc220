package qemustream

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// unread is how many bytes written to the socket fd its peer has not read
// yet (SIOCOUTQ).
func unread(fd int) (int, error) {
	n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	if err != nil {
		return 0, fmt.Errorf("SIOCOUTQ: %w", err)
	}
	return n, nil
}
