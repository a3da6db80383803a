package smimesync_test

import (
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testrows"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestMemoNotFoundConflict: alice's entry waits for a recipient on its
// memo when a second entry with her address (a duplicate account) appears
// in the directory in the same period as her mailbox. Both entries now
// match the one recipient: that is a conflict, and neither may be written,
// as a pass that asks the sink about both (RecheckNotFoundEveryPass) finds.
// A memo of "no recipient" must not let the newcomer have the recipient
// merely because the sink was not asked about alice.
func TestMemoNotFoundConflict(t *testing.T) {
	const alice = "alice@example.com"
	period := smimesync.DefaultRecheckNotFound
	start := testNow.Truncate(period)
	for _, tt := range []struct {
		name    string
		recheck time.Duration
	}{
		{"every pass", smimesync.RecheckNotFoundEveryPass},
		{"default period", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newMemoRig(t, &smimesync.MemoryState{})
			r.syncer.RecheckNotFound = tt.recheck
			r.now = start.Add(10 * time.Minute)
			r.mem.SetMissing(alice, true)
			rep, _, _ := r.pass(t)
			if c := notFoundRow(t, rep, alice); c.Reason != smimesync.SkipNoRecipient {
				t.Fatalf("first pass: alice %s %q", c.Action, c.Reason)
			}

			// Her mailbox is created, and a duplicate account with her
			// address appears in the directory.
			r.now = start.Add(20 * time.Minute)
			r.mem.SetMissing(alice, false)
			dup := user(3, "alice", r.ca.issue(t, leaf{email: alice, key: 3}))
			dup.DN = "CN=alice2,OU=Staff,DC=example,DC=com"
			dup.UserPrincipalName = "alice2@corp.example.com"
			r.users = append(r.users, dup)
			r.rewrite(t)
			rep, _, _ = r.pass(t)
			for _, c := range testrows.Of(t, rep) {
				if c.ID == dup.ID && c.Outcome == smimesync.OutcomeWritten {
					t.Errorf("the duplicate of alice was written to %s (%s %q), while alice's entry (%s) matches the same recipient; want both skipped as a conflict",
						alice, c.Action, c.Reason, describeRow(t, rep, r.users[0].ID))
				}
			}
			if n := r.mem.WriteCount(alice); n != 0 {
				t.Errorf("%s written %d times, want none: two entries match it", alice, n)
			}
		})
	}
}

// describeRow describes the row of the entry of this ID in rep.
func describeRow(t *testing.T, rep *smimesync.Report, id string) string {
	t.Helper()
	for _, c := range testrows.Of(t, rep) {
		if c.ID == id {
			s := string(c.Action) + " " + string(c.Reason)
			if c.Memoized {
				s += ", memoized"
			}
			return s
		}
	}
	return "no row"
}
