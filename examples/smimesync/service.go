package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// Service defaults.
const (
	defaultInterval      = 60 * time.Second
	defaultFullEvery     = 24 * time.Hour
	defaultListen        = "127.0.0.1:9464"
	defaultShutdownGrace = 10 * time.Second
	// healthyIntervals: /healthz fails when no pass has succeeded for
	// this many intervals.
	healthyIntervals = 3
)

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

// ServiceConfig is the service key: how `smimesync run` paces its passes,
// where it serves /healthz and /metrics, and how it stops.
type ServiceConfig struct {
	// Interval between the end of one pass and the start of the next
	// (Go duration, default 60s).
	Interval time.Duration `yaml:"interval"`
	// FullEvery: a full pass (the saved delta cookie ignored) runs when
	// the last one is older than this (default 24h). The first pass of a
	// service that has no record of a full pass is full.
	FullEvery time.Duration `yaml:"full_every"`
	// Listen is the address of the HTTP server for /healthz and
	// /metrics (default 127.0.0.1:9464); an empty string turns it off.
	Listen *string `yaml:"listen"`
	// ShutdownGrace: on SIGTERM or SIGINT (or a Windows service stop),
	// the writes of the pass in flight get this long to finish before
	// they are abandoned (default 10s). Planning stops at once. Either
	// way the state is saved.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// LogFile, when set, receives the logs instead of standard error
	// (appended, mode 0600). A Windows service has no standard error: it
	// logs to <state file>.log unless this says otherwise.
	LogFile string `yaml:"log_file"`
}

func (s ServiceConfig) check() error {
	switch {
	case s.Interval < 0:
		return errors.New("service.interval must not be negative")
	case s.FullEvery < 0:
		return errors.New("service.full_every must not be negative")
	case s.ShutdownGrace < 0:
		return errors.New("service.shutdown_grace must not be negative")
	}
	if s.Listen != nil && *s.Listen != "" {
		if _, _, err := net.SplitHostPort(*s.Listen); err != nil {
			return fmt.Errorf("service.listen: %v", err)
		}
	}
	return nil
}

func (s ServiceConfig) interval() time.Duration {
	if s.Interval == 0 {
		return defaultInterval
	}
	return s.Interval
}

func (s ServiceConfig) fullEvery() time.Duration {
	if s.FullEvery == 0 {
		return defaultFullEvery
	}
	return s.FullEvery
}

func (s ServiceConfig) listen() string {
	if s.Listen == nil {
		return defaultListen
	}
	return *s.Listen
}

func (s ServiceConfig) shutdownGrace() time.Duration {
	if s.ShutdownGrace == 0 {
		return defaultShutdownGrace
	}
	return s.ShutdownGrace
}

// cmdRun is `smimesync run`: the service. See service.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("run", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	config := fl.String("config", "", "configuration file (YAML)")
	once := fl.Bool("once", false, "run one pass per sink and exit, like sync, but with run's lock, schedule and report")
	trace := traceFlag(fl)
	if err := fl.Parse(args); err != nil {
		return usagef("run: %v", err)
	}
	if *config == "" {
		return usagef("run: --config is required")
	}
	if fl.NArg() > 0 {
		return usagef("run: unexpected arguments %v", fl.Args())
	}
	cfg, err := loadConfig(*config)
	if err != nil {
		return err
	}
	if err := cfg.startTrace(*trace); err != nil {
		return err
	}
	defer cfg.trace.close()
	if cfg.State.Path == "" {
		return usagef("run: %s: state.path is required: a service must remember what it published, and locks its state", *config)
	}
	svcMode := !*once && isWindowsService()

	// Logs: standard error, or a file. A service logs at info unless
	// told otherwise.
	if cfg.Log.Level == "" {
		cfg.Log.Level = "info"
	}
	prog := newProgress(stderr, nil)
	logw := prog.writer(stderr)
	logFile := cfg.path(cfg.Service.LogFile)
	if logFile == "" && svcMode {
		p := cfg.path(cfg.State.Path)
		logFile = strings.TrimSuffix(p, filepath.Ext(p)) + ".log"
	}
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("run: opening the log file: %w", err)
		}
		defer f.Close()
		logw = f
	}
	log := cfg.logger(logw)
	if svcMode {
		// Under the Service Control Manager: to the Event Log as well.
		var closeEvents func()
		log, closeEvents = windowsEventLogger(log, cfg.Log.Level)
		defer closeEvents()
	}

	// The metrics exist before the sinks, so that the sinks' HTTP
	// clients count into them (Config.httpClient).
	var names []string
	cfg.metrics = newMetrics()
	syncers, err := cfg.syncers(log)
	if err != nil {
		return err
	}
	for _, s := range syncers {
		names = append(names, s.name)
		s.Progress = prog.hook(s.name)
	}
	m := cfg.metrics
	m.addSinks(names)

	// One instance per state.
	unlock, err := lockStates(syncers)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer unlock()

	svc := &service{
		syncers:    syncers,
		interval:   cfg.Service.interval(),
		fullEvery:  cfg.Service.fullEvery(),
		grace:      cfg.Service.shutdownGrace(),
		listen:     cfg.Service.listen(),
		reportPath: cfg.reportPath(),
		log:        log,
		metrics:    m,
		progress:   prog,
	}
	if *once {
		return svc.once(ctx)
	}
	if svcMode {
		return runWindowsService(ctx, log, svc.grace+5*time.Second, svc.run)
	}
	return svc.run(ctx)
}

