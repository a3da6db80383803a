// Package metrics gives a [service.Service] its Prometheus series: passes,
// their duration and result, recipients changed, write errors, values
// kept and dropped, fed by the service's pass hooks and its Syncers'
// OnChange; and HTTP requests by host and status, fed by a transport
// wrapper the sinks' HTTP clients take. Each Metrics has its own registry
// (no global state).
//
// The series names and labels are an interface (alert rules and dashboards
// use them): they stay as they are.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// Metrics holds the series. Make one with New.
type Metrics struct {
	reg *prometheus.Registry

	passes      *prometheus.CounterVec   // sink, kind, result
	duration    *prometheus.HistogramVec // sink, kind
	running     *prometheus.GaugeVec     // sink
	lastGood    *prometheus.GaugeVec     // sink
	lastPass    *prometheus.GaugeVec     // sink
	changed     *prometheus.CounterVec   // sink, action
	writeErrors *prometheus.CounterVec   // sink, outcome
	kept        *prometheus.CounterVec   // sink
	dropped     *prometheus.CounterVec   // sink, reason
	requests    *prometheus.CounterVec   // host, code
	throttled   *prometheus.CounterVec   // host
	expiring    *prometheus.GaugeVec     // sink, within_days
}

// ExpiryHorizonsDays are the within_days values of
// smimesync_recipients_expiring: how far ahead the service looks for
// recipients about to lose their last usable certificate. The alert rules
// under deploy/prometheus use them.
var ExpiryHorizonsDays = []int{7, 30}

