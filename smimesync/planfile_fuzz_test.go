package smimesync_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// FuzzReadPlan: whatever a plan file holds, ReadPlan returns a plan whose
// rows read back and add up to its summary, or an error wrapping
// ErrPlanFile (ErrSpill when the temporary file failed); never a panic.
func FuzzReadPlan(f *testing.F) {
	ctx := context.Background()
	ca := newTestCA(f, "CA")
	src := writeLDIF(f,
		user(1, "alice", ca.issue(f, leaf{email: "alice@example.com"})),
		user(2, "bob", ca.issue(f, leaf{email: "bob@example.com", key: 1}), ca.issue(f, leaf{email: "carol@example.com", key: 2})),
		user(3, "carol"))
	sink := cloudtest.NewMemorySink()
	sink.SetMissing("carol@example.com", true)
	plan, err := newSyncer(src, sink, &smimesync.MemoryState{}).Plan(ctx)
	if err != nil {
		f.Fatal(err)
	}
	var file bytes.Buffer
	if _, err := plan.WriteTo(&file); err != nil {
		f.Fatal(err)
	}
	plan.Close()
	f.Add(file.Bytes())
	f.Add([]byte(`{"format": "smimesync-plan", "version": 1, "changes": [], "sha256": ""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := smimesync.ReadPlan(bytes.NewReader(data))
		if err != nil {
			if p != nil || (!errors.Is(err, smimesync.ErrPlanFile) && !errors.Is(err, smimesync.ErrSpill)) {
				t.Fatalf("ReadPlan: %v (plan %v)", err, p != nil)
			}
			return
		}
		defer p.Close()
		rows, err := p.CollectRows()
		if err != nil {
			t.Fatalf("the rows of a plan read: %v", err)
		}
		if len(rows) > p.Summary.Entries {
			t.Fatalf("%d rows, a summary of %d entries", len(rows), p.Summary.Entries)
		}
	})
}
