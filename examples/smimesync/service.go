package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/metrics"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/service"
	"github.com/smimesync/go-smimesync/smimesync/status"
)

// reportSaveEvery: a delta pass of run that changed nothing and failed
// nothing writes the report's header only when the last write is older
// than this (report.Store.QuietSaveEvery).
const reportSaveEvery = 15 * time.Minute

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
	if logFile := cfg.LogFile(svcMode); logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("run: opening the log file: %w", err)
		}
		defer f.Close()
		logw = f
	}
	log := cfg.Logger(logw)
	if svcMode {
		// Under the Service Control Manager: to the Event Log as well.
		var closeEvents func()
		log, closeEvents = windowsEventLogger(log, cfg.Log.Level)
		defer closeEvents()
	}

	// The metrics exist before the sinks, so that the sinks' HTTP
	// clients count into them (Config.httpClient).
	cfg.metrics = metrics.New()
	cfg.HTTPClient = cfg.httpClient()
	syncers, err := cfg.Syncers(log)
	if err != nil {
		return err
	}
	for _, s := range syncers {
		s.Progress = prog.Hook(s.Name)
	}
	// One instance per state: locked before the report is touched.
	unlock, err := lockStates(syncers)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer unlock()

	svc := cfg.BuildService(syncers, log)
	svc.OnPass = func(service.PassResult) { prog.Clear() }
	// The status page (GET / beside /healthz and /metrics) shows the
	// report and the recent passes, and records each pass in the report.
	page := &status.Status{Command: "run", Logger: log, Now: clock}
	flush := page.Attach(svc, status.AttachOptions{ReportPath: cfg.ReportPath(), ReportImport: cfg.ReportImport(), QuietSaveEvery: reportSaveEvery, Metrics: cfg.metrics})
	defer flush()
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
		return runWindowsService(ctx, log, cfg.Service.Grace()+5*time.Second, runSvc)
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
