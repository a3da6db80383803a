package main

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
	keep := func(after ...time.Duration) *entryState {
		e := &entryState{}
		for _, a := range after {
			e.Keep = append(e.Keep, smimesync.Value{Attribute: "userCertificate", NotAfter: now.Add(a)})
		}
		return e
	}
	entries := []*entryState{
		keep(3 * day),                 // within 7 and 30
		keep(3*day, 20*day),           // renewed: within 30 only
		keep(3*day, 400*day),          // renewed for good: neither
		keep(-day),                    // expired since the pass: both
		keep(),                        // keeps nothing: not counted here
		{Keep: []smimesync.Value{{}}}, // a value without an expiry: neither
		keep(40 * day),                // neither
		{Drop: []smimesync.Value{{}}}, // all dropped: not counted here
	}
	for _, tt := range []struct {
		days, want int
	}{{7, 2}, {30, 3}, {0, 1}, {365, 4}} {
		if got := recipientsExpiring(entries, now.AddDate(0, 0, tt.days)); got != tt.want {
			t.Errorf("within %d days: %d, want %d", tt.days, got, tt.want)
		}
	}

	// The gauge: one series per horizon for the sink.
	m := newMetrics()
	m.setExpiring("exchange", entries, now)
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "smimesync_recipients_expiring" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["sink"] == "exchange" {
				got[labels["within_days"]] = s.GetGauge().GetValue()
			}
		}
	}
	if len(got) != 2 || got["7"] != 2 || got["30"] != 3 {
		t.Errorf("smimesync_recipients_expiring{sink=exchange}: %v, want 7:2 30:3", got)
	}
	var nilMetrics *metrics
	nilMetrics.setExpiring("exchange", entries, now) // no panic
}
