package graphtest

import (
	"math"
	"strconv"
	"time"
)

// scaledClock measures emulated time: wall time since start, times scale.
type scaledClock struct {
	start time.Time
	scale float64
}

func newScaledClock(scale float64) *scaledClock {
	if scale <= 0 {
		scale = 1
	}
	return &scaledClock{start: time.Now(), scale: scale}
}

func (c *scaledClock) now() time.Duration {
	return time.Duration(float64(time.Since(c.start)) * c.scale)
}

// retryAfter formats an emulated wait as the Retry-After header value in
// wall-clock seconds: whole seconds, rounded up, when the clock is not
// scaled (as the service sends them); with three decimals otherwise, at
// least one millisecond.
func (c *scaledClock) retryAfter(d time.Duration) string {
	real := d.Seconds() / c.scale
	if c.scale == 1 {
		return strconv.Itoa(int(math.Max(1, math.Ceil(real))))
	}
	return strconv.FormatFloat(math.Max(0.001, real), 'f', 3, 64)
}

// window is a sliding-window limit: at most budget events in any span of
// length size (emulated time). The emulator's choice: Microsoft documents
// the budget ("3,000 writes per 150 s") but not whether the window slides
// or is fixed; a sliding window is the stricter reading.
type window struct {
	budget int
	size   time.Duration
	events []time.Duration // ring buffer of the last budget events
	head   int             // index of the oldest event when full
}

func newWindow(budget int, size time.Duration) *window {
	return &window{budget: budget, size: size}
}

// wait returns how long (emulated) until one more event fits at now; zero
// when it fits now.
func (w *window) wait(now time.Duration) time.Duration {
	if w.budget < 0 {
		return 0
	}
	if w.budget == 0 {
		return w.size
	}
	if len(w.events) < w.budget {
		return 0
	}
	oldest := w.events[w.head]
	if now-oldest >= w.size {
		return 0
	}
	return oldest + w.size - now
}

// add records an event at now. Call it only after wait returned zero.
func (w *window) add(now time.Duration) {
	if w.budget <= 0 {
		return
	}
	if len(w.events) < w.budget {
		w.events = append(w.events, now)
		return
	}
	w.events[w.head] = now
	w.head = (w.head + 1) % w.budget
}

// throttleWrite charges one write to the app's and the tenant's budgets.
// It returns zero when the write may go ahead, or the emulated wait after
// which it would. Callers hold s.mu.
func (s *Server) throttleWrite(tenant, app string) time.Duration {
	now := s.clock.now()
	aw := s.appLim[tenant+"/"+app]
	if aw == nil {
		budget, size := s.cfg.WriteBudget, s.cfg.WriteWindow
		if budget == 0 {
			budget = DefaultWriteBudget
		}
		if size <= 0 {
			size = DefaultWriteWindow
		}
		aw = newWindow(budget, size)
		s.appLim[tenant+"/"+app] = aw
	}
	tw := s.tenLim[tenant]
	if tw == nil {
		budget, size := s.cfg.TenantWriteBudget, s.cfg.TenantWriteWindow
		if budget == 0 {
			budget = DefaultTenantWriteBudget
		}
		if size <= 0 {
			size = DefaultTenantWriteWindow
		}
		tw = newWindow(budget, size)
		s.tenLim[tenant] = tw
	}
	if d := max(aw.wait(now), tw.wait(now)); d > 0 {
		return d
	}
	aw.add(now)
	tw.add(now)
	return 0
}
