// Command smimesync keeps users' S/MIME certificates in Microsoft 365 true
// to what the on-premises directory holds. It is a thin program over the
// smimesync library, for admins:
//
//	smimesync demo                              the embedded default: no servers, no cloud
//	smimesync inspect [--json] FILE...          look at certificates, blobs and LDIF files
//	smimesync plan --config FILE [--json] [--out PLAN]  what a sync would change, writing nothing (--out: saved for review)
//	smimesync sync --config FILE [--dry-run] [--force] [--json] [--plan PLAN]  (--plan: apply exactly the saved plan)
//	smimesync run --config FILE [--once]        the service: a pass every interval, /healthz, /metrics, the status page /
//	smimesync report (--config FILE | --file REPORT) [--json | --csv | --html FILE [--search TEXT]] [--days N]
//	smimesync version                           module version, VCS revision, Go version (also --version)
//	smimesync check --config FILE [--json] [--probe RECIPIENT]  what works, what does not, and the fix
//	smimesync service install --config FILE [--account ACCOUNT [--password-env VAR]]
//	smimesync service uninstall|start|stop      the Windows service (Windows only)
//
// plan, sync, run and check take --trace FILE: every HTTP exchange with
// login, Exchange and Graph as JSON lines, secrets redacted.
//
// Exit codes: 0 ok, 1 runtime error (plan: also when lookups failed; sync
// --plan: the plan is stale, and nothing was written), 2 bad usage or
// config (a configuration error names the file, the line and the key's
// YAML path; sync --plan: the file is not a plan as plan --out wrote it),
// 3 the mass-change guard stopped the run (sync --dry-run: would stop it).
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/internal/termsafe"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/config"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
	exitGuard   = 3
)

// usageError is a bad command line or configuration: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

const usage = `usage:
  smimesync demo [--dir DIR] [--json]
  smimesync inspect [--json] FILE...
  smimesync plan --config FILE [--json] [--full] [--out PLAN]
  smimesync sync --config FILE [--dry-run] [--force] [--json] [--full | --plan PLAN]
  smimesync run --config FILE [--once]
  smimesync report (--config FILE | --file REPORT) [--json | --csv | --html FILE [--search TEXT]] [--days N]
  smimesync version (or --version)
  smimesync check --config FILE [--json] [--probe RECIPIENT]
  smimesync service install --config FILE [--account ACCOUNT [--password-env VAR]]
  smimesync service uninstall | start | stop

plan, sync, run and check take --trace FILE: every HTTP exchange with
login, Exchange and Graph as JSON lines, secrets and tokens redacted,
certificates shortened to their SHA-256 fingerprints.
check walks the configuration, the state, the directory and each sink,
prints ✓ or ✗ for each with the fix, and exits 0 when all pass, 1 when
not; it writes nothing, except with --probe, which writes RECIPIENT's
certificates back unchanged and reads them back.
run is the service: a delta pass every service.interval (default 60s), a
full pass every service.full_every (default 24h), /healthz, /metrics and
the status page / (/?q=bob searches a user) on service.listen (default
127.0.0.1:9464), a clean stop on SIGTERM or SIGINT.
plan --out PLAN saves the plan for review; sync --plan PLAN applies exactly
it, planning nothing, and refuses it (exit 1, nothing written) when the
state moved since it was made. With several sinks, PLAN holds {sink}.
service (Windows, elevated) installs run --config FILE as the Windows
service smimesync (automatic start, restart on failure, logs to the Event
Log), as NT SERVICE\smimesync unless --account names a gMSA (DOMAIN\name$)
or a user (with its password in the variable --password-env names);
uninstall, start and stop it. Elsewhere it exits 2: use systemd.
report prints who has no usable certificate, whose certificates expire
within N days (default 30), and what was dropped and why, from the report
sync and run keep (report.path, default next to the state file); --html
FILE writes it as one self-contained HTML page, --search adds a search.

FILE for inspect is a DER or PEM certificate, a DER, BER or PEM PKCS#7 / CMS
blob, or an LDIF file. See the README for the configuration reference.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stderr := io.Writer(os.Stderr)
	var early *bytes.Buffer
	if isWindowsService() {
		// A Windows service has no standard error: what run would print
		// there (a configuration that no longer loads, a busy port)
		// goes to the Event Log instead.
		early = new(bytes.Buffer)
		stderr = early
	}
	code := run(ctx, os.Args[1:], os.Stdout, stderr)
	stop()
	if early != nil && early.Len() > 0 {
		windowsEventError(early.String())
	}
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "inspect":
		err = cmdInspect(ctx, args[1:], stdout, stderr)
	case "plan":
		err = cmdPlan(ctx, args[1:], stdout, stderr)
	case "sync":
		err = cmdSync(ctx, args[1:], stdout, stderr)
	case "run":
		err = cmdRun(ctx, args[1:], stdout, stderr)
	case "report":
		err = cmdReport(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		err = cmdVersion(args[1:], stdout)
	case "check":
		err = cmdCheck(ctx, args[1:], stdout, stderr)
	case "service":
		err = cmdService(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		err = usagef("unknown command %q", args[0])
	}
	return exitCode(err, stderr)
}

// helpHint is what a usage or configuration error ends with (the usage
// text itself would bury the one line that matters).
const helpHint = "run 'smimesync help' for usage, and see the README for the configuration reference"

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintln(stderr, "smimesync:", termsafe.String(line))
	}
	var ue usageError
	var ce *config.Error
	switch {
	case errors.As(err, &ue), errors.As(err, &ce), errors.Is(err, ldapsource.ErrConfig):
		// ldapsource.ErrConfig: a pass found a slip (a password variable
		// not set) where no config.Error names it, as in the service.
		fmt.Fprintln(stderr, helpHint)
		return exitUsage
	case errors.Is(err, smimesync.ErrGuardTripped):
		return exitGuard
	}
	return exitRuntime
}
