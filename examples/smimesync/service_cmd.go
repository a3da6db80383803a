package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/smimesync/service/winsvc"
)

// The Windows service's names, as `smimesync service install` registers
// it with the Service Control Manager and the Event Log.
const (
	windowsServiceName        = "smimesync"
	windowsServiceDisplayName = "smimesync: S/MIME certificates to Microsoft 365"
	windowsServiceDescription = "Keeps users' S/MIME certificates in Exchange Online and Entra ID true to what the on-premises directory holds. See https://github.com/smimesync/go-smimesync."
	// defaultServiceAccount is the account the service runs as unless
	// --account says otherwise: the service's own virtual account, which
	// reaches the network (the directory, with bind.method: sspi) as the
	// computer's account.
	defaultServiceAccount = `NT SERVICE\` + windowsServiceName
)

// How long `service start` and `service stop` wait for the service to get
// there.
const (
	serviceStartWait = 30 * time.Second
	serviceStopWait  = 90 * time.Second
)

// serviceArgs is a parsed `smimesync service` command line.
type serviceArgs struct {
	Action      string // install, uninstall, start or stop
	Config      string // absolute; install only
	Account     string
	PasswordEnv string
}

// parseServiceArgs reads `smimesync service ACTION [flags]`. A relative
// --config is made absolute against the working directory: the service
// starts elsewhere.
func parseServiceArgs(args []string) (serviceArgs, error) {
	if len(args) == 0 {
		return serviceArgs{}, usagef("service: install, uninstall, start or stop?")
	}
	sa := serviceArgs{Action: args[0]}
	fl := flag.NewFlagSet("service "+sa.Action, flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	switch sa.Action {
	case "install":
		fl.StringVar(&sa.Config, "config", "", "configuration file (YAML)")
		fl.StringVar(&sa.Account, "account", defaultServiceAccount, `logon account: NT SERVICE\smimesync (default), DOMAIN\gmsa$, LocalSystem, or DOMAIN\user with --password-env`)
		fl.StringVar(&sa.PasswordEnv, "password-env", "", "environment variable holding the password of --account (a user account only)")
	case "uninstall", "start", "stop":
		for _, a := range args[1:] {
			if a == "--config" || a == "-config" || strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config=") {
				return serviceArgs{}, usagef("service %s: takes no --config: it acts on the installed service %s, whose configuration install named", sa.Action, windowsServiceName)
			}
		}
	default:
		return serviceArgs{}, usagef("service: unknown action %q: install, uninstall, start or stop", sa.Action)
	}
	if err := fl.Parse(args[1:]); err != nil {
		return serviceArgs{}, usagef("service %s: %v", sa.Action, err)
	}
	if fl.NArg() > 0 {
		return serviceArgs{}, usagef("service %s: unexpected arguments %v", sa.Action, fl.Args())
	}
	if sa.Action != "install" {
		return sa, nil
	}
	if sa.Config == "" {
		return serviceArgs{}, usagef("service install: --config is required")
	}
	abs, err := filepath.Abs(sa.Config)
	if err != nil {
		return serviceArgs{}, usagef("service install: --config: %v", err)
	}
	sa.Config = abs
	if err := winsvc.CheckLogon(sa.Account, sa.PasswordEnv); err != nil {
		return serviceArgs{}, logonUsage(sa, err)
	}
	return sa, nil
}

// logonUsage says what winsvc.CheckLogon or Spec.SetLogon refused, in
// terms of --account and --password-env.
func logonUsage(sa serviceArgs, err error) error {
	switch {
	case errors.Is(err, winsvc.ErrPasswordNotNeeded):
		return usagef("service install: --account %s logs on without a password: drop --password-env", sa.Account)
	case errors.Is(err, winsvc.ErrPasswordNeeded):
		return usagef(`service install: --account %s needs its password in the variable --password-env names (or use a gMSA, DOMAIN\name$, or the default NT SERVICE\smimesync)`, sa.Account)
	}
	return usagef("service install: --password-env %s: the variable is not set", sa.PasswordEnv)
}

// installSpec is the service `service install` registers for sa: this
// binary, `run --config CONFIG`, the logon (winsvc.Spec.SetLogon), the
// default recovery.
func installSpec(sa serviceArgs, exe string, getenv func(string) string) (winsvc.Spec, error) {
	spec := winsvc.Spec{Name: windowsServiceName, DisplayName: windowsServiceDisplayName, Description: windowsServiceDescription,
		Exe: exe, Args: []string{"run", "--config", sa.Config}, Recovery: winsvc.DefaultRecovery()}
	if err := spec.SetLogon(sa.Account, sa.PasswordEnv, getenv); err != nil {
		return winsvc.Spec{}, logonUsage(sa, err)
	}
	return spec, nil
}

// cmdService is `smimesync service install|uninstall|start|stop`.
func cmdService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sa, err := parseServiceArgs(args)
	if err != nil {
		return err
	}
	m, err := newServiceManager()
	if err != nil {
		return err
	}
	return runServiceCommand(sa, m, stdout, os.Executable, os.Getenv)
}

// runServiceCommand carries out sa with m. install first loads the
// configuration, as `run` would, and refuses one that does not load: a
// service that cannot start is not installed.
func runServiceCommand(sa serviceArgs, m winsvc.Manager, stdout io.Writer, executable func() (string, error), getenv func(string) string) error {
	switch sa.Action {
	case "install":
		cfg, err := loadConfig(sa.Config)
		if err != nil {
			return err
		}
		if cfg.State.Path == "" {
			return usagef("service install: %s: state.path is required: a service must remember what it published, and locks its state", sa.Config)
		}
		exe, err := executable()
		if err != nil {
			return fmt.Errorf("service install: finding this program: %w", err)
		}
		if p, err := filepath.EvalSymlinks(exe); err == nil {
			exe = p
		}
		spec, err := installSpec(sa, exe, getenv)
		if err != nil {
			return err
		}
		if err := m.Install(spec); err != nil {
			return fmt.Errorf("service install: %w", err)
		}
		account := cmp.Or(spec.Account, "LocalSystem")
		fmt.Fprintf(stdout, "installed service %s (automatic, delayed start) as %s: %s run --config %s\n", spec.Name, account, spec.Exe, sa.Config)
		fmt.Fprintf(stdout, "on failure: %s; logs in the Event Log (Application, source %s)\n", spec.Recovery, spec.Name)
		fmt.Fprintf(stdout, "start it with: smimesync service start\n")
	case "uninstall":
		if err := m.Uninstall(windowsServiceName, serviceStopWait); err != nil {
			return fmt.Errorf("service uninstall: %w", err)
		}
		fmt.Fprintf(stdout, "removed service %s and its Event Log source\n", windowsServiceName)
	case "start":
		if err := m.Start(windowsServiceName, serviceStartWait); err != nil {
			return fmt.Errorf("service start: %w", err)
		}
		fmt.Fprintf(stdout, "service %s is running\n", windowsServiceName)
	case "stop":
		if err := m.Stop(windowsServiceName, serviceStopWait); err != nil {
			return fmt.Errorf("service stop: %w", err)
		}
		fmt.Fprintf(stdout, "service %s is stopped\n", windowsServiceName)
	}
	return nil
}
