package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/metrics"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// TestSeriesNames: the series alert rules and dashboards use keep their
// names and labels, and are fed by Pass and ChangeHook.
func TestSeriesNames(t *testing.T) {
	m := metrics.New()
	m.AddSink("exo")
	t0 := time.Unix(1_900_000_000, 0)
	m.PassStarted("exo")
	count := m.ChangeHook("exo")
	count(&smimesync.Change{Action: smimesync.ActionReplace, Outcome: smimesync.OutcomeWritten})
	count(&smimesync.Change{Action: smimesync.ActionAdd, Outcome: smimesync.OutcomeNotWritable})
	m.Pass(service.PassResult{Sink: "exo", Kind: service.KindDelta, Result: service.ResultOK, Started: t0, Finished: t0.Add(time.Second),
		Report: &smimesync.Report{Plan: smimesync.Plan{Summary: smimesync.Summary{KeptValues: 3, Dropped: map[smimesync.Reason]int{smimesync.ReasonExpired: 2}}}}})
	want := `
# HELP smimesync_recipients_changed_total Recipients whose certificates were written, by action (add, replace, remove, depart).
# TYPE smimesync_recipients_changed_total counter
smimesync_recipients_changed_total{action="add",sink="exo"} 0
smimesync_recipients_changed_total{action="depart",sink="exo"} 0
smimesync_recipients_changed_total{action="remove",sink="exo"} 0
smimesync_recipients_changed_total{action="replace",sink="exo"} 1
# HELP smimesync_write_errors_total Recipients that could not be written, by outcome (failed, not-writable).
# TYPE smimesync_write_errors_total counter
smimesync_write_errors_total{outcome="failed",sink="exo"} 0
smimesync_write_errors_total{outcome="not-writable",sink="exo"} 1
# HELP smimesync_certificates_dropped_total Attribute values the policy dropped, by reason (a value with two reasons counts under each), counted in every pass that read them.
# TYPE smimesync_certificates_dropped_total counter
smimesync_certificates_dropped_total{reason="expired",sink="exo"} 2
# HELP smimesync_last_good_pass_timestamp_seconds When the last pass without errors finished (Unix time); 0 before the first.
# TYPE smimesync_last_good_pass_timestamp_seconds gauge
smimesync_last_good_pass_timestamp_seconds{sink="exo"} 1.900000001e+09
# HELP smimesync_pass_running 1 while a pass is running.
# TYPE smimesync_pass_running gauge
smimesync_pass_running{sink="exo"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"smimesync_recipients_changed_total", "smimesync_write_errors_total", "smimesync_certificates_dropped_total",
		"smimesync_last_good_pass_timestamp_seconds", "smimesync_pass_running"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.Registry(), "smimesync_passes_total"); n != 8 {
		t.Errorf("smimesync_passes_total has %d series, want 8 (2 kinds × 4 results)", n)
	}
}

// TestSetExpiring: one smimesync_recipients_expiring series per horizon of
// ExpiryHorizonsDays, each asking the count for now plus that many days.
func TestSetExpiring(t *testing.T) {
	m := metrics.New()
	now := time.Unix(1_900_000_000, 0)
	m.SetExpiring("exo", now, func(sink string, horizon time.Time) int {
		return int(horizon.Sub(now) / (24 * time.Hour)) // the days, as the count
	})
	fams, err := m.Registry().Gather()
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
			if labels["sink"] == "exo" {
				got[labels["within_days"]] = s.GetGauge().GetValue()
			}
		}
	}
	if len(got) != len(metrics.ExpiryHorizonsDays) || got["7"] != 7 || got["30"] != 30 {
		t.Errorf("smimesync_recipients_expiring{sink=exo}: %v, want 7:7 30:30", got)
	}
}
