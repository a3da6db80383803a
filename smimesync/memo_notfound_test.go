package smimesync_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// notFoundRow returns the row of mail in rep, failing the test when there
// is none (an entry skipped for want of a recipient always has a row).
func notFoundRow(t *testing.T, rep *smimesync.Report, mail string) *smimesync.Change {
	t.Helper()
	c := memoRow(t, rep, mail)
	if c == nil {
		t.Fatalf("%s only counted, want a row", mail)
	}
	return c
}

// TestMemoNotFound: an entry no recipient matched is taken on trust from
// its memo, without asking the sink, until the end of the period of
// RecheckNotFound in which the sink answered; then every such entry is
// asked about in the same pass.
func TestMemoNotFound(t *testing.T) {
	const alice, bob = "alice@example.com", "bob@example.com"
	period := smimesync.DefaultRecheckNotFound
	start := testNow.Truncate(period) // the start of a period
	for _, tt := range []struct {
		name  string
		state func(t *testing.T) smimesync.State
	}{
		{"MemoryState", func(*testing.T) smimesync.State { return &smimesync.MemoryState{} }},
		{"BoltState", func(t *testing.T) smimesync.State {
			return &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newMemoRig(t, tt.state(t))
			r.now = start.Add(10 * time.Minute)
			r.mem.SetMissing(alice, true)
			rep, lookups, judged := r.pass(t)
			if c := notFoundRow(t, rep, alice); c.Reason != smimesync.SkipNoRecipient || lookups[alice] == 0 || judged[alice] == 0 {
				t.Fatalf("first pass: alice %s %q, lookups %v, judged %v", c.Action, c.Reason, lookups, judged)
			}

			// Later in the period: alice's skip stands on its memo, and so
			// it does once her mailbox exists.
			r.now = start.Add(30 * time.Minute)
			r.mem.SetMissing(alice, false)
			rep, lookups, judged = r.pass(t)
			c := notFoundRow(t, rep, alice)
			if c.Reason != smimesync.SkipNoRecipient || !c.Memoized || lookups[alice] != 0 || judged[alice] != 0 {
				t.Fatalf("later in the period: alice %s %q memoized %v, lookups %v, judged %v; want her skip from its memo",
					c.Action, c.Reason, c.Memoized, lookups, judged)
			}
			if rep.Summary.Memoized != 2 || rep.Summary.Skip != 1 {
				t.Errorf("later in the period: %+v, want 2 memoized, 1 skipped", rep.Summary)
			}

			// Bob loses his mailbox in the same period, one pass later
			// than alice; the next period asks about both in one pass.
			r.mem.SetMissing(bob, true)
			r.syncer.Reverify = smimesync.ReverifyEveryPass
			r.pass(t) // bob judged (and alice: memos off), no recipient
			r.syncer.Reverify = 0
			r.now = start.Add(40 * time.Minute)
			r.mem.SetMissing(alice, true)
			rep, lookups, _ = r.pass(t)
			for _, m := range []string{alice, bob} {
				c := notFoundRow(t, rep, m)
				if c.Reason != smimesync.SkipNoRecipient || lookups[m] == 0 || c.Memoized {
					t.Fatalf("memos off then on: %s %s %q memoized %v, lookups %v", m, c.Action, c.Reason, c.Memoized, lookups)
				}
			}
			r.now = start.Add(period - time.Second)
			if rep, lookups, _ = r.pass(t); rep.Summary.Memoized != 2 || len(lookups) != 0 {
				t.Fatalf("the period's last second: %+v, lookups %v; want both from their memos", rep.Summary, lookups)
			}
			r.mem.SetMissing(alice, false)
			r.mem.SetMissing(bob, false)
			r.now = start.Add(period)
			rep, lookups, _ = r.pass(t)
			// Their mailboxes kept the certificates written in the first
			// pass: found again, they are unchanged.
			if s := rep.Summary; lookups[alice] == 0 || lookups[bob] == 0 || s.Skip != 0 || s.Memoized != 0 || s.Unchanged != 2 {
				t.Fatalf("the next period: %+v, lookups %v; want both asked about and found", rep.Summary, lookups)
			}
		})
	}
}

// TestMemoNotFoundEntryChanged: a change to the entry (a new address) is
// looked up at once, memo or not.
func TestMemoNotFoundEntryChanged(t *testing.T) {
	const alice = "alice@example.com"
	r := newMemoRig(t, &smimesync.MemoryState{})
	r.mem.SetMissing(alice, true)
	r.pass(t)
	r.users[0].ProxyAddresses = []string{"smtp:al@example.com"}
	r.rewrite(t)
	rep, lookups, _ := r.pass(t)
	if c := notFoundRow(t, rep, alice); c.Memoized || lookups[alice] == 0 {
		t.Errorf("changed entry: memoized %v, lookups %v; want it looked up", c.Memoized, lookups)
	}
}

// TestMemoNotFoundEveryPass: RecheckNotFoundEveryPass asks the sink on
// every pass, and a negative RecheckNotFound below it is refused.
func TestMemoNotFoundEveryPass(t *testing.T) {
	const alice = "alice@example.com"
	r := newMemoRig(t, &smimesync.MemoryState{})
	r.syncer.RecheckNotFound = smimesync.RecheckNotFoundEveryPass
	r.mem.SetMissing(alice, true)
	r.pass(t)
	rep, lookups, _ := r.pass(t)
	if c := notFoundRow(t, rep, alice); c.Memoized || lookups[alice] == 0 {
		t.Errorf("every pass: memoized %v, lookups %v; want alice looked up", c.Memoized, lookups)
	}
	if rep.Summary.Memoized != 1 {
		t.Errorf("every pass: %d memoized, want bob's 1", rep.Summary.Memoized)
	}

	r.syncer.RecheckNotFound = -2 * time.Second
	if _, err := r.syncer.Plan(context.Background()); !errors.Is(err, smimesync.ErrInvalidConfig) {
		t.Errorf("RecheckNotFound -2s: %v, want ErrInvalidConfig", err)
	}
}
