package status

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/metrics"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// expiringGauges is smimesync_recipients_expiring of sink, by within_days.
func expiringGauges(t *testing.T, m *metrics.Metrics, sink string) map[string]float64 {
	t.Helper()
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
			if labels["sink"] == sink {
				got[labels["within_days"]] = s.GetGauge().GetValue()
			}
		}
	}
	return got
}

// TestAttach: one call wires the page, the report store and the expiring
// gauges into a service: GET / is the page, each pass goes to the hook
// the service had, then to the page and the report, a quiet pass waits
// for QuietSaveEvery or flush, and an abandoned pass changes nothing.
func TestAttach(t *testing.T) {
	now := testclock.Now().UTC().Truncate(time.Second)
	path := filepath.Join(t.TempDir(), "state.report.json")
	svc := &service.Service{Syncers: []service.Named{{Name: "exchange", Syncer: &smimesync.Syncer{State: &smimesync.MemoryState{}}}}}
	var order []string
	svc.OnPass = func(service.PassResult) { order = append(order, "hook") }
	m := metrics.New()
	page := &Status{Now: func() time.Time { return now }}
	flush := page.Attach(svc, AttachOptions{ReportPath: path, QuietSaveEvery: time.Hour, Metrics: m})

	if page.Service != svc || page.Report == nil || page.Published == nil || svc.Status == nil {
		t.Fatalf("not wired: service %v, report %v, published %v, handler %v", page.Service == svc, page.Report != nil, page.Published != nil, svc.Status != nil)
	}
	if _, err := page.Published(context.Background(), "exchange"); err != nil {
		t.Errorf("the published side of exchange: %v", err)
	}
	if got := expiringGauges(t, m, "exchange"); len(got) != len(metrics.ExpiryHorizonsDays) || got["30"] != 0 {
		t.Errorf("expiring gauges before a pass: %v, want each at 0", got)
	}

	// A full pass: Alice's last certificate expires in 10 days.
	days := func(n int) time.Time { return now.Add(time.Duration(n) * 24 * time.Hour) }
	full := &smimesync.Report{Plan: smimesync.Plan{Full: true, Started: now.Add(-time.Minute), Finished: now,
		Changes: []*smimesync.Change{change(alice, smimesync.ActionAdd, smimesync.OutcomeWritten,
			[]smimesync.Value{value("alice", "userSMIMECertificate", days(10))}, nil)},
		Summary: smimesync.Summary{Entries: 1, Add: 1, Written: 1, KeptValues: 1}}}
	svc.OnPass(service.PassResult{Sink: "exchange", Kind: service.KindFull, Result: service.ResultOK,
		Started: now.Add(-time.Minute), Finished: now, Report: full})
	order = append(order, "after")
	if strings.Join(order, ",") != "hook,after" {
		t.Errorf("the service's own hook: %v", order)
	}
	if n := len(page.Passes("exchange")); n != 1 {
		t.Errorf("%d passes on the page, want 1", n)
	}
	saved, err := report.Load(path)
	if err != nil || len(saved.Sinks) != 1 || !saved.Sinks[0].LastPass.Full || saved.Sinks[0].LastPass.Command != "run" {
		t.Fatalf("the report after the full pass: %+v, %v", saved, err)
	}
	if got := expiringGauges(t, m, "exchange"); got["7"] != 0 || got["30"] != 1 {
		t.Errorf("expiring gauges after the full pass: %v, want 7:0 30:1", got)
	}

	// A quiet delta pass a minute later: kept, written only by flush.
	later := now.Add(time.Minute)
	quiet := &smimesync.Report{Plan: smimesync.Plan{Started: later, Finished: later}, CookieAdvanced: true}
	svc.OnPass(service.PassResult{Sink: "exchange", Kind: service.KindDelta, Result: service.ResultOK, Started: later, Finished: later, Report: quiet})
	if saved, _ := report.Load(path); saved.Sinks[0].LastPass.Full != true {
		t.Errorf("a quiet pass within QuietSaveEvery was written at once")
	}
	// An abandoned pass is neither in the report nor on the page, nor
	// does it move the gauges (five days on, Alice's would be within 7).
	svc.OnPass(service.PassResult{Sink: "exchange", Kind: service.KindDelta, Result: service.ResultCancelled, Abandoned: true, Finished: days(5)})
	if got := expiringGauges(t, m, "exchange"); got["7"] != 0 || got["30"] != 1 {
		t.Errorf("expiring gauges after an abandoned pass: %v, want 7:0 30:1", got)
	}
	flush()
	saved, err = report.Load(path)
	if err != nil || saved.Sinks[0].LastPass.Full || !saved.Sinks[0].LastPass.Finished.Equal(later) {
		t.Errorf("the report after flush: last pass %+v, %v; want the quiet delta", saved.Sinks[0].LastPass, err)
	}
	if n := len(page.Passes("exchange")); n != 2 {
		t.Errorf("%d passes on the page, want 2 (the abandoned one left out)", n)
	}

	srv := httptest.NewServer(svc.Status)
	defer srv.Close()
	if resp, body := get(t, srv, "GET", "/"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-sink="exchange"`) {
		t.Errorf("GET /: %d, the page lacks the sink", resp.StatusCode)
	}
}

// TestAttachNoReport: a path that holds something other than a report is
// left alone and logged; the page goes on without a report, passes are
// still recorded for it, and no gauge is set.
func TestAttachNoReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("not a report"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	svc := &service.Service{Syncers: []service.Named{{Name: "exchange", Syncer: &smimesync.Syncer{}}}}
	m := metrics.New()
	page := &Status{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	flush := page.Attach(svc, AttachOptions{ReportPath: path, Metrics: m})
	if page.Report != nil || !strings.Contains(logs.String(), "the report cannot be kept") || !strings.Contains(logs.String(), path) {
		t.Fatalf("report %v; log %q", page.Report != nil, logs.String())
	}
	now := testclock.Now()
	svc.OnPass(service.PassResult{Sink: "exchange", Kind: service.KindFull, Result: service.ResultOK, Started: now, Finished: now,
		Report: &smimesync.Report{Plan: smimesync.Plan{Full: true}}})
	flush()
	if n := len(page.Passes("exchange")); n != 1 {
		t.Errorf("%d passes on the page, want 1", n)
	}
	if b, _ := os.ReadFile(path); string(b) != "not a report" {
		t.Errorf("the file at the report path was changed: %q", b)
	}
	if got := expiringGauges(t, m, "exchange"); len(got) != 0 {
		t.Errorf("expiring gauges without a report: %v", got)
	}
}
