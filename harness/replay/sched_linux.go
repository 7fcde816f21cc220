package replay

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// realtime puts the calling (locked) thread in SCHED_FIFO and returns how
// to put it back.
func realtime() func() {
	type schedParam struct{ priority int32 }
	var old schedParam
	policy, _, e := unix.RawSyscall(unix.SYS_SCHED_GETSCHEDULER, 0, 0, 0)
	if e != 0 {
		return func() {}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SCHED_GETPARAM, 0, uintptr(unsafe.Pointer(&old)), 0); e != 0 {
		return func() {}
	}
	p := schedParam{priority: 10}
	if _, _, e := unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, 0, 1 /* SCHED_FIFO */, uintptr(unsafe.Pointer(&p))); e != 0 {
		return func() {}
	}
	return func() {
		unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, 0, policy, uintptr(unsafe.Pointer(&old)))
	}
}

// sleepUntil sleeps until wake on CLOCK_MONOTONIC (absolute).
func sleepUntil(wake int64) error {
	ts := unix.NsecToTimespec(wake)
	// A raw syscall keeps this thread's P: returning from a blocking
	// syscall would queue the sender behind whatever else the
	// process runs, which costs milliseconds on a busy 2-core host.
	_, _, e := unix.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if e != 0 && e != unix.EINTR {
		return fmt.Errorf("replay: clock_nanosleep: %w", e)
	}
	return nil
}

// fineTimerSlack sets the calling (locked) thread's timer slack to 1 ns and
// returns how to put it back.
func fineTimerSlack() (restore func()) {
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return func() {}
	}
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	return func() { _ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0) }
}

// lowerPriority raises the calling (locked) thread's nice value by
// readerNice and returns how to put it back. It does so only when it can
// put it back (root, or an RLIMIT_NICE that allows it): the thread must
// return to Go's pool as it was. It must never end with the goroutine
// instead: a child process started from that thread with a parent-death
// signal (QEMU) would be killed when the thread exits.
func lowerPriority() (restore func()) {
	tid := unix.Gettid()
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return func() {}
	}
	old := 20 - raw // the system call returns 20 - nice
	var lim unix.Rlimit
	canRestore := unix.Geteuid() == 0 || unix.Getrlimit(unix.RLIMIT_NICE, &lim) == nil && 20-int(lim.Cur) <= old
	if !canRestore || unix.Setpriority(unix.PRIO_PROCESS, tid, min(old+readerNice, 19)) != nil {
		return func() {}
	}
	return func() { _ = unix.Setpriority(unix.PRIO_PROCESS, tid, old) }
}
