package bench

import (
	"runtime"
	"syscall"
	"time"
)

// PR_SET_TIMERSLACK: the thread's timer slack in ns (default 50 µs).
const prSetTimerSlack = 29

// precise prepares the calling goroutine for preciseSleep: it gets its own OS thread with
// a 1 ns timer slack. The returned func undoes it.
//
// The Go runtime's timers wake an idle process through epoll with millisecond resolution
// (a 100 µs timer fires ~1 ms late on an idle VM), which would add up to a millisecond of
// the generator's own delay to every latency; nanosleep(2) on a locked thread is late by
// tens of microseconds.
func precise() func() {
	runtime.LockOSThread()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0)
	return runtime.UnlockOSThread
}

// preciseSleep sleeps d with nanosleep(2), blocking only this goroutine's thread.
func preciseSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var rem syscall.Timespec
		if err := syscall.Nanosleep(&ts, &rem); err != syscall.EINTR {
			return
		}
		ts = rem
	}
}
