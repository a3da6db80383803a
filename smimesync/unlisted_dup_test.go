package smimesync_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestPlanFileWithAnEntryReadTwice: a source that returns an entry twice
// in one read (the plan keeps a row per entry returned) makes a plan that
// counts it unlisted twice; WriteTo saves its key twice, and ReadPlan
// then refuses the file it wrote ("the unlisted entries' keys are
// damaged": unlistedFrom wants them distinct).
func TestPlanFileWithAnEntryReadTwice(t *testing.T) {
	ctx := context.Background()
	r := newMemoRig(t, &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")})
	r.settle(t)
	r.users = append(r.users, r.users[0])
	r.rewrite(t)
	plan, err := r.syncer.PlanFull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	t.Logf("plan: %+v", plan.Summary)
	var file bytes.Buffer
	if _, err := plan.WriteTo(&file); err != nil {
		t.Fatal(err)
	}
	read, err := smimesync.ReadPlan(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatalf("ReadPlan of the file WriteTo wrote: %v", err)
	}
	read.Close()
}
