package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/smimesync/go-smimesync/smimesync"
)

// Pass results, the "result" label of smimesync_passes_total.
const (
	resultOK        = "ok"
	resultError     = "error"
	resultGuard     = "guard-tripped"
	resultCancelled = "cancelled"
)

// metrics holds the Prometheus series `smimesync run` serves on /metrics.
// Each service has its own registry (no global state), so tests can run
// several.
type metrics struct {
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
	expiring    *prometheus.GaugeVec     // sink, within_days: see metrics_expiry.go
}

// newMetrics registers every series.
func newMetrics() *metrics {
	const ns = "smimesync"
	m := &metrics{
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
			Help: "Recipients whose certificates were written, by action (add, replace, remove)."},
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
		expiring: newExpiringGauge(),
	}
	m.reg.MustRegister(m.passes, m.duration, m.running, m.lastGood, m.lastPass, m.changed, m.writeErrors,
		m.kept, m.dropped, m.requests, m.throttled, m.expiring,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// addSinks gives each sink's series a zero, so that a dashboard sees them
// before the first pass.
func (m *metrics) addSinks(sinks []string) {
	for _, s := range sinks {
		for _, kind := range []string{"full", "delta"} {
			for _, r := range []string{resultOK, resultError, resultGuard, resultCancelled} {
				m.passes.WithLabelValues(s, kind, r)
			}
		}
		for _, a := range []smimesync.Action{smimesync.ActionAdd, smimesync.ActionReplace, smimesync.ActionRemove} {
			m.changed.WithLabelValues(s, string(a))
		}
		m.writeErrors.WithLabelValues(s, string(smimesync.OutcomeFailed))
		m.writeErrors.WithLabelValues(s, string(smimesync.OutcomeNotWritable))
		m.kept.WithLabelValues(s)
		m.running.WithLabelValues(s)
		m.lastGood.WithLabelValues(s)
		m.lastPass.WithLabelValues(s)
	}
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// passStarted marks a pass of sink as running.
func (m *metrics) passStarted(sink string) {
	if m != nil {
		m.running.WithLabelValues(sink).Set(1)
	}
}

// passFinished records one pass. rep may be nil (planning failed).
func (m *metrics) passFinished(sink, kind, result string, rep *smimesync.Report, took time.Duration, finished time.Time) {
	if m == nil {
		return
	}
	m.running.WithLabelValues(sink).Set(0)
	m.passes.WithLabelValues(sink, kind, result).Inc()
	m.duration.WithLabelValues(sink, kind).Observe(took.Seconds())
	m.lastPass.WithLabelValues(sink).Set(float64(finished.UnixMilli()) / 1e3)
	if result == resultOK {
		m.lastGood.WithLabelValues(sink).Set(float64(finished.UnixMilli()) / 1e3)
	}
	if rep == nil {
		return
	}
	for _, c := range rep.Changes {
		switch c.Outcome {
		case smimesync.OutcomeWritten:
			m.changed.WithLabelValues(sink, string(c.Action)).Inc()
		case smimesync.OutcomeFailed, smimesync.OutcomeNotWritable:
			m.writeErrors.WithLabelValues(sink, string(c.Outcome)).Inc()
		}
	}
	m.kept.WithLabelValues(sink).Add(float64(rep.Summary.KeptValues))
	for r, n := range rep.Summary.Dropped {
		m.dropped.WithLabelValues(sink, string(r)).Add(float64(n))
	}
}

// instrument wraps rt (nil: http.DefaultTransport) so that every request
// counts in m: smimesync_api_requests_total by host and status code, and
// smimesync_api_throttled_total for each 429. Each attempt counts, retries
// included, as the sinks retry above the transport. A nil m returns rt
// unchanged. The cloud sinks take it through their HTTPClient setting;
// see Config.httpClient.
func instrument(rt http.RoundTripper, m *metrics) http.RoundTripper {
	if m == nil {
		return rt
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &countingTransport{next: rt, m: m}
}

// countingTransport is the RoundTripper instrument returns.
type countingTransport struct {
	next http.RoundTripper
	m    *metrics
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

// httpClient is the HTTP client the cloud sinks (and their token
// credential) should be given: nil, meaning each one's default, unless
// `smimesync run` set c.metrics or --trace set c.trace, in which case a
// client whose transport counts the traffic (see instrument) and records
// it (see tracer.wrap). Sink builders use it as
// `HTTPClient: c.httpClient()`.
func (c *Config) httpClient() *http.Client {
	if c.metrics == nil && c.trace == nil {
		return nil
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	// The sinks keep many calls in flight: without idle connections to
	// reuse, every request would pay a TLS handshake.
	base.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: c.trace.wrap(instrument(base, c.metrics))}
}
