package smimesync_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestMemoNotFoundForgottenWithItsEntry: a full pass that no longer reads
// an entry waiting for a recipient forgets it (Snapshot.Pending loses it,
// forgetUnseen); its memo goes with it. Otherwise the store keeps a memo
// for every user without a mailbox that ever left the directory's scope,
// for ever: a MemoState keeps "one memo per directory entry".
func TestMemoNotFoundForgottenWithItsEntry(t *testing.T) {
	const alice = "alice@example.com"
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	r := newMemoRig(t, st)
	r.mem.SetMissing(alice, true)
	r.pass(t)
	key := r.users[0].ID
	if _, ok, err := st.LookupMemo(context.Background(), key); err != nil || !ok {
		t.Fatalf("after the first pass: alice's memo %v, %v; want one", ok, err)
	}

	// Alice leaves the directory's scope (a full read no longer returns
	// her; nothing was ever published for her).
	r.users = r.users[1:]
	r.rewrite(t)
	rep, _, _ := r.pass(t)
	snap, err := st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, pending := snap.Pending[key]; pending || rep.Summary.Entries != 1 {
		t.Fatalf("after alice left: pending %v, %+v; want her forgotten", pending, rep.Summary)
	}
	if _, ok, err := st.LookupMemo(context.Background(), key); err != nil || ok {
		t.Errorf("after alice left the directory: her memo is still kept (%v, %v); want it dropped with her pending entry", ok, err)
	}
}
