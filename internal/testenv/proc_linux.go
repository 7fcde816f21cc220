package testenv

import "syscall"

// serviceProcAttr starts a service in its own process group, killed when
// the test process dies.
func serviceProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func unmountDetached(path string) { _ = syscall.Unmount(path, syscall.MNT_DETACH) }
