package service

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Status is the health of a service or of one of its Syncers.
type Status string

// The statuses of /healthz.
const (
	// StatusStarting: no pass has finished yet.
	StatusStarting Status = "starting"
	// StatusOK: a pass succeeded within HealthyIntervals intervals.
	StatusOK Status = "ok"
	// StatusFailing: no pass succeeded for longer, or none since the
	// service started.
	StatusFailing Status = "failing"
)

// Health is a typed snapshot of a Service's health, and the /healthz
// document.
type Health struct {
	// Status is ok, starting or failing: failing when any Syncer is,
	// starting while none has finished a pass.
	Status Status       `json:"status"`
	Reason string       `json:"reason,omitempty"`
	Since  time.Time    `json:"since"`
	Sinks  []SinkHealth `json:"sinks"`
}

// SinkHealth is one Syncer's part of [Health].
type SinkHealth struct {
	Sink   string `json:"sink"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Running is true while a pass runs.
	Running bool `json:"running"`
	// LastPass is when the last pass finished; LastGood when the last
	// one without error did; LastError is the short code of the last
	// pass's error (see ErrorCode): the error itself is in the log.
	LastPass  time.Time `json:"last_pass,omitzero"`
	LastGood  time.Time `json:"last_good,omitzero"`
	LastError Code      `json:"last_error,omitempty"`

	runningSince time.Time
}

// Health returns the service's health now. The time a pass has been
// running does not count against it, so that a long full pass does not
// look like a failure; a pass that hangs shows in the
// smimesync_pass_running metric instead.
func (s *Service) Health() Health {
	s.init()
	return s.health.check(s.now())
}

// HealthHandler serves [Health] as JSON: 200 when ok or starting, 503 when
// failing. It shows short error codes only: /healthz may be read by anyone
// who reaches the port, and an error's text names hosts, accounts and
// addresses.
func (s *Service) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := s.Health()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if h.Status == StatusFailing {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(h)
	})
}

// health tracks each Syncer's passes.
type health struct {
	mu       sync.Mutex
	interval time.Duration
	since    time.Time
	sinks    []*SinkHealth
}

func newHealth(sinks []string, interval time.Duration, since time.Time) *health {
	h := &health{interval: interval, since: since}
	for _, s := range sinks {
		h.sinks = append(h.sinks, &SinkHealth{Sink: s})
	}
	return h
}

func (h *health) sink(name string) *SinkHealth {
	for _, s := range h.sinks {
		if s.Sink == name {
			return s
		}
	}
	s := &SinkHealth{Sink: name}
	h.sinks = append(h.sinks, s)
	return s
}

func (h *health) started(sink string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sink(sink)
	s.Running, s.runningSince = true, at
}

func (h *health) abandoned(sink string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sink(sink).Running = false
}

func (h *health) finished(sink string, at time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sink(sink)
	s.Running, s.LastPass, s.LastError = false, at, ""
	if err != nil {
		s.LastError = ErrorCode(err)
	} else {
		s.LastGood = at
	}
}

// check is the health at now.
func (h *health) check(now time.Time) Health {
	h.mu.Lock()
	defer h.mu.Unlock()
	doc := Health{Status: StatusOK, Since: h.since, Sinks: []SinkHealth{}}
	limit := HealthyIntervals * h.interval
	var failing []string
	starting := true
	for _, s := range h.sinks {
		c := *s
		switch {
		case s.LastPass.IsZero():
			c.Status = StatusStarting
		default:
			starting = false
			ref := now
			if s.Running {
				ref = s.runningSince
			}
			switch {
			case s.LastGood.IsZero():
				c.Status, c.Reason = StatusFailing, "no good pass since the service started"
			case ref.Sub(s.LastGood) > limit:
				c.Status = StatusFailing
				c.Reason = fmt.Sprintf("no good pass for %s (more than %d intervals)", ref.Sub(s.LastGood).Round(time.Second), HealthyIntervals)
			default:
				c.Status = StatusOK
			}
			if c.Status == StatusFailing && s.LastError != "" {
				c.Reason += "; last error: " + string(s.LastError)
			}
		}
		if c.Status == StatusFailing {
			failing = append(failing, fmt.Sprintf("sink %s: %s", c.Sink, c.Reason))
		}
		doc.Sinks = append(doc.Sinks, c)
	}
	switch {
	case len(failing) > 0:
		doc.Status, doc.Reason = StatusFailing, strings.Join(failing, "; ")
	case starting:
		doc.Status = StatusStarting
	}
	return doc
}
