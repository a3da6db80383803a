package report

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// usersSource yields n users without certificates, a full read.
type usersSource int

func (n usersSource) Read(_ context.Context, _ directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	for i := range int(n) {
		e := &directory.Entry{ID: fmt.Sprintf("id-%d", i), DN: fmt.Sprintf("CN=u%d,DC=example,DC=com", i), Mail: fmt.Sprintf("u%d@example.com", i)}
		if err := yield(e); err != nil {
			return directory.Result{}, err
		}
	}
	return directory.Result{Full: true}, nil
}

// TestCompleteWithUnlistedEntriesItNeverSaw: a full pass whose entries are
// all unlisted (unchanged on their memos: no rows) merged into a sink that
// has no word on them yet (a new report file, one set aside as .bad, or
// passes that were not recorded) must not claim the sink Complete with
// none of them in Entries: Complete says Entries covers every entry in
// scope, and Users, Expiring, NoUsable are counted from them.
func TestCompleteWithUnlistedEntriesItNeverSaw(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	sink := cloudtest.NewMemorySink()
	for i := range 3 {
		sink.Seed(fmt.Sprintf("u%d@example.com", i), cloud.Certificates{})
	}
	s := &smimesync.Syncer{Source: usersSource(3), Sink: sink, State: &smimesync.MemoryState{},
		Now: func() time.Time { return now }, Policy: &smimesync.Policy{Now: func() time.Time { return now }}, PolicyVersion: "v1"}
	var rep *smimesync.Report
	for range 2 {
		plan, err := s.PlanFull(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err = s.Apply(ctx, plan); err != nil {
			t.Fatal(err)
		}
	}
	if rep.Summary.Entries != 3 || rep.Summary.Memoized != 3 || !rep.Unlisted("", "id-0") {
		t.Fatalf("second pass: %+v; want the three entries unlisted", rep.Summary)
	}
	fresh := &Sink{Sink: "x"}
	fresh.merge("run", rep, nil, now)
	if fresh.Complete && len(fresh.Entries) != 3 {
		t.Errorf("the sink is Complete with %d entries; the full pass read 3", len(fresh.Entries))
	}
}
