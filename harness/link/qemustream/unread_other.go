//go:build !linux

package qemustream

// unread says 0: only Linux tells how much of a unix socket's queue its
// peer has not read (SIOCOUTQ). Elsewhere Drain returns once the frames
// are flushed into the socket, without waiting for QEMU to read them.
func unread(int) (int, error) { return 0, nil }
