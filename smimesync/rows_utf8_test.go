package smimesync_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/testrows"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestRowsKeepIDBytes: a plan's rows go through its temporary file as
// JSON, which turns bytes that are not UTF-8 into U+FFFD. An entry whose
// ID is not UTF-8 (an LDIF "dn::" in Latin-1 with no objectGUID or
// entryUUID: the ID is the DN; any Source) must keep its ID: its row, and
// the record Apply saves under its state key, name the entry the source
// gave, or the next pass finds no record for it (and a full pass forgets
// the record saved under the mangled key).
func TestRowsKeepIDBytes(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	e := user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"}))
	e.ID = "CN=Ren\xe9e,OU=Staff,DC=example,DC=com" // Latin-1 é
	e.DN = e.ID
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	s := newSyncer(sliceSource([]*directory.Entry{e}), cloudtest.NewMemorySink(), st)
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows := testrows.Of(t, plan)
	if len(rows) != 1 || rows[0].ID != e.ID {
		t.Errorf("the plan's row names ID %q, the source gave %q", rows[0].ID, e.ID)
	}
	rep, err := s.Apply(ctx, plan)
	if err != nil || rep.Summary.Written != 1 {
		t.Fatalf("Apply: %v, %+v", err, rep.Summary)
	}
	saved, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := saved.Published[e.ID]; !ok {
		t.Errorf("no record under the entry's ID %q; the state holds %q", e.ID, keysOf(saved.Published))
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
