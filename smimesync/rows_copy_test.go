package smimesync_test

import (
	"testing"

	"github.com/smimesync/go-smimesync/internal/testrows"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestRowsAreReadAnewForConflicts: Plan.Rows says each change is read
// anew on every call, so that changing one changes nothing in the plan.
// The rows markConflicts replaced are kept in memory (rowSet.over) and
// handed out as they are: a caller that changes one changes the plan,
// and what Apply would write.
func TestRowsAreReadAnewForConflicts(t *testing.T) {
	plan := twinsPlan(t)
	first := testrows.Of(t, plan)
	if len(first) != 2 || first[0].Reason != smimesync.SkipConflict {
		t.Fatalf("rows %+v, want two conflicts", first)
	}
	first[0].Action, first[0].Reason = smimesync.ActionAdd, "" // a caller's own use of the row it read
	if again := testrows.Of(t, plan); again[0].Action != smimesync.ActionSkip || again[0].Reason != smimesync.SkipConflict {
		t.Errorf("the plan's row changed with the caller's copy: %s %s", again[0].Action, again[0].Reason)
	}
}
