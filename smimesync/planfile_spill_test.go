package smimesync_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestReadPlanRowsSpillErrorIsNotTheFiles: ReadPlan says that an error
// keeping what it reads in its temporary file wraps ErrSpill, not
// ErrPlanFile (the file is not at fault). The rows of a plan are kept
// there too: when the last run of rows cannot be written (readChanges'
// final rows.flush, unwrapped, unlike rows.add's), the error must not
// blame the file.
func TestReadPlanRowsSpillErrorIsNotTheFiles(t *testing.T) {
	ctx := context.Background()
	sink := cloudtest.NewMemorySink()
	for i := range 3 {
		sink.Seed(fmt.Sprintf("u%d@example.com", i), cloud.Certificates{})
	}
	plan, err := newSyncer(entriesSource(3), sink, &smimesync.MemoryState{}).Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	if plan.Summary.Unchanged != 3 {
		t.Fatalf("plan %+v, want three unchanged rows (no values to keep)", plan.Summary)
	}
	file := savePlan(t, plan)
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	_, err = smimesync.ReadPlan(bytes.NewReader(file))
	if !errors.Is(err, smimesync.ErrSpill) || errors.Is(err, smimesync.ErrPlanFile) {
		t.Errorf("ReadPlan with no room for its rows: %v; want ErrSpill, not ErrPlanFile", err)
	}
}
