// Package service runs [smimesync.Syncer]s as a long-running service: a
// delta pass per Syncer every interval, a full pass when the last is older
// than the full-pass cadence, each Syncer's state lock held for the
// service's life, a typed health snapshot and its /healthz handler, and
// hooks that metrics (package smimesync/metrics), logs and reports (package
// smimesync/report) hang off.
//
// It is a package of its own, above the sources and the sinks, because the
// short error codes of /healthz (see [ErrorCode]) are read from their
// errors: the LDAP source's, the Exchange sink's and Microsoft sign-in's.
// Package smimesync itself stays free of them.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// Defaults of a [Service].
const (
	// DefaultInterval is the pause between the end of one round of
	// passes and the start of the next.
	DefaultInterval = 60 * time.Second
	// DefaultFullEvery is the full-pass cadence.
	DefaultFullEvery = 24 * time.Hour
	// HealthyIntervals: a Syncer is failing when no pass of it has
	// succeeded for this many intervals.
	HealthyIntervals = 3
)

// Named is one Syncer of a Service and the name its logs, health, metrics
// and reports know it by (the sink's name, say "exchange").
type Named struct {
	Name string
	*smimesync.Syncer
}

// Kind says whether a pass read the whole directory.
type Kind string

// The kinds of pass.
const (
	KindFull  Kind = "full"
	KindDelta Kind = "delta"
)

// Result is how a pass ended, the "result" label of the
// smimesync_passes_total metric.
type Result string

// The results of a pass.
const (
	ResultOK        Result = "ok"
	ResultError     Result = "error"
	ResultGuard     Result = "guard-tripped"
	ResultCancelled Result = "cancelled"
)

// PassResult is what a [Service] tells its OnPass hook after each pass.
type PassResult struct {
	// Sink is the Named Syncer's name.
	Sink string
	// Kind is KindFull when the pass was planned full or the source read
	// everything, else KindDelta.
	Kind   Kind
	Result Result
	// Started and Finished are on the Service's clock.
	Started, Finished time.Time
	// Report is Apply's report; nil when planning failed or was stopped.
	// Its rows wait in a temporary file (unlinked at once on Unix) until
	// the report is closed (Report.Close, once no hook needs it) or the
	// garbage collector finds it unreachable; the service does not close
	// it, so that a hook may hand it on.
	Report *smimesync.Report
	// Err is the pass's error (planning's or Apply's); Code its short
	// code for /healthz (see ErrorCode).
	Err  error
	Code Code
	// Abandoned is true when a stop came while planning: nothing was
	// written, and health and the report ignore the pass.
	Abandoned bool
}

// Duration is how long the pass took.
func (r PassResult) Duration() time.Duration { return r.Finished.Sub(r.Started) }

// Service runs passes of its Syncers on a schedule until its context ends.
// Its zero value, given Syncers, works: every other field has a default.
// A Service is run once (Run or Once); its Health and HealthHandler may be
// read from any goroutine meanwhile.
type Service struct {
	// Syncers are run one after the other in each round, in this order.
	Syncers []Named
	// Interval is the pause between rounds (0: DefaultInterval).
	Interval time.Duration
	// FullEvery: a Syncer's pass is full (PlanFull) when its last full
	// pass, as its State records it (Snapshot.LastFull), is older than
	// this, or there is none (0: DefaultFullEvery).
	FullEvery time.Duration
	// Listen, when not empty, is the address Run serves on: /healthz
	// (HealthHandler) and, when Metrics is set, /metrics. Run warns when
	// it is not a loopback address.
	Listen string
	// Metrics, when not nil, is served on /metrics (for example
	// metrics.Metrics.Handler).
	Metrics http.Handler
	// Status, when not nil, is served on GET and HEAD / (exactly "/",
	// with its query): the status page of package smimesync/status.
	Status http.Handler
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Now is the service's clock; nil means time.Now.
	Now func() time.Time
	// OnPassStart, when not nil, is called as each pass starts; OnPass
	// after it, with its result, before /healthz reports the pass. They
	// run on the service's goroutine: the next pass waits for them.
	OnPassStart func(sink string, kind Kind)
	OnPass      func(PassResult)
	// OnListen, when not nil, is told the address Run serves on (useful
	// with port 0).
	OnListen func(addr string)

	once     sync.Once
	health   *health
	lastFull map[string]time.Time
}

