package main

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// expiryHorizonsDays are the within_days values of
// smimesync_recipients_expiring: how far ahead the service looks for
// recipients about to lose their last usable certificate. The alert rules
// under deploy/prometheus use them.
var expiryHorizonsDays = []int{7, 30}

// newExpiringGauge is smimesync_recipients_expiring{sink,within_days}.
func newExpiringGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "smimesync", Name: "recipients_expiring",
		Help: "Directory entries whose last usable certificate (the latest-expiring one the policy kept) expires within within_days days, " +
			"or has expired since the pass that kept it; over the entries of the report, set after each pass. " +
			"Entries with no usable certificate at all are not counted."},
		[]string{"sink", "within_days"})
}

// setExpiring sets sink's smimesync_recipients_expiring series from the
// report's entries of that sink, as of now. A nil m does nothing.
func (m *metrics) setExpiring(sink string, entries []*entryState, now time.Time) {
	if m == nil || m.expiring == nil {
		return
	}
	for _, days := range expiryHorizonsDays {
		n := recipientsExpiring(entries, now.AddDate(0, 0, days))
		m.expiring.WithLabelValues(sink, strconv.Itoa(days)).Set(float64(n))
	}
}

// recipientsExpiring counts the entries whose kept certificates all
// expire before horizon: the entries that lose their last usable
// certificate by then unless a renewed one reaches the directory. An
// entry that keeps nothing, or only values without an expiry, is not
// counted.
func recipientsExpiring(entries []*entryState, horizon time.Time) int {
	n := 0
	for _, e := range entries {
		var last time.Time
		for _, v := range e.Keep {
			if v.NotAfter.After(last) {
				last = v.NotAfter
			}
		}
		if !last.IsZero() && last.Before(horizon) {
			n++
		}
	}
	return n
}
