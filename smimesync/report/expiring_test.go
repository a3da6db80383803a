package report

import (
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestRecipientsExpiring: an entry counts when its latest-expiring kept
// certificate expires before the horizon, or has expired; not when one of
// its certificates outlives the horizon, nor when it keeps nothing.
func TestRecipientsExpiring(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	keep := func(after ...time.Duration) *Entry {
		e := &Entry{}
		for _, a := range after {
			e.Keep = append(e.Keep, smimesync.Value{Attribute: "userCertificate", NotAfter: now.Add(a)})
		}
		return e
	}
	entries := []*Entry{
		keep(3 * day),                 // within 7 and 30
		keep(3*day, 20*day),           // renewed: within 30 only
		keep(3*day, 400*day),          // renewed for good: neither
		keep(-day),                    // expired since the pass: both
		keep(),                        // keeps nothing: not counted here
		{Keep: []smimesync.Value{{}}}, // a value without an expiry: neither
		keep(40 * day),                // neither
		{Drop: []smimesync.Value{{}}}, // all dropped: not counted here
	}
	for i, e := range entries {
		e.ID = string(rune('a' + i))
	}
	s := storeOf(t, &File{Sinks: []*Sink{{Sink: "exchange", Entries: entries}}})
	for _, tt := range []struct {
		days, want int
	}{{7, 2}, {30, 3}, {0, 1}, {365, 4}} {
		if got := s.RecipientsExpiring("exchange", now.AddDate(0, 0, tt.days)); got != tt.want {
			t.Errorf("within %d days: %d, want %d", tt.days, got, tt.want)
		}
	}
	if got := s.RecipientsExpiring("graph", now.AddDate(1, 0, 0)); got != 0 {
		t.Errorf("a sink the report does not know: %d, want 0", got)
	}
}
