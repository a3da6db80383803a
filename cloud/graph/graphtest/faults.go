package graphtest

import (
	"strings"
	"time"
)

// Fault is a misbehaviour the server shows on demand. A fault matches a
// request by method and path; it fires for the next Times matching requests
// (1 when Times is 0), then is gone. Faults fire in the order they were
// injected, one per request.
type Fault struct {
	// Method matches the request method ("GET", "PATCH", "POST"); empty
	// matches any.
	Method string
	// Path matches requests whose path, below /v1.0, starts with it
	// ("/users", "/$batch"); empty matches any.
	Path string
	// InBatch makes the fault apply to the requests inside a $batch (each
	// item answered with Status) instead of to HTTP requests.
	InBatch bool
	// Times is how many matching requests the fault applies to (0 means 1).
	Times int

	// Delay holds the answer back this long (wall clock) before anything
	// else, a slow service. With Status 0 and Drop false, the request is
	// then served normally.
	Delay time.Duration
	// Status answers with this HTTP status and a Graph error body instead
	// of serving the request (for example 503 or 500).
	Status int
	// RetryAfter is the Retry-After header sent with Status, if any.
	RetryAfter string
	// Drop closes the connection without an answer. It does not apply to
	// batch items.
	Drop bool
}

// Inject queues faults.
func (s *Server) Inject(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range faults {
		f := f
		if f.Times <= 0 {
			f.Times = 1
		}
		s.faults = append(s.faults, &f)
	}
}

// PendingFaults returns how many fault firings are still queued.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.faults {
		n += f.Times
	}
	return n
}

// takeFault returns the first queued fault matching the request, consuming
// one firing of it, or nil. Callers hold s.mu.
func (s *Server) takeFault(method, path string, inBatch bool) *Fault {
	for i, f := range s.faults {
		if f.InBatch != inBatch {
			continue
		}
		if f.Method != "" && !strings.EqualFold(f.Method, method) {
			continue
		}
		if f.Path != "" && !strings.HasPrefix(strings.ToLower(path), strings.ToLower(f.Path)) {
			continue
		}
		cp := *f
		f.Times--
		if f.Times <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		s.stats.Faults++
		return &cp
	}
	return nil
}