// New registers every series, and the Go runtime's and the process's.
func New() *Metrics {
	const ns = "smimesync"
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "passes_total",
			Help: "Sync passes by sink, kind (full or delta) and result (ok, error, guard-tripped, cancelled)."},
			[]string{"sink", "kind", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "pass_duration_seconds",
			Help: "How long a pass took, planning and applying.",
			// 0.1 s to about 7 hours: a delta of a few users to a full
			// read of a large forest.
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 9)},
			[]string{"sink", "kind"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "pass_running",
			Help: "1 while a pass is running."}, []string{"sink"}),
		lastGood: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "last_good_pass_timestamp_seconds",
			Help: "When the last pass without errors finished (Unix time); 0 before the first."}, []string{"sink"}),
		lastPass: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "last_pass_timestamp_seconds",
			Help: "When the last pass finished, whatever its result (Unix time)."}, []string{"sink"}),
		changed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "recipients_changed_total",
			Help: "Recipients whose certificates were written, by action (add, replace, remove, depart)."},
			[]string{"sink", "action"}),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "write_errors_total",
			Help: "Recipients that could not be written, by outcome (failed, not-writable)."},
			[]string{"sink", "outcome"}),
		kept: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "certificates_kept_total",
			Help: "Attribute values (certificates and blobs) the policy kept, counted in every pass that read them."},
			[]string{"sink"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "certificates_dropped_total",
			Help: "Attribute values the policy dropped, by reason (a value with two reasons counts under each), counted in every pass that read them."},
			[]string{"sink", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_requests_total",
			Help: "HTTP requests the sinks made, by host and status code (\"error\" when no answer came)."},
			[]string{"host", "code"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_throttled_total",
			Help: "HTTP requests the cloud answered with 429 Too Many Requests, by host."},
			[]string{"host"}),
		expiring: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "recipients_expiring",
			Help: "Directory entries whose last usable certificate (the latest-expiring one the policy kept) expires within within_days days, " +
				"or has expired since the pass that kept it; over the entries of the report, set after each pass. " +
				"Entries with no usable certificate at all are not counted."},
			[]string{"sink", "within_days"}),
	}
	m.reg.MustRegister(m.passes, m.duration, m.running, m.lastGood, m.lastPass, m.changed, m.writeErrors,
		m.kept, m.dropped, m.requests, m.throttled, m.expiring,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the series are in, to gather them or to add
// series of the caller's own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Instrument wires m into svc: it serves m on svc's /metrics, counts every
// pass (chaining svc's OnPassStart and OnPass hooks) and every change each
// Syncer applies (chaining its OnChange), and gives each Syncer's series
// a zero, so that a dashboard sees them before the first pass. Call it
// before svc runs. The sinks' HTTP traffic is counted only when their
// HTTP clients use [Metrics.Transport].
func (m *Metrics) Instrument(svc *service.Service) {
	svc.Metrics = m.Handler()
	start, pass := svc.OnPassStart, svc.OnPass
	svc.OnPassStart = func(sink string, kind service.Kind) {
		m.PassStarted(sink)
		if start != nil {
			start(sink, kind)
		}
	}
	svc.OnPass = func(r service.PassResult) {
		m.Pass(r)
		if pass != nil {
			pass(r)
		}
	}
	for _, n := range svc.Syncers {
		m.AddSink(n.Name)
		next, count := n.OnChange, m.ChangeHook(n.Name)
		n.OnChange = func(c *smimesync.Change) {
			count(c)
			if next != nil {
				next(c)
			}
		}
	}
}

// AddSink gives a sink's series a zero.
func (m *Metrics) AddSink(sink string) {
	for _, kind := range []service.Kind{service.KindFull, service.KindDelta} {
		for _, r := range []service.Result{service.ResultOK, service.ResultError, service.ResultGuard, service.ResultCancelled} {
			m.passes.WithLabelValues(sink, string(kind), string(r))
		}
	}
	for _, a := range []smimesync.Action{smimesync.ActionAdd, smimesync.ActionReplace, smimesync.ActionRemove, smimesync.ActionDepart} {
		m.changed.WithLabelValues(sink, string(a))
	}
	m.writeErrors.WithLabelValues(sink, string(smimesync.OutcomeFailed))
	m.writeErrors.WithLabelValues(sink, string(smimesync.OutcomeNotWritable))
	m.kept.WithLabelValues(sink)
	m.running.WithLabelValues(sink)
	m.lastGood.WithLabelValues(sink)
	m.lastPass.WithLabelValues(sink)
}

// PassStarted marks a pass of sink as running.
func (m *Metrics) PassStarted(sink string) {
	m.running.WithLabelValues(sink).Set(1)
}

// Pass records a finished pass: its result, duration and time, and the
// values its plan kept and dropped.
func (m *Metrics) Pass(r service.PassResult) {
	m.running.WithLabelValues(r.Sink).Set(0)
	m.passes.WithLabelValues(r.Sink, string(r.Kind), string(r.Result)).Inc()
	m.duration.WithLabelValues(r.Sink, string(r.Kind)).Observe(r.Duration().Seconds())
	m.lastPass.WithLabelValues(r.Sink).Set(float64(r.Finished.UnixMilli()) / 1e3)
	if r.Result == service.ResultOK {
		m.lastGood.WithLabelValues(r.Sink).Set(float64(r.Finished.UnixMilli()) / 1e3)
	}
	if r.Report == nil {
		return
	}
	m.kept.WithLabelValues(r.Sink).Add(float64(r.Report.Summary.KeptValues))
	for reason, n := range r.Report.Summary.Dropped {
		m.dropped.WithLabelValues(r.Sink, string(reason)).Add(float64(n))
	}
}

// ChangeHook returns a smimesync.Syncer.OnChange that counts sink's
// changes as Apply settles them: written by action, failed and not
// writable by outcome.
func (m *Metrics) ChangeHook(sink string) func(*smimesync.Change) {
	return func(c *smimesync.Change) {
		switch c.Outcome {
		case smimesync.OutcomeWritten:
			m.changed.WithLabelValues(sink, string(c.Action)).Inc()
		case smimesync.OutcomeFailed, smimesync.OutcomeNotWritable:
			m.writeErrors.WithLabelValues(sink, string(c.Outcome)).Inc()
		}
	}
}

// Transport wraps rt (nil: http.DefaultTransport) so that every request
// counts: smimesync_api_requests_total by host and status code ("error"
// when no answer came), and smimesync_api_throttled_total for each 429.
// Each attempt counts, retries included, as the sinks retry above the
// transport. The cloud sinks take it through their HTTP client setting.
func (m *Metrics) Transport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &countingTransport{next: rt, m: m}
}

// countingTransport is the RoundTripper Transport returns.
type countingTransport struct {
	next http.RoundTripper
	m    *Metrics
}

// RoundTrip sends the request and counts its answer.
func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	host := req.URL.Hostname()
	if err != nil {
		t.m.requests.WithLabelValues(host, "error").Inc()
		return resp, err
	}
	t.m.requests.WithLabelValues(host, strconv.Itoa(resp.StatusCode)).Inc()
	if resp.StatusCode == http.StatusTooManyRequests {
		t.m.throttled.WithLabelValues(host).Inc()
	}
	return resp, nil
}

// SetExpiring sets smimesync_recipients_expiring{sink, within_days} for
// each of ExpiryHorizonsDays, asking count how many recipients lose their
// last usable certificate before now plus that many days (for instance
// report.Store.RecipientsExpiring).
func (m *Metrics) SetExpiring(sink string, now time.Time, count func(sink string, horizon time.Time) int) {
	for _, days := range ExpiryHorizonsDays {
		m.expiring.WithLabelValues(sink, strconv.Itoa(days)).Set(float64(count(sink, now.AddDate(0, 0, days))))
	}
}