// lockStates takes the lock of every syncer's file state (see
// smimesync.FileState.Lock), so that one process at a time uses them. On
// error it holds none; the error wraps smimesync.ErrLocked when another
// process has one. run calls it; sync should too.
func lockStates(syncers []namedSyncer) (unlock func(), err error) {
	var unlocks []func() error
	unlock = func() {
		for _, u := range slices.Backward(unlocks) {
			u()
		}
	}
	for _, s := range syncers {
		fs, ok := s.State.(smimesync.FileState)
		if !ok {
			continue
		}
		u, err := fs.Lock()
		if err != nil {
			unlock()
			if errors.Is(err, smimesync.ErrLocked) {
				return nil, fmt.Errorf("%w: is another `smimesync run` or `smimesync sync` using this configuration?", err)
			}
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return unlock, nil
}

// service runs the passes of `smimesync run`: a delta pass per sink every
// interval, a full pass when the last is older than fullEvery, a report
// saved after each, health and metrics over HTTP, and a clean stop when
// its context ends.
type service struct {
	syncers    []namedSyncer
	interval   time.Duration
	fullEvery  time.Duration
	grace      time.Duration
	listen     string // "" serves nothing
	reportPath string // "" keeps no report
	log        *slog.Logger
	metrics    *metrics
	progress   *progress
	// now is the binary's clock unless a test says otherwise.
	now func() time.Time
	// onListen, when set, is told the address served (tests listen on
	// port 0).
	onListen func(addr string)

	health   *health
	lastFull map[string]time.Time
	// report is the report file's content, kept between passes so that
	// a quiet delta pass does not reread and rewrite a large file: see
	// recordReport.
	report      *savedReport
	reportSaved time.Time
	reportDirty bool
}

// reportSaveEvery: a delta pass that changed nothing and failed nothing
// rewrites the report file only when the last write is older than this.
const reportSaveEvery = 15 * time.Minute

func (s *service) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return clock()
}

// setup loads the full-pass schedule from the report and readies health.
func (s *service) setup() {
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.lastFull = map[string]time.Time{}
	var names []string
	for _, ns := range s.syncers {
		names = append(names, ns.name)
	}
	s.health = newHealth(names, s.interval, s.clock())
	if s.reportPath == "" {
		return
	}
	r, err := openReport(s.reportPath, s.log)
	if err != nil {
		s.log.Error("the report cannot be kept", "err", err)
		s.reportPath = ""
		return
	}
	s.report = r
	for _, st := range r.Sinks {
		s.lastFull[st.Sink] = st.LastFull
		s.metrics.setExpiring(st.Sink, st.Entries, s.clock())
	}
}

// recordReport merges a pass into the report and writes the file, unless
// the pass was a quiet delta (no change, no error, none before either)
// and the file was written less than reportSaveEvery ago; flushReport
// writes what is left when the service stops.
func (s *service) recordReport(sink string, rep *smimesync.Report, err error, finished time.Time, log *slog.Logger) {
	if s.report == nil {
		return
	}
	st := s.report.sink(sink)
	hadError := st.LastPass.Error != ""
	s.report.Updated = finished.UTC()
	st.merge("run", rep, err, finished.UTC())
	s.reportDirty = true
	quiet := rep != nil && err == nil && !hadError && !rep.Full && len(rep.Changes) == 0
	if quiet && finished.Sub(s.reportSaved) < reportSaveEvery {
		return
	}
	s.flushReport(log)
}

// flushReport writes the report file if a pass changed it.
func (s *service) flushReport(log *slog.Logger) {
	if s.report == nil || !s.reportDirty {
		return
	}
	if err := s.report.save(s.reportPath); err != nil {
		log.Error("saving the report", "err", err)
		return
	}
	s.reportSaved, s.reportDirty = s.clock(), false
}

// once runs one pass per sink and returns their errors.
func (s *service) once(ctx context.Context) error {
	s.setup()
	defer s.flushReport(s.log)
	var errs []error
	for _, ns := range s.syncers {
		if err := s.pass(ctx, ctx, ns); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ns.name, err))
		}
	}
	return errors.Join(errs...)
}

