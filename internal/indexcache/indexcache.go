// Package indexcache keeps one value that is expensive to load (a sink's
// index of every recipient of a tenant) for a while, and loads it at most
// once at a time for all its callers.
//
// [Cache.Get] answers from the value while it is younger than TTL. When
// there is none, the first caller starts a load and every caller that comes
// while it runs waits for that same load (the semantics of
// golang.org/x/sync/singleflight). A load that fails answers every Get with
// its error for ErrTTL, instead of being repeated by every caller: a
// refused token or a missing permission fails every lookup of a pass the
// same way.
//
// The load runs on a context of its own, which keeps the first caller's
// values but not its deadline or cancellation: a caller that gives up
// returns its own ctx.Err() at once and leaves the load running for the
// others. Only when every caller waiting for a load has given up is the
// load cancelled; a load that ends that way is not remembered, and the
// next Get starts a new one.
package indexcache

import (
	"context"
	"sync"
	"time"
)

// Cache holds a value of type T loaded by Load. Set Load before the first
// Get; the other fields have working zero values. A Cache must not be
// copied after first use. Its methods are safe for concurrent use.
type Cache[T any] struct {
	// Load reads the value. It runs in a goroutine of its own, on a
	// context that carries the first caller's values and is cancelled
	// only when no caller is waiting for it any more.
	Load func(ctx context.Context) (T, error)
	// Commit, when not nil, is called with each value Load returned
	// without error, with Lock held, before any caller sees the value.
	// It lets the owner change data of its own together with the value
	// (Graph's sink merges the listed users into what it knows of them).
	Commit func(T)
	// Lock guards the cache's state; nil means a mutex of the cache's
	// own. Give the owner's mutex that guards what Commit changes, so that
	// the new value and Commit's changes are seen together. Get and the
	// load's end take it briefly; it is not held while Load runs.
	Lock sync.Locker
	// TTL is how long a loaded value answers Get, counted from the start
	// of its load (the value is at least that fresh). Zero means every Get
	// loads anew.
	TTL time.Duration
	// ErrTTL is how long a failed load's error answers Get, counted from
	// the load's end. Zero means a failure is not remembered.
	ErrTTL time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu    sync.Mutex // used when Lock is nil
	val   T
	ok    bool      // val holds a loaded value
	at    time.Time // when val's load started
	err   error     // the last load's failure, if it failed
	errAt time.Time // when that load ended
	call  *call[T]  // the load in progress; nil when none
}

// call is one load and the callers waiting for it.
type call[T any] struct {
	done    chan struct{} // closed when val and err are set
	val     T
	err     error
	waiters int
	cancel  context.CancelFunc
}

func (c *Cache[T]) lock() sync.Locker {
	if c.Lock != nil {
		return c.Lock
	}
	return &c.mu
}

func (c *Cache[T]) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Get returns the value, loading it when it is older than TTL, or the
// error of a load that failed within ErrTTL. When ctx ends before the
// load does, Get returns ctx.Err() and the load goes on for the other
// callers, if any.
func (c *Cache[T]) Get(ctx context.Context) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	l := c.lock()
	l.Lock()
	now := c.now()
	if c.ok && now.Sub(c.at) < c.TTL {
		v := c.val
		l.Unlock()
		return v, nil
	}
	if c.err != nil && now.Sub(c.errAt) < c.ErrTTL {
		err := c.err
		l.Unlock()
		return zero, err
	}
	cl := c.call
	if cl == nil {
		lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cl = &call[T]{done: make(chan struct{}), cancel: cancel}
		c.call = cl
		go c.run(lctx, cl)
	}
	cl.waiters++
	l.Unlock()

	select {
	case <-cl.done:
		return cl.val, cl.err
	case <-ctx.Done():
		l.Lock()
		cl.waiters--
		if cl.waiters == 0 && c.call == cl {
			// Nobody waits for this load any more: stop it, and let the
			// next Get start afresh rather than join a cancelled load.
			c.call = nil
			cl.cancel()
		}
		l.Unlock()
		return zero, ctx.Err()
	}
}

// run loads the value for cl and records the outcome.
func (c *Cache[T]) run(ctx context.Context, cl *call[T]) {
	defer cl.cancel()
	start := c.now()
	v, err := c.Load(ctx)
	l := c.lock()
	l.Lock()
	if c.call == cl {
		c.call = nil
	}
	switch {
	case ctx.Err() != nil:
		// Every caller gave up: the failure is theirs, not the
		// service's, and is not remembered. A value that came anyway is
		// kept.
		if err == nil {
			c.store(v, start)
		}
	case err == nil:
		c.store(v, start)
	default:
		c.err, c.errAt = err, c.now()
	}
	cl.val, cl.err = v, err
	l.Unlock()
	close(cl.done)
}

// store records a loaded value; the caller holds the lock.
func (c *Cache[T]) store(v T, start time.Time) {
	c.val, c.ok, c.at, c.err = v, true, start, nil
	if c.Commit != nil {
		c.Commit(v)
	}
}
