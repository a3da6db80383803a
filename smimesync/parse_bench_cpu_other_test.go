//go:build !unix

package smimesync_test

import "time"

// processCPU reports no CPU time where getrusage is missing.
func processCPU() time.Duration { return 0 }