// run is the service loop. It returns nil when ctx ends (a signal, a
// service stop), after the pass in flight stopped and saved its state;
// and an error only when it cannot start.
func (s *service) run(ctx context.Context) error {
	s.setup()
	defer s.flushReport(s.log)
	if s.listen != "" {
		ln, err := net.Listen("tcp", s.listen)
		if err != nil {
			return fmt.Errorf("run: serving /healthz and /metrics: %w", err)
		}
		srv := newHTTPServer(s.mux())
		go srv.Serve(ln)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		s.log.Info("serving /healthz and /metrics", "addr", ln.Addr().String())
		if !isLoopback(ln.Addr()) {
			s.log.Warn("service.listen is not a loopback address: /healthz and /metrics (sink names, counts, timings) can be read by anyone who reaches it; prefer 127.0.0.1 or [::1] behind a scraper or proxy",
				"addr", ln.Addr().String())
		}
		if s.onListen != nil {
			s.onListen(ln.Addr().String())
		}
	}

	// Writes outlive ctx by the grace period: a stop lets the pass in
	// flight finish its writes if it can, then abandons the rest. The
	// Syncer saves the state either way.
	applyCtx, cancelApply := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelApply()
	stopGrace := context.AfterFunc(ctx, func() {
		s.log.Info("stopping: the writes in flight may finish", "grace", s.grace)
		time.AfterFunc(s.grace, cancelApply)
	})
	defer stopGrace()

	s.log.Info("service started", "sinks", len(s.syncers), "interval", s.interval, "fullEvery", s.fullEvery)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			s.log.Info("service stopped", "cause", context.Cause(ctx))
			return nil
		case <-timer.C:
		}
		for _, ns := range s.syncers {
			if ctx.Err() != nil {
				break
			}
			s.pass(ctx, applyCtx, ns) // logged, counted and reported inside
		}
		timer.Reset(s.interval)
	}
}

// pass plans (full or delta, as the schedule says) with ctx, applies with
// applyCtx, then records the pass in the metrics, the health and the
// report. It returns the pass's error.
func (s *service) pass(ctx, applyCtx context.Context, ns namedSyncer) error {
	full := s.fullDue(ns.name)
	started := s.clock()
	s.health.started(ns.name, started)
	s.metrics.passStarted(ns.name)
	log := s.log.With("sink", ns.name)

	var (
		plan *smimesync.Plan
		rep  *smimesync.Report
		err  error
	)
	if full {
		plan, err = ns.PlanFull(ctx)
	} else {
		plan, err = ns.Plan(ctx)
	}
	if err != nil {
		err = &planError{err}
	} else {
		rep, err = ns.Apply(applyCtx, plan)
	}
	s.progress.clear()
	finished := s.clock()

	kind := "delta"
	if full || (plan != nil && plan.Full) {
		kind = "full"
	}
	result := resultOK
	switch {
	case err == nil:
	case errors.Is(err, smimesync.ErrGuardTripped):
		result = resultGuard
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		result = resultCancelled
	default:
		result = resultError
	}
	s.metrics.passFinished(ns.name, kind, result, rep, finished.Sub(started), finished)
	if result == resultCancelled && rep == nil {
		// Stopped while planning: nothing happened, nothing to record.
		s.health.abandoned(ns.name)
		log.Info("pass abandoned while planning", "kind", kind)
		return err
	}
	s.health.finished(ns.name, finished, err)
	if fullPassDone(rep, err) {
		s.lastFull[ns.name] = finished
	}
	s.recordReport(ns.name, rep, err, finished, log)
	if s.report != nil {
		s.metrics.setExpiring(ns.name, s.report.sink(ns.name).Entries, finished)
	}

	attrs := []any{"kind", kind, "result", result, "duration", finished.Sub(started).Round(time.Millisecond)}
	if rep != nil {
		sum := rep.Summary
		attrs = append(attrs, "entries", sum.Entries, "written", sum.Written, "failed", sum.Failed,
			"notWritable", sum.NotWritable, "unchanged", sum.Unchanged, "skipped", sum.Skip,
			"keptValues", sum.KeptValues, "droppedValues", sum.DroppedValues, "cookieAdvanced", rep.CookieAdvanced)
	}
	switch result {
	case resultOK:
		log.Info("pass done", attrs...)
	case resultCancelled:
		log.Warn("pass stopped by shutdown; state saved", append(attrs, "err", err)...)
	default:
		log.Error("pass failed", append(attrs, "code", errorCode(err), "err", err)...)
	}
	return err
}

