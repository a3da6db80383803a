//go:build !linux

package smimesync_test

import "time"

// processCPU reports no CPU time off Linux.
func processCPU() time.Duration { return 0 }
