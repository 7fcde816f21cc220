//go:build !linux

package testenv

import "syscall"

// serviceProcAttr starts a service in its own process group (no
// parent-death signal outside Linux: the test's cleanup stops it).
func serviceProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func unmountDetached(path string) { _ = syscall.Unmount(path, 0) }
