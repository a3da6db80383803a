package status

import (
	"time"

	"github.com/smimesync/go-smimesync/smimesync/metrics"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// AttachOptions is what [Status.Attach] wires besides the page. Its zero
// value keeps no report and sets no metrics.
type AttachOptions struct {
	// ReportPath, when not empty and the Status has no Report yet, is the
	// report store (report.OpenOptions) the page reads and every pass is
	// merged into: what `smimesync report` reads.
	ReportPath string
	// ReportImport is the JSON report of an earlier release the store
	// imports once (report.Options.Import; config.File.ReportImport).
	ReportImport string
	// QuietSaveEvery is the report store's report.Store.QuietSaveEvery: a
	// quiet delta pass writes its header only when the last write is
	// older than this (0: after every pass).
	QuietSaveEvery time.Duration
	// Metrics, when not nil and a report is kept, gets each sink's
	// smimesync_recipients_expiring from the report
	// (metrics.Metrics.SetExpiring): at once, and after every pass that
	// was not abandoned. Attach does not instrument svc: call
	// metrics.Metrics.Instrument as well.
	Metrics *metrics.Metrics
}

// Attach makes s the status page of svc and the keeper of its report, in
// one call, before svc runs: s.Service is svc; s.Published, when nil,
// reads svc's States (StatePublished); the report store is opened (see
// AttachOptions.ReportPath); svc.Status serves s.Handler on GET /; and
// svc.OnPass records every pass through s (Status.Record) after calling
// the OnPass hook svc had, if any. A report that cannot be opened (a file
// that is not a report, an unreadable folder) is logged to s.Logger and
// the page goes on without one: a service does not stop for its report.
// An error saving the report is logged too.
//
// The store is opened for each pass's merge and each read, not held:
// `smimesync report` reads it while svc runs.
//
// Call flush when svc.Run has returned: it writes what the last passes
// left in the report store (Status.Flush), and logs an error.
func (s *Status) Attach(svc *service.Service, o AttachOptions) (flush func()) {
	s.Service = svc
	if s.Published == nil {
		s.Published = StatePublished(svc.Syncers)
	}
	if s.Report == nil && o.ReportPath != "" {
		if store, err := report.OpenOptions(o.ReportPath, report.Options{Logger: s.Logger, Import: o.ReportImport}); err != nil {
			s.log().Error("the report cannot be kept", "err", err)
		} else {
			store.QuietSaveEvery = o.QuietSaveEvery
			s.Report = store
		}
	}
	expiring := o.Metrics != nil && s.Report != nil
	if expiring {
		for _, n := range svc.Syncers {
			o.Metrics.SetExpiring(n.Name, s.now(), s.RecipientsExpiring)
		}
	}
	svc.Status = s.Handler()
	prev := svc.OnPass
	svc.OnPass = func(r service.PassResult) {
		if prev != nil {
			prev(r)
		}
		if err := s.Record(r); err != nil {
			s.log().Error("saving the report", "err", err)
		}
		if expiring && !r.Abandoned {
			o.Metrics.SetExpiring(r.Sink, r.Finished, s.RecipientsExpiring)
		}
	}
	return func() {
		if err := s.Flush(); err != nil {
			s.log().Error("saving the report", "err", err)
		}
	}
}
