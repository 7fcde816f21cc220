//go:build !linux

package replay

import "time"

// On systems other than Linux the sender sleeps with Go's timer and runs at
// its normal priority: timed replays are less precise there (hil's
// timing figures are Linux's), top speed is the same.

func realtime() func() { return func() {} }

func sleepUntil(wake int64) error {
	time.Sleep(time.Duration(wake - monotonic()))
	return nil
}

func fineTimerSlack() (restore func()) { return func() {} }

func lowerPriority() (restore func()) { return func() {} }
