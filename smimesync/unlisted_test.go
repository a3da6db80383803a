package smimesync_test

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestUnlistedEntriesStay: a full pass that only counts its entries
// (unchanged on their memos) must neither forget their records nor take
// them for departures: the pass after it takes them on trust again, and
// nothing is written.
func TestUnlistedEntriesStay(t *testing.T) {
	r := newMemoRig(t, &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")})
	r.settle(t)
	for pass := 3; pass <= 4; pass++ {
		rep, lookups, judged := r.pass(t)
		if len(testrows.Of(t, rep)) != 0 || rep.Summary.Entries != 2 || rep.Summary.Unchanged != 2 || rep.Summary.Memoized != 2 ||
			rep.Summary.Departed != 0 || len(lookups) != 0 || len(judged) != 0 {
			t.Errorf("pass %d: %d rows %+v, lookups %v, judged %v; want both entries only counted", pass, len(testrows.Of(t, rep)), rep.Summary, lookups, judged)
		}
		for i, name := range []string{"alice", "bob"} {
			if u := user(i+1, name); !rep.Unlisted("", u.ID) {
				t.Errorf("pass %d: %s not unlisted", pass, name)
			}
		}
		if rep.Unlisted("", user(3, "carol").ID) {
			t.Errorf("pass %d: carol, never read, is unlisted", pass)
		}
	}
}

// TestUnlistedEntriesInAPlanFile: a saved plan keeps the entries it only
// counted, so that applying it does not forget their records.
func TestUnlistedEntriesInAPlanFile(t *testing.T) {
	ctx := context.Background()
	r := newMemoRig(t, &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")})
	r.settle(t)
	plan, err := r.syncer.PlanFull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if _, err := plan.WriteTo(&file); err != nil {
		t.Fatal(err)
	}
	_ = plan.Close()
	if !strings.Contains(file.String(), `"unlisted"`) {
		t.Fatalf("the plan file does not keep the unlisted entries:\n%s", file.String())
	}
	read, err := smimesync.ReadPlan(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !read.Unlisted("", user(1, "alice").ID) || read.Summary.Entries != 2 {
		t.Fatalf("plan read back: alice unlisted %v, summary %+v", read.Unlisted("", user(1, "alice").ID), read.Summary)
	}
	rep, err := r.syncer.Apply(ctx, read)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Entries != 2 || rep.Summary.Memoized != 2 {
		t.Errorf("report of the plan read back: %+v", rep.Summary)
	}
	r.sink.take()
	if rep, lookups, judged := r.pass(t); rep.Summary.Memoized != 2 || len(lookups)+len(judged) != 0 {
		t.Errorf("the pass after the plan file: %+v, lookups %v, judged %v: want both records kept, both memoized", rep.Summary, lookups, judged)
	}

	// A damaged list of keys is refused, even with a digest to match.
	damaged := bytes.Replace(file.Bytes(), []byte(`"keys": "`), []byte(`"keys": "AAAA`), 1)
	if _, err := smimesync.ReadPlan(bytes.NewReader(damaged)); err == nil {
		t.Error("a plan file with damaged unlisted keys was read")
	}
}

// TestUnlistedEntryKeepsItsRecipient: a newcomer whose recipient is an
// unlisted entry's is the one skipped as a conflict, naming that entry;
// the recipient keeps what it carries.
func TestUnlistedEntryKeepsItsRecipient(t *testing.T) {
	r := newMemoRig(t, &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")})
	r.settle(t)
	before, _ := r.mem.Get("alice@example.com")
	twin := user(10, "alice", r.ca.issue(t, leaf{email: "alice@example.com", key: 7}))
	r.users = append(r.users, twin)
	r.rewrite(t)
	rep, _, _ := r.pass(t)
	alice := user(1, "alice")
	if len(testrows.Of(t, rep)) != 1 || !rep.Unlisted("", alice.ID) {
		t.Fatalf("rows %d, alice unlisted %v; want one row, the twin's", len(testrows.Of(t, rep)), rep.Unlisted("", alice.ID))
	}
	c := testrows.Of(t, rep)[0]
	if c.ID != twin.ID || c.Action != smimesync.ActionSkip || c.Reason != smimesync.SkipConflict || !strings.Contains(c.Error, alice.ID) {
		t.Errorf("the twin's row: %s %s %q; want a conflict naming %s", c.Action, c.Reason, c.Error, alice.ID)
	}
	if after, _ := r.mem.Get("alice@example.com"); !reflect.DeepEqual(after, before) {
		t.Errorf("alice's recipient changed: %d values, was %d", after.Len(), before.Len())
	}
}
