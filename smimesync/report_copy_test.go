package smimesync_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestReportOfAPlanCopyKeepsItsRows: a report made of a copy of a plan
// (what examples/smimesync's sync --dry-run does:
// &smimesync.Report{Plan: *pl, DryRun: true}) shares the plan's rows,
// whose temporary file the garbage collector closes once the *Plan is
// unreachable (runtime.AddCleanup on the *Plan), though the copy still
// reads from it: its rows must stay readable while the report is alive.
func TestReportOfAPlanCopyKeepsItsRows(t *testing.T) {
	ctx := context.Background()
	w := newSpillWorld(t)
	rep := func() *smimesync.Report {
		plan, err := w.syncer().Plan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return &smimesync.Report{Plan: *plan, DryRun: true}
	}()
	for range 5 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	rows, err := rep.CollectRows()
	if err != nil || len(rows) != 3 {
		t.Fatalf("the report's rows once the plan was collected: %d, %v; want 3", len(rows), err)
	}
	runtime.KeepAlive(rep)
}
