//go:build !windows

package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/smimesync/go-smimesync/smimesync/service/winsvc"
)

// isWindowsService reports whether the process runs as a Windows service:
// never, here. On Linux, run under systemd (see smimesync.service).
func isWindowsService() bool { return false }

// runWindowsService is only reached on Windows.
func runWindowsService(ctx context.Context, log *slog.Logger, stopWait time.Duration, run func(context.Context) error) error {
	return run(ctx)
}

// windowsEventLogger is only reached on Windows: log unchanged.
func windowsEventLogger(log *slog.Logger, level string) (*slog.Logger, func()) {
	return log, func() {}
}

// windowsEventError is only reached on Windows.
func windowsEventError(msg string) {}

// newServiceManager: there is no Service Control Manager here, so
// `smimesync service` exits 2 and says to use systemd.
func newServiceManager() (winsvc.Manager, error) {
	return nil, usageError{errWindowsOnly}
}

// errWindowsOnly is what `smimesync service` says where there is no
// Service Control Manager.
var errWindowsOnly = errors.New("service: the service subcommands manage a Windows service and work on Windows only; on Linux, run `smimesync run` under systemd (examples/smimesync/smimesync.service)")
