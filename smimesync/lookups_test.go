package smimesync_test

import (
	"errors"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestPlanLookupsFailed: a plan whose lookups all succeeded is complete;
// one with SkipError changes says how many of how many failed and names
// the first with its error's first line.
func TestPlanLookupsFailed(t *testing.T) {
	for _, tt := range []struct {
		name    string
		changes []*smimesync.Change
		want    string
	}{
		{"none", nil, ""},
		{"other skips", []*smimesync.Change{{User: "a", Action: smimesync.ActionSkip, Reason: smimesync.SkipReadOnly}, {User: "b", Action: smimesync.ActionAdd}}, ""},
		{"two failed", []*smimesync.Change{
			{User: "a", Action: smimesync.ActionAdd},
			{User: "b", Action: smimesync.ActionSkip, Reason: smimesync.SkipError, Error: " 401 Unauthorized\nRESPONSE 401\n{...}"},
			{User: "c", Action: smimesync.ActionSkip, Reason: smimesync.SkipError, Error: "timeout"},
		}, "2 of 3 recipient lookups failed, so the plan is incomplete (first: b: 401 Unauthorized)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := (&smimesync.Plan{Changes: tt.changes}).LookupsFailed()
			if tt.want == "" {
				if err != nil {
					t.Errorf("%v, want nil", err)
				}
				return
			}
			if !errors.Is(err, smimesync.ErrLookupsFailed) || err.Error() != tt.want {
				t.Errorf("%v, want ErrLookupsFailed saying %q", err, tt.want)
			}
		})
	}
}
