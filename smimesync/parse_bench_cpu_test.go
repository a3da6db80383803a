package smimesync_test

import (
	"testing"
	"time"
)

// reportCPU adds the process CPU time (user and system, every thread, so
// the garbage collector's work counts) per certificate as "cpu-ns/cert".
// Wall time per operation depends on what else the machine runs; CPU
// time much less, which makes the ratio of the two parse benchmarks
// comparable on a shared machine. start is processCPU() before the loop.
func reportCPU(b *testing.B, start time.Duration, perOp int) {
	b.Helper()
	end := processCPU()
	if end == 0 || b.N == 0 {
		return // not available on this platform
	}
	b.ReportMetric(float64((end-start).Nanoseconds())/float64(b.N*perOp), "cpu-ns/cert")
}
