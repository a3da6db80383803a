package report

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestFullPassHealsADamagedRecord: one damaged entry record makes every
// read of the store fail (Summarize: `smimesync report`, the status
// page). A full pass that reads the entry unchanged (unlisted: no row)
// must not leave it so, claiming the sink Complete: the walk does not
// decode the records it keeps, so the record stays until a delta happens
// to read the entry unchanged (touch drops it) or the entry gets a row
// again (its memo expires: Syncer.Reverify, up to a day); until then
// every read of the report fails.
func TestFullPassHealsADamagedRecord(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	sink := cloudtest.NewMemorySink()
	for i := range 3 {
		sink.Seed(fmt.Sprintf("u%d@example.com", i), cloud.Certificates{})
	}
	sy := &smimesync.Syncer{Source: usersSource(3), Sink: sink, State: &smimesync.MemoryState{},
		Now: func() time.Time { return now }, Policy: &smimesync.Policy{Now: func() time.Time { return now }}, PolicyVersion: "v1"}
	path := filepath.Join(t.TempDir(), "r.db")
	st, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	full := func() *smimesync.Report {
		t.Helper()
		now = now.Add(time.Hour)
		plan, err := sy.PlanFull(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := sy.Apply(ctx, plan)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Record("x", "run", rep, nil, now); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	full()
	// One record is damaged (a torn page, a bug, another release's record).
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSinks).Bucket([]byte("x")).Bucket(bucketEntries)
		k := entryKey("", "id-0")
		v := b.Get(k)
		if v == nil {
			return fmt.Errorf("no record for id-0")
		}
		bad := append(append([]byte{}, v[:recordHead]...), `{"id": "id-0", "not_a_field": 1}`...)
		return b.Put(k, bad)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Summarize(path, now, 30); err == nil {
		t.Fatal("the damaged record reads")
	}
	if rep := full(); rep.UnlistedCount() != 3 {
		t.Fatalf("the second full pass: %d unlisted, want 3", rep.UnlistedCount())
	}
	sum, err := st.Summarize(path, now, 30)
	if err != nil {
		t.Fatalf("after a full pass that read every entry: %v", err)
	}
	if ss := sum.Sinks[0]; ss.Complete && ss.Users != 3 {
		t.Errorf("Complete with %d users; the pass read 3", ss.Users)
	}
}
