// Package winsvc runs and manages a program as a Windows service: install,
// uninstall, start and stop through the Service Control Manager with a
// recovery policy ([SCM], [Spec], [Recovery]), run under it ([Run]), and
// log to the Event Log ([EventLogHandler], a [log/slog] handler). The
// Service Control Manager parts build on Windows only; the rest everywhere.
package winsvc

import (
	"strings"
	"time"
)

// Spec is everything [Manager.Install] registers.
type Spec struct {
	// Name is the service's (and its Event Log source's) name.
	Name, DisplayName, Description string
	// Exe is the absolute path of the binary; Args its arguments (run
	// --config with the configuration's absolute path).
	Exe  string
	Args []string
	// Account is the logon account (ServiceStartName); "" is LocalSystem.
	// Password is empty for virtual accounts, gMSAs and built-in ones.
	Account, Password string
	// Recovery is what the Service Control Manager does when the service
	// fails.
	Recovery Recovery
}

// Recovery is a service's failure actions: restart after each
// delay in turn (the last one repeats for every later failure), counting
// failures anew after ResetAfter without one.
type Recovery struct {
	// Restarts are the delays before each restart.
	Restarts []time.Duration
	// ResetAfter is how long without a failure resets the count.
	ResetAfter time.Duration
	// OnNonCrashFailures: a service that stops with a non-zero exit code
	// (smimesync run that cannot start: a configuration error, a busy
	// port) counts as failed too, not only a crash.
	OnNonCrashFailures bool
}

// DefaultRecovery is the policy smimesync's `service install` sets:
// restart after 1, then 5, then 15 minutes, so that a passing outage (the network at boot,
// a domain controller restarting) heals itself without a tight loop
// against a broken configuration; failures counted anew after a day
// without one.
func DefaultRecovery() Recovery {
	return Recovery{
		Restarts:           []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute},
		ResetAfter:         24 * time.Hour,
		OnNonCrashFailures: true,
	}
}

// Manager is what installing and controlling a service needs of the
// Service Control Manager: [SCM] on Windows; tests fake it.
type Manager interface {
	// Install creates the service and its Event Log source, and sets its
	// recovery policy.
	Install(spec Spec) error
	// Uninstall stops the service if it runs, deletes it and removes its
	// Event Log source.
	Uninstall(name string, stopWait time.Duration) error
	// Start starts the service and waits until it runs.
	Start(name string, wait time.Duration) error
	// Stop asks the service to stop and waits until it has.
	Stop(name string, wait time.Duration) error
}

// IsPasswordless reports whether a service account logs on without
// a password: LocalSystem, LocalService, NetworkService, a virtual account
// (NT SERVICE\name) or a group managed service account (DOMAIN\name$).
func IsPasswordless(account string) bool {
	a := strings.ToLower(account)
	switch a {
	case "", "localsystem", `.\localsystem`, `nt authority\system`,
		`nt authority\localservice`, `nt authority\local service`,
		`nt authority\networkservice`, `nt authority\network service`:
		return true
	}
	return strings.HasPrefix(a, `nt service\`) || strings.HasSuffix(a, "$")
}
