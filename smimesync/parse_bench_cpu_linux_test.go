//go:build linux

package smimesync_test

import (
	"time"

	"golang.org/x/sys/unix"
)

// processCPU returns the CPU time the process has used so far, every
// thread, to the nanosecond.
func processCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
