package smimesync_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// lockProbeSink is a MemorySink whose Prepare (the first thing a Plan
// does) tries to take the lock of the store at path, as a second instance
// would.
type lockProbeSink struct {
	*cloudtest.MemorySink
	path   string
	probes []error
}

func (s *lockProbeSink) Prepare(context.Context) error {
	unlock, err := (&smimesync.BoltState{Path: s.path}).Lock()
	if err == nil {
		unlock()
	}
	s.probes = append(s.probes, err)
	return nil
}

// TestRunHoldsTheStoreOpen: Run over a BoltState takes its lock before it
// plans and keeps it through the apply (the store is opened once a pass),
// so a second instance is refused from the start; Plan alone takes no
// lock before it reads the state.
func TestRunHoldsTheStoreOpen(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	src := writeLDIF(t, user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})))
	path := filepath.Join(t.TempDir(), "state.db")
	sink := &lockProbeSink{MemorySink: cloudtest.NewMemorySink(), path: path}
	s := newSyncer(src, sink, &smimesync.BoltState{Path: path})
	rep, err := s.Run(ctx)
	if err != nil || rep.Summary.Written != 1 {
		t.Fatalf("Run: %v, %+v", err, rep)
	}
	if len(sink.probes) != 1 || !errors.Is(sink.probes[0], smimesync.ErrLocked) {
		t.Errorf("a second instance's Lock during Run's plan: %v, want ErrLocked", sink.probes)
	}
	if _, err := s.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	if len(sink.probes) != 2 || sink.probes[1] != nil {
		t.Errorf("a second instance's Lock during a Plan alone: %v, want nil", sink.probes)
	}
	// The lock is released when Run returns.
	unlock, err := (&smimesync.BoltState{Path: path}).Lock()
	if err != nil {
		t.Fatalf("Lock after Run: %v", err)
	}
	unlock()
}
