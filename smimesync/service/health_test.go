package service

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/smimesync"
)

func TestHealthCheck(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	interval := time.Minute
	for _, tt := range []struct {
		name   string
		events func(h *health)
		at     time.Time
		code   int
		status string
		reason string
	}{
		{name: "starting", events: func(h *health) {}, at: t0.Add(time.Hour), code: 200, status: "starting"},
		{name: "first pass running", events: func(h *health) { h.started("a", t0) }, at: t0.Add(time.Hour), code: 200, status: "starting"},
		{name: "good pass", events: func(h *health) {
			h.started("a", t0)
			h.finished("a", t0.Add(time.Second), nil)
		}, at: t0.Add(2 * time.Minute), code: 200, status: "ok"},
		{name: "one failure after a good pass", events: func(h *health) {
			h.finished("a", t0, nil)
			h.finished("a", t0.Add(time.Minute), &planError{ldapsource.ErrTimeout})
		}, at: t0.Add(90 * time.Second), code: 200, status: "ok"},
		{name: "no good pass for 3 intervals", events: func(h *health) {
			h.finished("a", t0, nil)
			h.finished("a", t0.Add(3*time.Minute), &planError{ldapsource.ErrTimeout})
		}, at: t0.Add(3*time.Minute + time.Second), code: 503, status: "failing", reason: "sink a: no good pass for 3m1s (more than 3 intervals); last error: source-unreachable"},
		{name: "stale without error", events: func(h *health) {
			h.finished("a", t0, nil)
		}, at: t0.Add(10 * time.Minute), code: 503, status: "failing", reason: "sink a: no good pass for 10m0s"},
		{name: "long pass running after a good one", events: func(h *health) {
			h.finished("a", t0, nil)
			h.started("a", t0.Add(time.Minute))
		}, at: t0.Add(5 * time.Hour), code: 200, status: "ok"},
		{name: "first pass failed", events: func(h *health) {
			h.finished("a", t0, &planError{smimesync.ErrStateUnreadable})
		}, at: t0.Add(time.Second), code: 503, status: "failing", reason: "sink a: no good pass since the service started; last error: state"},
		{name: "one sink of two failing", events: func(h *health) {
			h.finished("a", t0, nil)
			h.finished("b", t0, exchange.ErrUnauthorized)
		}, at: t0.Add(time.Second), code: 503, status: "failing", reason: "sink b: no good pass since the service started; last error: sink-auth"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHealth([]string{"a", "b"}, interval, t0)
			if !strings.Contains(tt.name, "two") {
				h = newHealth([]string{"a"}, interval, t0)
			}
			tt.events(h)
			doc := h.check(tt.at)
			code := http.StatusOK
			if doc.Status == StatusFailing {
				code = http.StatusServiceUnavailable
			}
			if code != tt.code || string(doc.Status) != tt.status || !strings.HasPrefix(doc.Reason, tt.reason) {
				t.Errorf("check = %d %q %q, want %d %q %q", code, doc.Status, doc.Reason, tt.code, tt.status, tt.reason)
			}
		})
	}
}
