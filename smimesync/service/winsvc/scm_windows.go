//go:build windows

package winsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// IsService reports whether the Service Control Manager started the
// process.
func IsService() bool {
	ok, err := svc.IsWindowsService()
	return err == nil && ok
}

// Run runs run as the service name under the Service Control Manager: a
// stop or a shutdown request cancels run's context, as SIGTERM does on
// Unix, and run's error becomes the service's exit code (1, which
// [Recovery.OnNonCrashFailures] counts as a failure). It returns svc.Run's
// error, or run's. stopWait is how long a stop may take: the Service Control Manager is
// told so. log (nil: discarded) says when a stop is asked for and why run
// ended.
func Run(ctx context.Context, name string, log *slog.Logger, stopWait time.Duration, run func(context.Context) error) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{ctx: ctx, log: log, stopWait: stopWait, run: run}
	if err := svc.Run(name, h); err != nil {
		return err
	}
	return h.err
}

// handler is the svc.Handler of Run.
type handler struct {
	ctx      context.Context
	log      *slog.Logger
	stopWait time.Duration
	run      func(context.Context) error
	err      error
}

// Execute implements svc.Handler.
func (h *handler) Execute(args []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
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
				// Service-specific exit code 1: with
				// SetRecoveryActionsOnNonCrashFailures ([SCM.Install])
				// it counts as a failure, and the recovery policy
				// restarts the service.
				return true, 1
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

// SCM is the [Manager] of this machine's Service Control Manager, through
// golang.org/x/sys/windows/svc/mgr. Each call connects anew. Access denied
// errors say to run from an elevated prompt.
type SCM struct{}

// connect opens the Service Control Manager, saying how to get the
// right to when it is refused.
func connect() (*mgr.Mgr, error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, elevationHint(fmt.Errorf("connecting to the Service Control Manager: %w", err))
	}
	return m, nil
}

// elevationHint adds the fix to an access-denied error.
func elevationHint(err error) error {
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return fmt.Errorf("%w (run it from an elevated prompt: Run as administrator)", err)
	}
	return err
}

// open opens the named service, saying so when it is not installed.
func open(m *mgr.Mgr, name string) (*mgr.Service, error) {
	s, err := m.OpenService(name)
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return nil, fmt.Errorf("service %s is not installed (smimesync service install --config FILE)", name)
	}
	if err != nil {
		return nil, elevationHint(fmt.Errorf("opening service %s: %w", name, err))
	}
	return s, nil
}

// recoveryActions is p as the Service Control Manager takes it.
func recoveryActions(p Recovery) ([]mgr.RecoveryAction, uint32) {
	var as []mgr.RecoveryAction
	for _, d := range p.Restarts {
		as = append(as, mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: d})
	}
	return as, uint32(p.ResetAfter / time.Second)
}

// Install implements [Manager]: the service starts automatically (delayed)
// and logs to the Event Log source of its name, registered first.
func (SCM) Install(spec Spec) error {
	m, err := connect()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	if s, err := m.OpenService(spec.Name); err == nil {
		s.Close()
		return fmt.Errorf("service %s is installed already: `smimesync service uninstall` first to install it again", spec.Name)
	}

	// The Event Log source first: the service logs to it from its first
	// start. A source left by an earlier install is kept.
	madeSource := false
	err = eventlog.InstallAsEventCreate(spec.Name, eventlog.Error|eventlog.Warning|eventlog.Info)
	switch {
	case err == nil:
		madeSource = true
	case strings.Contains(err.Error(), "registry key already exists"):
	default:
		return elevationHint(fmt.Errorf("registering the Event Log source %s: %w", spec.Name, err))
	}
	undo := func() {
		if madeSource {
			eventlog.Remove(spec.Name)
		}
	}

	s, err := m.CreateService(spec.Name, spec.Exe, mgr.Config{
		DisplayName:      spec.DisplayName,
		Description:      spec.Description,
		StartType:        mgr.StartAutomatic,
		DelayedAutoStart: true,
		ServiceStartName: spec.Account,
		Password:         spec.Password,
		ErrorControl:     mgr.ErrorNormal,
	}, spec.Args...)
	if err != nil {
		undo()
		return elevationHint(fmt.Errorf("creating service %s as %s: %w", spec.Name, spec.Account, err))
	}
	defer s.Close()
	actions, reset := recoveryActions(spec.Recovery)
	err = s.SetRecoveryActions(actions, reset)
	if err == nil {
		err = s.SetRecoveryActionsOnNonCrashFailures(spec.Recovery.OnNonCrashFailures)
	}
	if err != nil {
		s.Delete()
		undo()
		return fmt.Errorf("setting the recovery policy of service %s (the service was not installed): %w", spec.Name, err)
	}
	return nil
}

// Uninstall implements [Manager].
func (SCM) Uninstall(name string, stopWait time.Duration) error {
	return withService(name, func(s *mgr.Service) error {
		if st, err := s.Query(); err == nil && st.State != svc.Stopped {
			if err := stopService(s, name, stopWait); err != nil {
				return err
			}
		}
		if err := s.Delete(); err != nil {
			return elevationHint(fmt.Errorf("deleting service %s: %w", name, err))
		}
		if err := eventlog.Remove(name); err != nil && !errors.Is(err, windows.ERROR_FILE_NOT_FOUND) {
			return fmt.Errorf("service %s deleted, but its Event Log source was not removed: %w", name, err)
		}
		return nil
	})
}

// Start implements [Manager].
func (SCM) Start(name string, wait time.Duration) error {
	return withService(name, func(s *mgr.Service) error {
		if err := s.Start(); err != nil {
			return elevationHint(fmt.Errorf("starting service %s: %w", name, err))
		}
		st, err := waitState(s, svc.Running, wait)
		if err != nil {
			return err
		}
		if st.State != svc.Running {
			return fmt.Errorf("service %s stopped as it started (exit code %d, service exit code %d): the Event Log (Application, source %s) says why",
				name, st.Win32ExitCode, st.ServiceSpecificExitCode, name)
		}
		return nil
	})
}

// Stop implements [Manager].
func (SCM) Stop(name string, wait time.Duration) error {
	return withService(name, func(s *mgr.Service) error { return stopService(s, name, wait) })
}

// withService connects to the Service Control Manager, opens the
// installed service name, and runs f on it.
func withService(name string, f func(*mgr.Service) error) error {
	m, err := connect()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	s, err := open(m, name)
	if err != nil {
		return err
	}
	defer s.Close()
	return f(s)
}

// stopService asks s to stop and waits until it has.
func stopService(s *mgr.Service, name string, wait time.Duration) error {
	if _, err := s.Control(svc.Stop); err != nil && !errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
		return elevationHint(fmt.Errorf("stopping service %s: %w", name, err))
	}
	st, err := waitState(s, svc.Stopped, wait)
	if err != nil {
		return err
	}
	if st.State != svc.Stopped {
		return fmt.Errorf("service %s did not stop within %s", name, wait)
	}
	return nil
}

// waitState polls s until it is in state want, or stopped, or wait has
// passed; it returns the last status seen.
func waitState(s *mgr.Service, want svc.State, wait time.Duration) (svc.Status, error) {
	deadline := time.Now().Add(wait)
	for {
		st, err := s.Query()
		if err != nil {
			return st, fmt.Errorf("querying the service: %w", err)
		}
		if st.State == want || st.State == svc.Stopped || time.Now().After(deadline) {
			return st, nil
		}
		time.Sleep(300 * time.Millisecond)
	}
}
