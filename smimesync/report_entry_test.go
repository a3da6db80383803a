package smimesync_test

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestReportRowsWithoutEntries: the report's row of an entry waiting for
// a recipient does not carry the entry (only a row to prune needs it;
// TestSyncerPrune), while the state keeps it to plan it again: after the
// pass that judged it, and after one that took it on trust from its memo.
func TestReportRowsWithoutEntries(t *testing.T) {
	const alice = "alice@example.com"
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	r := newMemoRig(t, st)
	r.now = testNow.Truncate(smimesync.DefaultRecheckNotFound).Add(10 * time.Minute)
	r.mem.SetMissing(alice, true)
	for pass, memoized := range []bool{false, true} {
		rep, _, _ := r.pass(t)
		c := notFoundRow(t, rep, alice)
		if c.Reason != smimesync.SkipNoRecipient || c.Memoized != memoized {
			t.Fatalf("pass %d: alice %s %q memoized %v", pass, c.Action, c.Reason, c.Memoized)
		}
		if e := smimesync.RowEntry(c); e != nil {
			t.Errorf("pass %d: the report's row of alice carries her entry", pass)
		}
		saved, err := st.Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if e := saved.Pending[r.users[0].ID]; e == nil || !reflect.DeepEqual(e.UserCertificate, r.users[0].UserCertificate) {
			t.Errorf("pass %d: the state's pending entry of alice: %+v", pass, e)
		}
		r.now = r.now.Add(10 * time.Minute)
	}
}
