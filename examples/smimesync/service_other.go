//go:build !windows

package main

import (
	"context"
	"log/slog"
	"time"
)

// isWindowsService reports whether the process runs as a Windows service:
// never, here. On Linux, run under systemd (see smimesync.service).
func isWindowsService() bool { return false }

// runWindowsService is only reached on Windows.
func runWindowsService(ctx context.Context, log *slog.Logger, stopWait time.Duration, run func(context.Context) error) error {
	return run(ctx)
}
