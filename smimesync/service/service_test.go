package service_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// deltaSource yields its entries; a pass with a cookie is a delta (the same
// entries), one without is full.
type deltaSource struct{ entries []*directory.Entry }

func (d *deltaSource) Read(ctx context.Context, p directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	for _, e := range d.entries {
		if err := yield(e); err != nil {
			return directory.Result{}, err
		}
	}
	return directory.Result{Cookie: []byte("cookie"), Full: p.Cookie == nil}, nil
}

// alice has no certificate in the directory and one in the cloud: every
// pass that reads her removes it, one write.
func alice(sink *cloudtest.MemorySink) *deltaSource {
	sink.Seed("alice@example.com", cloud.Certificates{UserCertificate: [][]byte{[]byte("old")}})
	return &deltaSource{entries: []*directory.Entry{{ID: "1", DN: "CN=Alice", Mail: "alice@example.com"}}}
}

// TestServiceFullCadenceSurvivesRestart: the full-pass schedule is read
// from the state (Snapshot.LastFull), so that a new Service on the same
// state keeps it.
func TestServiceFullCadenceSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	sink := cloudtest.NewMemorySink()
	src := alice(sink)
	st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, step := range []struct {
		after time.Duration
		want  service.Kind
	}{
		{0, service.KindFull},                 // no record: full
		{10 * time.Minute, service.KindDelta}, // a new service, 10 minutes on
		{2 * time.Hour, service.KindFull},     // past FullEvery
		{2*time.Hour + time.Minute, service.KindDelta},
	} {
		now := t0.Add(step.after)
		var got []service.PassResult
		svc := &service.Service{
			Syncers:   []service.Named{{Name: "mem", Syncer: &smimesync.Syncer{Source: src, Sink: sink, State: st, Now: func() time.Time { return now }}}},
			FullEvery: time.Hour,
			Now:       func() time.Time { return now },
			OnPass:    func(r service.PassResult) { got = append(got, r) },
		}
		if err := svc.Once(ctx); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Kind != step.want || got[0].Result != service.ResultOK {
			t.Fatalf("at +%v: passes %+v, want one %s pass", step.after, got, step.want)
		}
	}
}

// blockingSink holds each write until released, or until its context ends.
type blockingSink struct {
	*cloudtest.MemorySink
	writing chan struct{}
	release chan struct{}
}

func (b *blockingSink) Write(ctx context.Context, r *cloud.Recipient, c cloud.Certificates) error {
	close(b.writing)
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return b.MemorySink.Write(ctx, r, c)
}

// TestServiceStopDuringWrite stops the service while a write is in flight:
// within the Syncer's WriteGrace the write finishes and is recorded; past
// it, the write is abandoned, and the state is still saved (without
// advancing the delta position). Run returns nil and lets go of the lock.
func TestServiceStopDuringWrite(t *testing.T) {
	for _, tt := range []struct {
		name    string
		grace   time.Duration
		finish  bool
		result  service.Result
		outcome smimesync.Outcome
	}{
		{"finishes within the grace period", 10 * time.Second, true, service.ResultOK, smimesync.OutcomeWritten},
		{"abandoned after the grace period", 50 * time.Millisecond, false, service.ResultCancelled, smimesync.OutcomeFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mem := cloudtest.NewMemorySink()
			src := alice(mem)
			sink := &blockingSink{MemorySink: mem, writing: make(chan struct{}), release: make(chan struct{})}
			st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
			passes := make(chan service.PassResult, 1)
			svc := &service.Service{
				Syncers:  []service.Named{{Name: "slow", Syncer: &smimesync.Syncer{Source: src, Sink: sink, State: st, WriteGrace: tt.grace}}},
				Interval: time.Hour,
				OnPass:   func(r service.PassResult) { passes <- r },
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- svc.Run(ctx) }()
			select {
			case <-sink.writing:
			case <-time.After(15 * time.Second):
				t.Fatal("no write started")
			}
			cancel()
			if tt.finish {
				time.Sleep(50 * time.Millisecond)
				close(sink.release)
			}
			r := <-passes
			if err := <-done; err != nil {
				t.Fatalf("Run after a stop: %v, want nil", err)
			}
			if r.Result != tt.result || r.Report == nil || testrows.Of(t, r.Report)[0].Outcome != tt.outcome {
				t.Fatalf("pass: %+v, want %s with Alice %s", r, tt.result, tt.outcome)
			}
			if tt.result == service.ResultCancelled && (!errors.Is(r.Err, context.Canceled) || r.Code != service.CodeCancelled) {
				t.Errorf("pass error %v, code %q", r.Err, r.Code)
			}
			snap, err := st.Load(context.Background())
			if err != nil || snap.LastRun.IsZero() {
				t.Fatalf("state not saved: %+v, %v", snap, err)
			}
			if _, published := snap.Published["1"]; published != tt.finish || (snap.Cookie != nil) != tt.finish {
				t.Errorf("state: Alice published %v, cookie %q; want published and the cookie moved %v", published, snap.Cookie, tt.finish)
			}
			unlock, err := st.Lock()
			if err != nil {
				t.Fatalf("the lock is still held after Run returned: %v", err)
			}
			unlock()
		})
	}
}

// TestRunRefusesSecondInstance: Run takes every state's lock before
// anything else, and refuses to start when another instance has one.
func TestRunRefusesSecondInstance(t *testing.T) {
	sink := cloudtest.NewMemorySink()
	st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	unlock, err := st.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	svc := &service.Service{Syncers: []service.Named{{Name: "mem", Syncer: &smimesync.Syncer{Source: alice(sink), Sink: sink, State: st}}}}
	if err := svc.Run(context.Background()); !errors.Is(err, smimesync.ErrLocked) {
		t.Fatalf("Run with the state locked elsewhere: %v, want ErrLocked", err)
	}
	if n := len(sink.Writes()); n != 0 {
		t.Errorf("%d writes by the refused instance", n)
	}
}

// TestOnPassBeforeHealth: the OnPass hooks (the status page records the
// pass in its report there) run before Health reports the pass, so that
// whoever sees /healthz report it finds what it did.
func TestOnPassBeforeHealth(t *testing.T) {
	sink := cloudtest.NewMemorySink()
	var svc *service.Service
	var during service.Health
	called := false
	svc = &service.Service{
		Syncers: []service.Named{{Name: "mem", Syncer: &smimesync.Syncer{Source: alice(sink), Sink: sink, State: &smimesync.MemoryState{}}}},
		OnPass: func(r service.PassResult) {
			called = true
			during = svc.Health()
			if r.Report != nil {
				r.Report.Close()
			}
		},
	}
	if err := svc.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !called {
		t.Fatal("OnPass not called")
	}
	if len(during.Sinks) != 1 || !during.Sinks[0].LastPass.IsZero() || during.Status == service.StatusOK {
		t.Errorf("Health during OnPass: %+v; want the pass not reported yet", during)
	}
	if after := svc.Health(); len(after.Sinks) != 1 || after.Sinks[0].LastPass.IsZero() || after.Status != service.StatusOK {
		t.Errorf("Health after the pass: %+v; want it reported, ok", after)
	}
}
