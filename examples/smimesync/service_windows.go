//go:build windows

package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sys/windows/svc/eventlog"

	"github.com/smimesync/go-smimesync/smimesync/service/winsvc"
)

// The service is installed, from an elevated prompt, with
//
//	smimesync service install --config C:\ProgramData\smimesync\smimesync.yaml [--account CONTOSO\smimesync-gmsa$]
//	smimesync service start
//
// which registers `smimesync run --config FILE` with the Service Control
// Manager (automatic, delayed start; restart on failure, see
// winsvc.DefaultRecovery) and the Event Log source smimesync. Give the
// service account read access to the configuration and write access to the state
// folder only. Logs go to the Event Log (Application, source smimesync;
// see winsvc.EventLogHandler) and to <state file>.log unless service.log_file
// says otherwise; secrets come from the environment (set per service
// under HKLM\SYSTEM\CurrentControlSet\Services\smimesync, value
// Environment) or from files the configuration names. The README shows
// the whole install on a domain-joined server.

// isWindowsService reports whether the Service Control Manager started
// the process.
func isWindowsService() bool { return winsvc.IsService() }

// runWindowsService runs the service loop under the Service Control
// Manager (see winsvc.Run).
func runWindowsService(ctx context.Context, log *slog.Logger, stopWait time.Duration, run func(context.Context) error) error {
	return winsvc.Run(ctx, windowsServiceName, log, stopWait, run)
}

// windowsEventLogger adds the Event Log to log: records at level (see
// winsvc.EventLogLevel) and above go to the Event Log as well. When the source
// cannot be opened, log is returned as it is, and says why.
func windowsEventLogger(log *slog.Logger, level string) (*slog.Logger, func()) {
	el, err := eventlog.Open(windowsServiceName)
	if err != nil {
		log.Warn("the Event Log cannot be written: logging to the log file only; was the service installed with `smimesync service install`?", "err", err)
		return log, func() {}
	}
	h := slog.NewMultiHandler(log.Handler(), winsvc.NewEventLogHandler(el, winsvc.EventLogLevel(level)))
	return slog.New(h), func() { el.Close() }
}

// windowsEventError writes msg to the Event Log as one error event: what
// a service that could not start would have printed on standard error.
func windowsEventError(msg string) {
	el, err := eventlog.Open(windowsServiceName)
	if err != nil {
		return // nowhere left to say it
	}
	defer el.Close()
	el.Error(winsvc.EventIDError, winsvc.TruncateEvent(strings.TrimSpace(msg)))
}

// newServiceManager is the Service Control Manager of this machine.
func newServiceManager() (winsvc.Manager, error) { return winsvc.SCM{}, nil }
