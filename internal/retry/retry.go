// Package retry holds what the Exchange Online and Microsoft Graph sinks
// share when they retry calls: waiting under a context, reading a
// Retry-After header, jittered exponential backoff, and a gate that holds
// every worker back while the service throttles.
package retry

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Sleep waits for d, or returns ctx's error when ctx ends first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// After parses a Retry-After value: seconds (a fraction allowed) or an
// HTTP date (a past one gives 0). ok is false when there is none, or it is
// negative, not a number or infinite.
func After(v string) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t)), true
	}
	return 0, false
}

// Backoff returns the jittered exponential wait before attempt n (1 for
// the first retry): a random time between half and all of
// min(limit, base·2^(n-1)).
func Backoff(base, limit time.Duration, n int) time.Duration {
	d := limit
	if n < 31 {
		if e := base << (n - 1); e > 0 && e < limit {
			d = e
		}
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// Gate holds calls back until a time the service named (a Retry-After),
// so that one 429 pauses every worker instead of each finding out on its
// own. Its zero value is open.
type Gate struct {
	mu    sync.Mutex
	until time.Time
}

// Hold keeps the gate shut until t (or longer, if it already is).
func (g *Gate) Hold(t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.After(g.until) {
		g.until = t
	}
}

// Remaining returns how long the gate stays shut after now.
func (g *Gate) Remaining(now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.until.Sub(now)
}

// Wait returns when the gate is open, or with ctx's error.
func (g *Gate) Wait(ctx context.Context) error {
	for {
		d := g.Remaining(time.Now())
		if d <= 0 {
			return nil
		}
		if err := Sleep(ctx, d); err != nil {
			return err
		}
	}
}

// DialTries bounds the attempts of one call whose connection is refused or
// cannot be routed (see [Unreachable]), the first included. A service that
// throttles answers 429 or 503; a refused connection means nothing listens
// at the endpoint (a wrong host or port, a proxy or firewall in the way),
// which another minute of backoff does not mend. Three tries (about
// Base+2·Base of waiting) ride out a load balancer or proxy restarting.
const DialTries = 3

// Unreachable reports whether err is a failure to open a connection at
// all: refused, no route to the host or network. A DNS failure or a
// timeout is not counted here.
func Unreachable(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}
