package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/metrics"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/service"
	"github.com/smimesync/go-smimesync/smimesync/status"
)

// Service defaults (the library's, but for where run listens and how long
// a stop waits for the writes in flight).
const (
	defaultInterval      = service.DefaultInterval
	defaultFullEvery     = service.DefaultFullEvery
	defaultListen        = "127.0.0.1:9464"
	defaultShutdownGrace = 10 * time.Second
)

// reportSaveEvery: a delta pass of run that changed nothing and failed
// nothing rewrites the report file only when the last write is older than
// this (report.Store.QuietSaveEvery).
const reportSaveEvery = 15 * time.Minute

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
	// Listen is the address of the HTTP server for /healthz, /metrics
	// and the status page / (default 127.0.0.1:9464); an empty string
	// turns it off.
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

// cmdRun is `smimesync run`: the service (package smimesync/service),
// with its metrics (smimesync/metrics) and report (smimesync/report).
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("run", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	config := fl.String("config", "", "configuration file (YAML)")
	once := fl.Bool("once", false, "run one pass per sink and exit, like sync, but with run's lock, schedule and report")
	trace := traceFlag(fl)
	cfg, err := commandConfig("run", fl, args, trace)
	if err != nil {
		return err
	}
	defer cfg.trace.Close()
	if cfg.State.Path == "" {
		return usagef("run: %s: state.path is required: a service must remember what it published, and locks its state", *config)
	}
	svcMode := !*once && isWindowsService()

	// Logs: standard error, or a file. A service logs at info unless
	// told otherwise.
	if cfg.Log.Level == "" {
		cfg.Log.Level = "info"
	}
	prog := report.NewProgress(stderr, nil)
	logw := prog.Writer(stderr)
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
	cfg.metrics = metrics.New()
	syncers, err := cfg.syncers(log)
	if err != nil {
		return err
	}
	grace := cfg.Service.shutdownGrace()
	for _, s := range syncers {
		s.Progress = prog.Hook(s.Name)
		s.WriteGrace = grace
	}
	// One instance per state: locked before the report is touched.
	unlock, err := lockStates(syncers)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer unlock()

	svc := &service.Service{
		Syncers:   syncers,
		Interval:  cfg.Service.interval(),
		FullEvery: cfg.Service.fullEvery(),
		Listen:    cfg.Service.listen(),
		Logger:    log,
		Now:       clock,
	}
	// The status page (GET / beside /healthz and /metrics) shows the
	// report store and the recent passes; the passes are recorded
	// through it, under the lock the page reads them with.
	page := &status.Status{Service: svc, Published: status.StatePublished(syncers), Command: "run", Logger: log, Now: clock}
	if path := cfg.reportPath(); path != "" {
		if store, err := report.Open(path, log); err != nil {
			log.Error("the report cannot be kept", "err", err)
		} else {
			store.QuietSaveEvery = reportSaveEvery
			page.Report = store
			defer flushStatus(page, log)
		}
	}
	if page.Report != nil {
		for _, s := range syncers {
			cfg.metrics.SetExpiring(s.Name, clock(), page.RecipientsExpiring)
		}
	}
	svc.Status = page.Handler()
	svc.OnPass = func(r service.PassResult) {
		prog.Clear()
		if err := page.Record(r); err != nil {
			log.Error("saving the report", "err", err)
		}
		if page.Report != nil && !r.Abandoned {
			cfg.metrics.SetExpiring(r.Sink, r.Finished, page.RecipientsExpiring)
		}
	}
	cfg.metrics.Instrument(svc)
	if *once {
		return svc.Once(ctx)
	}
	runSvc := func(ctx context.Context) error {
		if err := svc.Run(ctx); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		return nil
	}
	if svcMode {
		return runWindowsService(ctx, log, grace+5*time.Second, runSvc)
	}
	return runSvc(ctx)
}

// lockStates takes the state lock of every syncer (service.Lock). On
// error it holds none; the error wraps smimesync.ErrLocked when another
// process has one, and says what to look for.
func lockStates(syncers []service.Named) (unlock func(), err error) {
	unlock, err = service.Lock(syncers)
	if errors.Is(err, smimesync.ErrLocked) {
		return nil, fmt.Errorf("%w: is another `smimesync run` or `smimesync sync` using this configuration?", err)
	}
	return unlock, err
}
