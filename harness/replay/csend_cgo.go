//go:build cgo && linux

package replay

/*
#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	volatile int32_t cancel; // set by Go to stop between frames
	volatile int64_t sent;   // frames written so far, read by Go
} hil_ctl;

static inline int64_t hil_mono(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// hil_send writes n frames (frame i is buf[offs[i]:offs[i+1]]) to fd, frame
// i not before targets[i] (CLOCK_MONOTONIC ns): an absolute sleep to
// spin_ns before, then a spin. sent_at[i] is when frame i was released.
// Returns 0, -ECANCELED, or -errno of the failed write (ctl->sent says
// which frame).
static int hil_send(int fd, const uint8_t *buf, const int64_t *offs, const int64_t *targets,
		int64_t n, int64_t spin_ns, int64_t *sent_at, hil_ctl *ctl) {
	const int64_t max_sleep = 20000000; // see the cancel flag at least every 20 ms
	for (int64_t i = 0; i < n; i++) {
		if (ctl->cancel) return -ECANCELED;
		int64_t target = targets[i];
		for (;;) {
			int64_t now = hil_mono();
			if (target - now <= spin_ns) break;
			int64_t wake = target - spin_ns;
			if (wake - now > max_sleep) wake = now + max_sleep;
			struct timespec ts = { wake / 1000000000LL, wake % 1000000000LL };
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
			if (ctl->cancel) return -ECANCELED;
		}
		int64_t at = hil_mono();
		while (at < target) at = hil_mono();
		ssize_t w;
		do {
			w = write(fd, buf + offs[i], (size_t)(offs[i + 1] - offs[i]));
		} while (w < 0 && errno == EINTR);
		// ENOBUFS: the kernel took the frame and dropped it on the way
		// (veth: the app end refused it). The frame was sent; the
		// interface's counters account for the drop (link.Counters).
		if (w < 0 && errno != ENOBUFS) return -errno;
		sent_at[i] = at;
		ctl->sent = i + 1;
	}
	return 0;
}
*/
import "C"

import (
	"context"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// A link.FDWriter is sent to from C: a goroutine that runs for more than
// 10 ms is preempted by the Go scheduler and gets its thread back only
// when another, ordinary-priority thread runs, which on a busy host costs
// milliseconds. A cgo call is never preempted.

const haveCSend = true

type cSender struct {
	ctl  *C.hil_ctl
	stop func() bool
}

func newCSender(ctx context.Context) *cSender {
	s := &cSender{ctl: (*C.hil_ctl)(C.calloc(1, C.size_t(unsafe.Sizeof(C.hil_ctl{}))))}
	cancel := (*int32)(unsafe.Pointer(&s.ctl.cancel))
	s.stop = context.AfterFunc(ctx, func() { atomic.StoreInt32(cancel, 1) })
	return s
}

// sent is how many frames of the current call went out (for progress).
func (s *cSender) sent() int64 {
	return atomic.LoadInt64((*int64)(unsafe.Pointer(&s.ctl.sent)))
}

// send writes one batch: frame i is buf[offs[i]:offs[i+1]], released not
// before targets[i] (0: at once); sentAt[i] gets when it went out. It
// returns how many went out and the error. The slices are Go memory
// without pointers, which cgo lets C read for the duration of the call.
func (s *cSender) send(fd int, buf []byte, offs, targets, sentAt []int64, spin int64) (int, error) {
	atomic.StoreInt64((*int64)(unsafe.Pointer(&s.ctl.sent)), 0)
	n := len(targets)
	if n == 0 {
		return 0, nil
	}
	rc := C.hil_send(C.int(fd), (*C.uint8_t)(unsafe.Pointer(&buf[0])), (*C.int64_t)(unsafe.Pointer(&offs[0])),
		(*C.int64_t)(unsafe.Pointer(&targets[0])), C.int64_t(n), C.int64_t(spin), (*C.int64_t)(unsafe.Pointer(&sentAt[0])), s.ctl)
	done := int(s.sent())
	switch {
	case rc == 0:
		return n, nil
	case -rc == C.ECANCELED:
		return done, context.Canceled
	default:
		return done, syscall.Errno(-rc)
	}
}

func (s *cSender) close() {
	s.stop()
	C.free(unsafe.Pointer(s.ctl))
}
