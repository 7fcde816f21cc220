//go:build !linux

package system

import "syscall"

// qemuProcAttr runs QEMU in its own process group. Without Linux's
// parent-death signal, a VM can outlive a hil that was killed (SIGKILL);
// an orderly end (SIGTERM, SIGINT, an error) still stops it.
func qemuProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