// The shutdown grace: a stop (ctx ending) stops planning at once, and lets
// the writes in flight of the pass that is applying finish within each
// Syncer's WriteGrace (see smimesync.Syncer.Apply). Either way the state is
// saved.

func (s *Service) interval() time.Duration {
	if s.Interval > 0 {
		return s.Interval
	}
	return DefaultInterval
}

func (s *Service) fullEvery() time.Duration {
	if s.FullEvery > 0 {
		return s.FullEvery
	}
	return DefaultFullEvery
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// init readies the health record.
func (s *Service) init() {
	s.once.Do(func() {
		names := make([]string, len(s.Syncers))
		for i, n := range s.Syncers {
			names[i] = n.Name
		}
		s.health = newHealth(names, s.interval(), s.now())
		s.lastFull = map[string]time.Time{}
	})
}

// lock takes every Syncer's state lock (smimesync.Syncer.Lock). On error
// it holds none; the error wraps smimesync.ErrLocked when another process
// holds one.
func (s *Service) lock() (unlock func(), err error) {
	var unlocks []func() error
	unlock = func() {
		for _, u := range slices.Backward(unlocks) {
			u()
		}
	}
	for _, n := range s.Syncers {
		u, err := n.Lock()
		if err != nil {
			unlock()
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		unlocks = append(unlocks, u)
	}
	return unlock, nil
}

// start takes the locks and reads each Syncer's last full pass.
func (s *Service) start(ctx context.Context) (unlock func(), err error) {
	s.init()
	unlock, err = s.lock()
	if err != nil {
		return nil, err
	}
	for _, n := range s.Syncers {
		t, err := n.LastFull(ctx)
		if err != nil {
			// The first pass meets the same error, and reports it.
			s.log().Warn("the last full pass is not known; the next pass is full", "sink", n.Name, "err", err)
		}
		s.lastFull[n.Name] = t
	}
	return unlock, nil
}

// Once runs one pass per Syncer (full or delta as the schedule says),
// holding their locks, and returns their errors joined, each naming its
// Syncer.
func (s *Service) Once(ctx context.Context) error {
	unlock, err := s.start(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	for _, n := range s.Syncers {
		if r := s.pass(ctx, n); r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, r.Err))
		}
	}
	return errors.Join(errs...)
}

// Run runs the service until ctx ends: it takes every Syncer's state lock
// (an error wrapping smimesync.ErrLocked when another instance has one),
// serves /healthz and /metrics when Listen is set, then runs a round of
// passes at once and every Interval after. When ctx ends it lets the pass
// in flight stop (see the Syncers' WriteGrace), lets go of the locks and
// returns nil. It returns an error only when it cannot start.
func (s *Service) Run(ctx context.Context) error {
	unlock, err := s.start(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	log := s.log()
	if s.Listen != "" {
		stop, err := s.serve()
		if err != nil {
			return err
		}
		defer stop()
	}
	log.Info("service started", "sinks", len(s.Syncers), "interval", s.interval(), "fullEvery", s.fullEvery())
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("service stopped", "cause", context.Cause(ctx))
			return nil
		case <-timer.C:
		}
		for _, n := range s.Syncers {
			if ctx.Err() != nil {
				break
			}
			s.pass(ctx, n) // logged and told to the hooks inside
		}
		timer.Reset(s.interval())
	}
}

