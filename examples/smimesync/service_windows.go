//go:build windows

package main

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/sys/windows/svc"
)

// windowsServiceName is the name the service is installed under, for
// example (from an elevated prompt):
//
//	sc.exe create smimesync binPath= "C:\smimesync\smimesync.exe run --config C:\smimesync\smimesync.yaml" start= delayed-auto obj= "NT SERVICE\smimesync"
//	sc.exe failure smimesync reset= 86400 actions= restart/60000
//	sc.exe start smimesync
//
// Give the service account write access to the state folder only. Logs go
// to <state file>.log unless service.log_file says otherwise; secrets
// come from the environment (set per service under
// HKLM\SYSTEM\CurrentControlSet\Services\smimesync, value Environment) or
// from files the configuration names.
const windowsServiceName = "smimesync"

// isWindowsService reports whether the Service Control Manager started
// the process.
func isWindowsService() bool {
	ok, err := svc.IsWindowsService()
	return err == nil && ok
}

// runWindowsService runs the service loop under the Service Control
// Manager: a stop or a shutdown request cancels the loop's context, as
// SIGTERM does on Unix, and the loop's error becomes the service's exit
// code.
// stopWait is how long a stop may take: the Service Control Manager is
// told so.
func runWindowsService(ctx context.Context, log *slog.Logger, stopWait time.Duration, run func(context.Context) error) error {
	h := &windowsHandler{ctx: ctx, log: log, stopWait: stopWait, run: run}
	if err := svc.Run(windowsServiceName, h); err != nil {
		return err
	}
	return h.err
}

type windowsHandler struct {
	ctx      context.Context
	log      *slog.Logger
	stopWait time.Duration
	run      func(context.Context) error
	err      error
}

// Execute implements svc.Handler.
func (h *windowsHandler) Execute(args []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	const accepts = svc.AcceptStop | svc.AcceptShutdown
	status <- svc.Status{State: svc.Running, Accepts: accepts}
	for {
		select {
		case err := <-done:
			h.err = err
			if err != nil {
				h.log.Error("service ended", "err", err)
				return true, 1 // service-specific exit code 1
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				h.log.Info("stop requested by the Service Control Manager")
				status <- svc.Status{State: svc.StopPending, WaitHint: uint32(h.stopWait.Milliseconds())}
				cancel()
			}
		}
	}
}
