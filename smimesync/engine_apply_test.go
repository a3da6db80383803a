package smimesync_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// threeUsers is a source of three users with a valid certificate each.
func threeUsers(t *testing.T) *directory.LDIFFile {
	t.Helper()
	ca := newTestCA(t, "CA")
	return writeLDIF(t,
		user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})),
		user(2, "bob", ca.issue(t, leaf{email: "bob@example.com"})),
		user(3, "carol", ca.issue(t, leaf{email: "carol@example.com"})),
	)
}

// TestApplyTakesTheLock: Apply takes a Locker state's lock itself, and
// writes nothing when another holder has it; a Syncer that holds the
// lock through Syncer.Lock applies without taking it twice.
func TestApplyTakesTheLock(t *testing.T) {
	ctx := context.Background()
	src := threeUsers(t)
	sink := cloudtest.NewMemorySink()
	st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	s := newSyncer(src, sink, st)

	other, err := st.Lock() // another instance
	if err != nil {
		t.Fatal(err)
	}
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, plan); !errors.Is(err, smimesync.ErrLocked) {
		t.Fatalf("Apply with the state locked elsewhere: %v, want ErrLocked", err)
	}
	if n := len(sink.Writes()); n != 0 {
		t.Fatalf("%d writes while another instance held the lock", n)
	}
	other()

	// The plan was not used up: applied now, it writes.
	unlock, err := s.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lock(); !errors.Is(err, smimesync.ErrLocked) {
		t.Errorf("Syncer.Lock does not hold the state's lock: %v", err)
	}
	if rep, err := s.Apply(ctx, plan); err != nil || rep.Summary.Written != 3 {
		t.Fatalf("Apply while the Syncer holds the lock: %v, %+v", err, rep)
	}
	if _, err := st.Lock(); !errors.Is(err, smimesync.ErrLocked) {
		t.Errorf("Apply let go of the lock Syncer.Lock holds: %v", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	u, err := st.Lock()
	if err != nil {
		t.Fatalf("lock still held after unlock: %v", err)
	}
	u()
}

// blockingSink holds each write until released (or its context ends).
type blockingSink struct {
	*cloudtest.MemorySink
	started chan string
	release chan struct{}
}

func (b *blockingSink) Write(ctx context.Context, r *cloud.Recipient, c cloud.Certificates) error {
	b.started <- r.ID
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return b.MemorySink.Write(ctx, r, c)
}

// TestApplyWriteGrace: when Apply's context ends, no write starts; the
// write in flight finishes within WriteGrace and is recorded, or is
// abandoned at once without one. Every change is told to OnChange once.
func TestApplyWriteGrace(t *testing.T) {
	for _, tt := range []struct {
		name    string
		grace   time.Duration
		written int
	}{
		{"in-flight write finishes within the grace", 10 * time.Second, 1},
		{"no grace: abandoned at once", 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := threeUsers(t)
			sink := &blockingSink{MemorySink: cloudtest.NewMemorySink(), started: make(chan string, 3), release: make(chan struct{})}
			st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
			s := newSyncer(src, sink, st)
			s.Concurrency = 1
			s.WriteGrace = tt.grace
			var (
				mu   sync.Mutex
				told = map[string]int{}
			)
			s.OnChange = func(c *smimesync.Change) {
				mu.Lock()
				defer mu.Unlock()
				told[c.User]++
				if c.Writes() && c.Outcome == "" {
					t.Errorf("OnChange(%s) before its outcome", c.User)
				}
			}
			plan, err := s.Plan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			var rep *smimesync.Report
			go func() { defer close(done); rep, err = s.Apply(ctx, plan) }()
			<-sink.started
			cancel()
			time.Sleep(50 * time.Millisecond)
			close(sink.release)
			<-done
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Apply after a cancel: %v, want context.Canceled", err)
			}
			if rep == nil || rep.Summary.Written != tt.written || rep.Summary.Failed != 3-tt.written || rep.CookieAdvanced {
				t.Fatalf("report: %+v", rep)
			}
			if n := len(sink.Writes()); n > 1 {
				t.Errorf("%d writes reached the sink after the cancel, want at most the one in flight", n)
			}
			snap, err := st.Load(context.Background())
			if err != nil || len(snap.Published) != tt.written || !snap.LastFull.IsZero() {
				t.Errorf("state: %d published (want %d), last full %v (want none: the pass stopped), %v", len(snap.Published), tt.written, snap.LastFull, err)
			}
			for _, u := range []string{"alice@example.com", "bob@example.com", "carol@example.com"} {
				if told[u] != 1 {
					t.Errorf("OnChange told about %s %d times, want 1", u, told[u])
				}
			}
		})
	}
}

// TestSnapshotLastFull: a full pass applied whole records its time in the
// state, so that a service that restarts keeps its cadence; a full pass
// stopped by a cancel does not (see TestApplyWriteGrace).
func TestSnapshotLastFull(t *testing.T) {
	ctx := context.Background()
	st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	now := testNow
	s := newSyncer(threeUsers(t), cloudtest.NewMemorySink(), st)
	s.Now = func() time.Time { return now }
	for _, at := range []time.Time{testNow, testNow.Add(time.Hour)} {
		now = at
		plan, err := s.PlanFull(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(ctx, plan); err != nil {
			t.Fatal(err)
		}
		snap, err := st.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !snap.LastFull.Equal(at) {
			t.Errorf("last full %v, want %v", snap.LastFull, at)
		}
	}
}
