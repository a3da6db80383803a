package smimesync_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestPlanFileRefusedAfterARecordedWrite: over a BoltState, a write
// recorded (by another process's apply that then died, before saving)
// after a plan was made and before it was written to a file leaves the
// generation as it was; the plan file must not vouch for that state,
// which the plan never read. WriteTo refuses, and so do CheckPlan and
// Apply of the plan itself.
func TestPlanFileRefusedAfterARecordedWrite(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	src := writeLDIF(t, user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})))
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	s := newSyncer(src, cloudtest.NewMemorySink(), st)
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	// Another process's apply recorded a write, and died before saving.
	if err := st.Record(ctx, "0f0e0d0c-0b0a-0908-0706-0504030201a1", smimesync.Published{Recipient: "alice@example.com", UserCertificate: []smimesync.Fingerprint{{9}}}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := plan.WriteTo(&buf); !errors.Is(err, smimesync.ErrStalePlan) {
		t.Errorf("WriteTo of a plan made before a recorded write: %v, want ErrStalePlan", err)
	}
	if err == nil {
		if read, err := smimesync.ReadPlan(&buf); err == nil {
			if err := s.CheckPlan(ctx, read); !errors.Is(err, smimesync.ErrStalePlan) {
				t.Errorf("CheckPlan of the plan file: %v, want ErrStalePlan", err)
			}
		}
	}
	if err := s.CheckPlan(ctx, plan); !errors.Is(err, smimesync.ErrStalePlan) {
		t.Errorf("CheckPlan of a plan made before a recorded write: %v, want ErrStalePlan", err)
	}
	if _, err := s.Apply(ctx, plan); !errors.Is(err, smimesync.ErrStalePlan) {
		t.Errorf("Apply of a plan made before a recorded write: %v, want ErrStalePlan", err)
	}

	// Planned again, the plan file is written, read and applied.
	plan, err = s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	buf.Reset()
	if _, err := plan.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	read, err := smimesync.ReadPlan(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, read); err != nil {
		t.Errorf("Apply of a plan file made after the recorded write: %v", err)
	}
}

// TestPlanFileRefusedAfterASaveOfTheSameGeneration: a MemoryState saved
// again between a plan and its WriteTo with a snapshot of an older
// generation comes back to the plan's generation with other records: the
// plan file must not vouch for them.
func TestPlanFileRefusedAfterASaveOfTheSameGeneration(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	src := writeLDIF(t, user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})))
	st := &smimesync.MemoryState{}
	s := newSyncer(src, cloudtest.NewMemorySink(), st)
	if _, err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	old, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old.Generation--
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	old.Published = map[string]smimesync.Published{}
	if err := st.Save(ctx, old); err != nil { // back to the plan's generation
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := plan.WriteTo(&buf); !errors.Is(err, smimesync.ErrStalePlan) {
		t.Errorf("WriteTo of a plan whose state was saved again at its generation: %v, want ErrStalePlan", err)
	}
}