// fullDue reports whether sink's next pass must be full.
func (s *service) fullDue(sink string) bool {
	last := s.lastFull[sink]
	return last.IsZero() || s.clock().Sub(last) >= s.fullEvery
}

// mux serves /healthz and /metrics.
func (s *service) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		code, doc := s.health.check(s.clock())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(doc)
	})
	if s.metrics != nil {
		mux.Handle("GET /metrics", s.metrics.handler())
	}
	return mux
}

// health tracks each sink's passes for /healthz.
type health struct {
	mu       sync.Mutex
	interval time.Duration
	since    time.Time
	sinks    []*sinkHealth
}

// sinkHealth is one sink's part of the /healthz document.
type sinkHealth struct {
	Sink   string `json:"sink"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Running is true while a pass runs.
	Running bool `json:"running"`
	// LastPass is when the last pass finished; LastGood when the last
	// one without error did; LastError is the short code of the last
	// pass's error (see errorCode): the error itself is in the log.
	LastPass  time.Time `json:"last_pass,omitzero"`
	LastGood  time.Time `json:"last_good,omitzero"`
	LastError string    `json:"last_error,omitempty"`

	runningSince time.Time
}

// healthDoc is the /healthz document.
type healthDoc struct {
	// Status is ok, starting or failing.
	Status string        `json:"status"`
	Reason string        `json:"reason,omitempty"`
	Since  time.Time     `json:"since"`
	Sinks  []*sinkHealth `json:"sinks"`
}

func newHealth(sinks []string, interval time.Duration, since time.Time) *health {
	h := &health{interval: interval, since: since}
	for _, s := range sinks {
		h.sinks = append(h.sinks, &sinkHealth{Sink: s})
	}
	return h
}

func (h *health) sink(name string) *sinkHealth {
	for _, s := range h.sinks {
		if s.Sink == name {
			return s
		}
	}
	s := &sinkHealth{Sink: name}
	h.sinks = append(h.sinks, s)
	return s
}

func (h *health) started(sink string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sink(sink)
	s.Running, s.runningSince = true, at
}

func (h *health) abandoned(sink string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sink(sink).Running = false
}

func (h *health) finished(sink string, at time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sink(sink)
	s.Running, s.LastPass, s.LastError = false, at, ""
	if err != nil {
		s.LastError = errorCode(err)
	} else {
		s.LastGood = at
	}
}

// check says whether the service is healthy: every sink has finished no
// pass yet (starting), or had a good pass within healthyIntervals
// intervals. The time a pass has been running does not count against it,
// so that a long full pass does not look like a failure; a pass that
// hangs shows in smimesync_pass_running instead.
func (h *health) check(now time.Time) (int, healthDoc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	doc := healthDoc{Status: "ok", Since: h.since}
	limit := healthyIntervals * h.interval
	var failing []string
	starting := true
	for _, s := range h.sinks {
		c := *s
		switch {
		case s.LastPass.IsZero():
			c.Status = "starting"
		default:
			starting = false
			ref := now
			if s.Running {
				ref = s.runningSince
			}
			switch {
			case s.LastGood.IsZero():
				c.Status, c.Reason = "failing", "no good pass since the service started"
			case ref.Sub(s.LastGood) > limit:
				c.Status = "failing"
				c.Reason = fmt.Sprintf("no good pass for %s (more than %d intervals)", ref.Sub(s.LastGood).Round(time.Second), healthyIntervals)
			default:
				c.Status = "ok"
			}
			if c.Status == "failing" && s.LastError != "" {
				c.Reason += "; last error: " + s.LastError
			}
		}
		if c.Status == "failing" {
			failing = append(failing, fmt.Sprintf("sink %s: %s", c.Sink, c.Reason))
		}
		doc.Sinks = append(doc.Sinks, &c)
	}
	switch {
	case len(failing) > 0:
		doc.Status, doc.Reason = "failing", strings.Join(failing, "; ")
		return http.StatusServiceUnavailable, doc
	case starting:
		doc.Status = "starting"
	}
	return http.StatusOK, doc
}
