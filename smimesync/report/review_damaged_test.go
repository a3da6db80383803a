package report

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestDamagedRecordSkipped: one damaged entry record (a torn page, a bug,
// another release's record) does not keep the readers from the report
// (Summarize: `smimesync report`, the status page): it is skipped and
// counted, and the sink reads as not Complete, also after a full pass that
// read the entry unchanged (unlisted: no row; the keys-only walk does not
// decode the records it keeps).
func TestDamagedRecordSkipped(t *testing.T) {
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
	sum, err := st.Summarize(path, now, 30)
	if err != nil {
		t.Fatalf("one damaged record keeps Summarize from the report: %v", err)
	}
	if ss := sum.Sinks[0]; ss.Damaged != 1 || ss.Complete || ss.Users != 2 {
		t.Errorf("with one damaged record: damaged %d, complete %v, %d users; want 1, false, 2", ss.Damaged, ss.Complete, ss.Users)
	}
	var text strings.Builder
	if err := sum.WriteText(&text); err != nil || !strings.Contains(text.String(), "1 record of the report did not read") {
		t.Errorf("the text does not say a record was skipped (%v):\n%s", err, text.String())
	}
	if rep := full(); rep.UnlistedCount() != 3 {
		t.Fatalf("the second full pass: %d unlisted, want 3", rep.UnlistedCount())
	}
	sum, err = st.Summarize(path, now, 30)
	if err != nil {
		t.Fatalf("after a full pass that read every entry: %v", err)
	}
	if ss := sum.Sinks[0]; ss.Complete && ss.Users != 3 {
		t.Errorf("Complete with %d users; the pass read 3", ss.Users)
	}
}
