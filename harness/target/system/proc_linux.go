package system

import "syscall"

// qemuProcAttr runs QEMU in its own process group, killed when the thread
// that started it ends (the harness died: no orphaned VM).
func qemuProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
