package indexcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time for TTL tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestConcurrentCallersShareOneLoad(t *testing.T) {
	var loads atomic.Int32
	release := make(chan struct{})
	c := &Cache[int]{TTL: time.Hour, Load: func(ctx context.Context) (int, error) {
		n := loads.Add(1)
		<-release
		return int(n), nil
	}}
	const callers = 50
	var wg sync.WaitGroup
	got := make([]int, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { got[i], errs[i] = c.Get(context.Background()) })
	}
	// Let every caller reach the load before it ends.
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.call != nil && c.call.waiters == callers
	})
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
	for i := range callers {
		if errs[i] != nil || got[i] != 1 {
			t.Fatalf("caller %d: %d, %v; want 1, nil", i, got[i], errs[i])
		}
	}
	// A later call within the TTL answers from memory.
	if v, err := c.Get(context.Background()); v != 1 || err != nil || loads.Load() != 1 {
		t.Fatalf("cached Get: %d, %v after %d loads", v, err, loads.Load())
	}
}

func TestTTLExpiry(t *testing.T) {
	clk := &clock{t: time.Unix(1_000_000, 0)}
	var loads atomic.Int32
	c := &Cache[int]{TTL: 10 * time.Minute, Now: clk.now, Load: func(context.Context) (int, error) {
		return int(loads.Add(1)), nil
	}}
	get := func() int {
		t.Helper()
		v, err := c.Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := get(); v != 1 {
		t.Fatalf("first Get: %d", v)
	}
	clk.add(10*time.Minute - time.Second)
	if v := get(); v != 1 {
		t.Fatalf("Get within the TTL: %d, want the cached 1", v)
	}
	clk.add(time.Second)
	if v := get(); v != 2 {
		t.Fatalf("Get at the TTL: %d, want a new load (2)", v)
	}
}

func TestTTLCountsFromTheLoadsStart(t *testing.T) {
	clk := &clock{t: time.Unix(1_000_000, 0)}
	var loads atomic.Int32
	c := &Cache[int]{TTL: 10 * time.Minute, Now: clk.now, Load: func(context.Context) (int, error) {
		clk.add(4 * time.Minute) // a slow listing
		return int(loads.Add(1)), nil
	}}
	c.Get(context.Background())
	clk.add(6 * time.Minute) // 10 min after the load started
	if v, _ := c.Get(context.Background()); v != 2 {
		t.Fatalf("Get 10 min after the load started: %d, want a new load", v)
	}
}

func TestFailureRememberedForErrTTL(t *testing.T) {
	clk := &clock{t: time.Unix(1_000_000, 0)}
	refused := errors.New("403 Authorization_RequestDenied")
	var loads atomic.Int32
	fail := true
	c := &Cache[string]{TTL: time.Hour, ErrTTL: 30 * time.Second, Now: clk.now, Load: func(context.Context) (string, error) {
		loads.Add(1)
		if fail {
			return "", refused
		}
		return "index", nil
	}}
	for i := range 3 {
		if _, err := c.Get(context.Background()); !errors.Is(err, refused) {
			t.Fatalf("Get %d: %v, want the load's error", i, err)
		}
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads within ErrTTL, want 1", n)
	}
	fail = false
	clk.add(30 * time.Second)
	if v, err := c.Get(context.Background()); v != "index" || err != nil {
		t.Fatalf("Get after ErrTTL: %q, %v", v, err)
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}

func TestOneCallerGivingUpDoesNotCancelTheLoad(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var loadErr atomic.Value
	c := &Cache[int]{TTL: time.Hour, ErrTTL: time.Hour, Load: func(ctx context.Context) (int, error) {
		close(started)
		select {
		case <-release:
			return 7, nil
		case <-ctx.Done():
			loadErr.Store(ctx.Err())
			return 0, ctx.Err()
		}
	}}
	ctx1, cancel1 := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.Get(ctx1); first <- err }()
	<-started
	second := make(chan int, 1)
	go func() { v, _ := c.Get(context.Background()); second <- v }()
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.call.waiters == 2 })

	cancel1() // the caller that started the load gives up
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled caller got %v, want context.Canceled", err)
	}
	close(release)
	if v := <-second; v != 7 {
		t.Fatalf("the other caller got %d, want 7 from the shared load", v)
	}
	if e := loadErr.Load(); e != nil {
		t.Fatalf("the load was cancelled: %v", e)
	}
}

func TestLoadCancelledWhenEveryCallerGivesUp(t *testing.T) {
	var loads atomic.Int32
	cancelled := make(chan struct{})
	c := &Cache[int]{TTL: time.Hour, ErrTTL: time.Hour, Load: func(ctx context.Context) (int, error) {
		if loads.Add(1) == 1 {
			<-ctx.Done()
			close(cancelled)
			return 0, ctx.Err()
		}
		return 2, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Get(ctx); done <- err }()
	waitFor(t, func() bool { return loads.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get: %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the load went on with nobody waiting for it")
	}
	// The cancellation is not remembered as the tenant's failure.
	if v, err := c.Get(context.Background()); v != 2 || err != nil {
		t.Fatalf("Get after a cancelled load: %d, %v; want a new load", v, err)
	}
}

func TestLoadKeepsTheCallersValues(t *testing.T) {
	type key struct{}
	c := &Cache[string]{Load: func(ctx context.Context) (string, error) {
		s, _ := ctx.Value(key{}).(string)
		return s, nil
	}}
	ctx := context.WithValue(context.Background(), key{}, "trace-id")
	if v, _ := c.Get(ctx); v != "trace-id" {
		t.Fatalf("the load saw %q, want the caller's value", v)
	}
}

func TestCommitRunsUnderTheOwnersLock(t *testing.T) {
	var owner sync.Mutex
	var committed []int
	c := &Cache[int]{Lock: &owner, TTL: time.Hour, Load: func(context.Context) (int, error) { return 5, nil }}
	c.Commit = func(v int) {
		if owner.TryLock() {
			owner.Unlock()
			t.Error("Commit ran without the owner's lock")
		}
		committed = append(committed, v)
	}
	if v, err := c.Get(context.Background()); v != 5 || err != nil {
		t.Fatalf("Get: %d, %v", v, err)
	}
	owner.Lock()
	defer owner.Unlock()
	if len(committed) != 1 || committed[0] != 5 {
		t.Fatalf("committed %v, want [5]", committed)
	}
}

func TestCancelledContextReturnsAtOnce(t *testing.T) {
	c := &Cache[int]{Load: func(context.Context) (int, error) {
		t.Error("Load called for a cancelled caller")
		return 0, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