// pass plans (full or delta, as the schedule says) and applies with ctx,
// then records the pass in the health and tells the hooks.
func (s *Service) pass(ctx context.Context, n Named) PassResult {
	last := s.lastFull[n.Name]
	full := last.IsZero() || s.now().Sub(last) >= s.fullEvery()
	kind := KindDelta
	if full {
		kind = KindFull
	}
	r := PassResult{Sink: n.Name, Kind: kind, Started: s.now()}
	s.health.started(n.Name, r.Started)
	if s.OnPassStart != nil {
		s.OnPassStart(n.Name, kind)
	}
	log := s.log().With("sink", n.Name)

	var plan *smimesync.Plan
	var err error
	if full {
		plan, err = n.PlanFull(ctx)
	} else {
		plan, err = n.Plan(ctx)
	}
	if err != nil {
		r.Err = &planError{err}
	} else {
		r.Report, r.Err = n.Apply(ctx, plan)
		if plan.Full {
			r.Kind = KindFull
		}
	}
	r.Finished = s.now()
	switch {
	case r.Err == nil:
		r.Result = ResultOK
	case errors.Is(r.Err, smimesync.ErrGuardTripped):
		r.Result = ResultGuard
	case errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, context.DeadlineExceeded):
		r.Result = ResultCancelled
	default:
		r.Result = ResultError
	}
	r.Code = ErrorCode(r.Err)
	r.Abandoned = r.Result == ResultCancelled && r.Report == nil
	if !r.Abandoned && r.Report != nil && r.Report.Full {
		if t, err := n.LastFull(context.WithoutCancel(ctx)); err == nil {
			s.lastFull[n.Name] = t
		}
	}
	// The hooks first (the status page records the pass in the report):
	// whoever sees /healthz report the pass finds what it did.
	if s.OnPass != nil {
		s.OnPass(r)
	}
	if r.Abandoned {
		s.health.abandoned(n.Name)
		log.Info("pass abandoned while planning", "kind", r.Kind)
	} else {
		s.health.finished(n.Name, r.Finished, r.Err)
		logPass(log, r)
	}
	return r
}

// logPass logs a finished pass: info when good, warn when a stop cut it
// short, error otherwise.
func logPass(log *slog.Logger, r PassResult) {
	attrs := []any{"kind", r.Kind, "result", r.Result, "duration", r.Duration().Round(time.Millisecond)}
	if rep := r.Report; rep != nil {
		sum := rep.Summary
		attrs = append(attrs, "entries", sum.Entries, "written", sum.Written, "failed", sum.Failed,
			"notWritable", sum.NotWritable, "unchanged", sum.Unchanged, "skipped", sum.Skip,
			"keptValues", sum.KeptValues, "droppedValues", sum.DroppedValues, "cookieAdvanced", rep.CookieAdvanced)
	}
	switch r.Result {
	case ResultOK:
		log.Info("pass done", attrs...)
	case ResultCancelled:
		log.Warn("pass stopped by shutdown; state saved", append(attrs, "err", r.Err)...)
	default:
		log.Error("pass failed", append(attrs, "code", r.Code, "err", r.Err)...)
	}
}

// The HTTP server's limits: /healthz and /metrics are small documents
// answered at once, so a client that is slow to send or to read is cut
// off rather than held.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = 15 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 60 * time.Second
	httpMaxHeaderBytes    = 16 << 10
)

// newHTTPServer is the server of /healthz and /metrics, with its limits.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
	}
}

// isLoopback reports whether a listener's address is a loopback address
// (127.0.0.0/8, ::1); the unspecified address (all interfaces) is not.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// Mux serves /healthz and, when Metrics is set, /metrics; when Status is
// set, / too.
func (s *Service) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", s.HealthHandler())
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	if s.Status != nil {
		// "GET" matches HEAD too; {$} matches "/" and nothing below it.
		mux.Handle("GET /{$}", s.Status)
	}
	return mux
}

// serve listens on Listen and serves Mux until stop.
func (s *Service) serve() (stop func(), err error) {
	log := s.log()
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return nil, fmt.Errorf("service: serving /healthz and /metrics: %w", err)
	}
	srv := newHTTPServer(s.Mux())
	go srv.Serve(ln)
	addr := ln.Addr().String()
	log.Info("serving /healthz and /metrics", "addr", addr)
	if !isLoopback(ln.Addr()) {
		msg := "the listen address is not a loopback address: /healthz and /metrics (sink names, counts, timings) can be read by anyone who reaches it; prefer 127.0.0.1 or [::1] behind a scraper or proxy"
		if s.Status != nil {
			msg = "the listen address is not a loopback address: /healthz, /metrics and the status page / (people's names, addresses and certificates) can be read by anyone who reaches it; prefer 127.0.0.1 or [::1] behind an authenticating proxy"
		}
		log.Warn(msg, "addr", addr)
	}
	if s.OnListen != nil {
		s.OnListen(addr)
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
}

// Lock takes the state lock of every Syncer (smimesync.Syncer.Lock), for a
// program that plans and applies them one after the other and must not
// share their states with another instance. On error it holds none, and
// the error names the Syncer and wraps smimesync.ErrLocked when another
// process holds one. Run and Once take the locks themselves; a caller that
// holds them already may call them all the same.
func Lock(syncers []Named) (unlock func(), err error) {
	return (&Service{Syncers: syncers}).lock()
}
