package smimesync_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// entriesSource yields n entries without certificates.
type entriesSource int

func (n entriesSource) Read(ctx context.Context, p directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	for i := range int(n) {
		e := &directory.Entry{ID: fmt.Sprintf("id-%d", i), DN: fmt.Sprintf("CN=u%d,DC=example,DC=com", i), Mail: fmt.Sprintf("u%d@example.com", i)}
		if err := yield(e); err != nil {
			return directory.Result{}, err
		}
	}
	return directory.Result{Full: true}, nil
}

// countingSink counts the Find calls in flight and keeps the highest
// count. Each call waits until want calls have been in flight at once (or
// a second has passed), then a little longer, so that a Syncer with more
// workers than want shows them too.
type countingSink struct {
	cloud.Sink
	want, hint int

	mu       sync.Mutex
	inFlight int
	max      int
}

func (s *countingSink) Find(ctx context.Context, e *directory.Entry) (*cloud.Recipient, error) {
	s.mu.Lock()
	s.inFlight++
	s.max = max(s.max, s.inFlight)
	s.mu.Unlock()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		reached := s.max >= s.want
		s.mu.Unlock()
		if reached {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
	return s.Sink.Find(ctx, e)
}

// hintingSink is a countingSink that states a preferred concurrency.
type hintingSink struct{ *countingSink }

func (s hintingSink) PreferredConcurrency() int { return s.hint }

// TestSyncerUsesTheSinksPreferredConcurrency: a Syncer whose Concurrency
// is 0 makes as many calls at once as its sink prefers (bounded by
// MaxConcurrency); its own Concurrency wins; a sink that states nothing,
// or 0, gets DefaultConcurrency.
func TestSyncerUsesTheSinksPreferredConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name       string
		own, hint  int
		hints      bool
		entries    int
		wantInOnce int
	}{
		{"no hint", 0, 0, false, 50, smimesync.DefaultConcurrency},
		{"hint 40", 0, 40, true, 100, 40},
		{"hint 3", 0, 3, true, 50, 3},
		{"hint 0 means the default", 0, 0, true, 50, smimesync.DefaultConcurrency},
		{"own concurrency wins", 5, 40, true, 50, 5},
		{"hint bounded", 0, 100000, true, smimesync.MaxConcurrency + 40, smimesync.MaxConcurrency},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := &countingSink{Sink: cloudtest.NewMemorySink(), want: tc.wantInOnce, hint: tc.hint}
			var sink cloud.Sink = cs
			if tc.hints {
				sink = hintingSink{cs}
			}
			s := &smimesync.Syncer{Source: entriesSource(tc.entries), Sink: sink, Concurrency: tc.own}
			if _, err := s.Plan(context.Background()); err != nil {
				t.Fatal(err)
			}
			if cs.max != tc.wantInOnce {
				t.Errorf("%d Find calls at once, want %d", cs.max, tc.wantInOnce)
			}
		})
	}
}
