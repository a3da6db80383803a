package smimesync_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// refusingSink is a MemorySink whose service has become unusable: Prepare
// and Find or Write fail with a run-wide error, as they are told.
type refusingSink struct {
	*cloudtest.MemorySink
	prepare, find, write error
	finds, writes        atomic.Int32
	prepared             atomic.Int32
}

func (s *refusingSink) Prepare(context.Context) error { s.prepared.Add(1); return s.prepare }

func (s *refusingSink) Find(ctx context.Context, e *directory.Entry) (*cloud.Recipient, error) {
	s.finds.Add(1)
	if s.find != nil {
		return nil, s.find
	}
	return s.MemorySink.Find(ctx, e)
}

func (s *refusingSink) Write(ctx context.Context, r *cloud.Recipient, c cloud.Certificates) error {
	s.writes.Add(1)
	if s.write != nil {
		return s.write
	}
	return s.MemorySink.Write(ctx, r, c)
}

// TestPreparedEveryPass: the Syncer asks a cloud.Preparer to get ready at
// the start of every plan, even when the directory is empty, and a refusal
// fails the plan before the directory is read.
func TestPreparedEveryPass(t *testing.T) {
	refused := cloud.Unavailable(errors.New("sign-in refused: AADSTS7000215"))
	sink := &refusingSink{MemorySink: cloudtest.NewMemorySink(), prepare: refused}
	s := newSyncer(writeLDIF(t), sink, smimesync.FileState(filepath.Join(t.TempDir(), "state.json")))
	_, err := s.Plan(context.Background())
	if !errors.Is(err, cloud.ErrUnavailable) || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Fatalf("Plan = %v, want the refusal", err)
	}
	sink.prepare = nil
	if _, err := s.Plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := sink.prepared.Load(); n != 2 {
		t.Errorf("Prepare called %d times, want once a pass (2)", n)
	}
}

// TestRunWideFailureStopsThePass: a lookup or a write that fails with an
// error wrapping cloud.ErrUnavailable stops the pass and is reported once,
// not as every user's failure; the delta position does not move.
func TestRunWideFailureStopsThePass(t *testing.T) {
	ca := newTestCA(t, "CA")
	var entries []*directory.Entry
	for i := range 40 {
		name := "user" + string(rune('a'+i/10)) + string(rune('a'+i%10))
		entries = append(entries, user(i, name, ca.issue(t, leaf{email: name + "@example.com"})))
	}
	unreachable := cloud.Unavailable(errors.New("exchange: dial tcp 127.0.0.1:1: connection refused"))

	t.Run("plan", func(t *testing.T) {
		sink := &refusingSink{MemorySink: cloudtest.NewMemorySink(), find: unreachable}
		s := newSyncer(writeLDIF(t, entries...), sink, smimesync.FileState(filepath.Join(t.TempDir(), "state.json")))
		s.Concurrency = 4
		plan, err := s.Plan(context.Background())
		if plan != nil || !errors.Is(err, cloud.ErrUnavailable) || strings.Count(err.Error(), "connection refused") != 1 {
			t.Fatalf("Plan = %v, %v; want no plan and the failure once", plan, err)
		}
		if n := sink.finds.Load(); n > 8 {
			t.Errorf("%d lookups after the first run-wide failure, want the pass stopped", n)
		}
	})
	t.Run("apply", func(t *testing.T) {
		sink := &refusingSink{MemorySink: cloudtest.NewMemorySink(), write: unreachable}
		for _, e := range entries {
			sink.Seed(e.Mail, cloud.Certificates{})
		}
		st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
		s := newSyncer(writeLDIF(t, entries...), sink, st)
		s.Concurrency = 2
		plan, err := s.Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rep, err := s.Apply(context.Background(), plan)
		if !errors.Is(err, cloud.ErrUnavailable) {
			t.Fatalf("Apply = %v, want the run-wide failure", err)
		}
		if n := sink.writes.Load(); n > 4 {
			t.Errorf("%d writes tried, want the apply stopped after the first failures", n)
		}
		all := strings.Join(rep.Errors, "\n")
		if c := strings.Count(all, "connection refused"); c != 1 {
			t.Errorf("the failure is reported %d times, want once:\n%s", c, all)
		}
		if rep.CookieAdvanced {
			t.Error("the delta position moved after a stopped apply")
		}
	})
}
