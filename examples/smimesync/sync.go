package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/smimesync/go-smimesync/internal/termsafe"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

func setup(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*Config, []service.Named, *slog.Logger, bool, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("config", "", "configuration file (YAML)")
	jsonOut := fs.Bool("json", false, "print JSON")
	trace := traceFlag(fs)
	if extra != nil {
		extra(fs)
	}
	cfg, err := commandConfig(name, fs, args, trace)
	if err != nil {
		return nil, nil, nil, false, err
	}
	log := cfg.Logger(stderr)
	syncers, err := cfg.Syncers(log)
	if err != nil {
		cfg.trace.Close()
		return nil, nil, nil, false, err
	}
	return cfg, syncers, log, *jsonOut, nil
}

// commandConfig is what every command that takes --config does once its
// flags (a "config" flag among them) are declared: it parses args,
// requires --config and nothing else on the line, loads the configuration
// and starts the trace (*trace, read after parsing). The caller closes
// cfg.trace.
func commandConfig(name string, fs *flag.FlagSet, args []string, trace *string) (*Config, error) {
	if err := fs.Parse(args); err != nil {
		return nil, usagef("%s: %v", name, err)
	}
	config := fs.Lookup("config").Value.String()
	if config == "" {
		return nil, usagef("%s: --config is required", name)
	}
	if fs.NArg() > 0 {
		return nil, usagef("%s: unexpected arguments %v", name, fs.Args())
	}
	cfg, err := loadConfig(config)
	if err != nil {
		return nil, err
	}
	if err := cfg.startTrace(*trace); err != nil {
		return nil, err
	}
	return cfg, nil
}

// cmdPlan prints what a sync would change, writing nothing.
func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var full bool
	var out string
	cfg, syncers, _, jsonOut, err := setup("plan", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&full, "full", false, "read the whole directory, not the changes since the last pass")
		fs.StringVar(&out, "out", "", "save the plan to FILE, for sync --plan FILE ({sink} in FILE: the sink's name)")
	})
	if err != nil {
		return err
	}
	defer cfg.trace.Close()
	var outs map[string]string
	if out != "" {
		if outs, err = cfg.planPaths("--out", out, syncers, true); err != nil {
			return err
		}
	}
	var errs []error
	for _, s := range syncers {
		planFn := s.Plan
		if full {
			planFn = s.PlanFull
		}
		plan, err := planFn(ctx)
		if err != nil {
			return cfg.PassError(fmt.Errorf("%s: %w", s.Name, err))
		}
		if jsonOut {
			if err := writePlanJSON(stdout, s.Name, plan); err != nil {
				return err
			}
		} else {
			report.WritePlan(stdout, s.Name, plan)
		}
		if out != "" {
			if err := smimesync.WritePlanFile(outs[s.Name], plan); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			if !jsonOut {
				fmt.Fprintf(stdout, "%s: plan saved to %s; review it, then apply exactly it with 'smimesync sync --plan %s'\n", s.Name, termsafe.String(outs[s.Name]), termsafe.String(out))
			}
		}
		if err := plan.LookupsFailed(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// cmdSync plans and applies.
func cmdSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var dryRun, force, full bool
	var planFile string
	cfg, syncers, log, jsonOut, err := setup("sync", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "plan and report, write nothing")
		fs.BoolVar(&force, "force", false, "apply even if the mass-change guard would stop this run")
		fs.BoolVar(&full, "full", false, "read the whole directory, not the changes since the last pass")
		fs.StringVar(&planFile, "plan", "", "apply exactly the plan saved by plan --out FILE, planning nothing")
	})
	if err != nil {
		return err
	}
	defer cfg.trace.Close()
	if planFile != "" {
		switch {
		case dryRun:
			return usagef("sync: --plan and --dry-run: the plan file is what would be written; read it, or run 'smimesync plan'")
		case full:
			return usagef("sync: --plan and --full: the plan file decides what is read; make it with 'smimesync plan --full --out FILE'")
		}
		return syncPlanFiles(ctx, cfg, syncers, log, planFile, force, jsonOut, stdout, stderr)
	}
	if !dryRun {
		unlock, err := lockStates(syncers)
		if err != nil {
			return err
		}
		defer unlock()
	}
	prog := report.NewProgress(stderr, nil)
	for _, s := range syncers {
		s.Progress = prog.Hook(s.Name)
	}
	var errs []error
	for _, s := range syncers {
		plan := s.Plan
		if full {
			plan = s.PlanFull
		}
		pl, err := plan(ctx)
		prog.Clear()
		if err != nil {
			errs = append(errs, cfg.PassError(fmt.Errorf("%s: %w", s.Name, err)))
			if e := cfg.SaveReport(s.Name, "sync", nil, err, log); e != nil {
				errs = append(errs, e)
			}
			continue
		}
		pl.Force = force
		if dryRun {
			rep := &smimesync.Report{Plan: *pl, DryRun: true}
			var guard error
			var ge *smimesync.GuardError
			if errors.As(s.CheckGuard(pl), &ge) {
				guard = &dryRunGuardError{sink: s.Name, guard: ge}
				rep.Errors = append(rep.Errors, guard.Error())
				errs = append(errs, guard)
			}
			if jsonOut {
				if err := writeReportJSON(stdout, s.Name, rep); err != nil {
					return err
				}
			} else {
				report.WritePlan(stdout, s.Name, pl)
				if guard != nil {
					fmt.Fprintln(stdout, guard)
				}
				fmt.Fprintln(stdout, "dry run: nothing was written")
			}
			pl.Close()
			continue
		}
		rep, err := s.Apply(ctx, pl)
		prog.Clear()
		sinkErrs, werr := cfg.settleApply(s.Name, rep, err, jsonOut, stdout, log)
		pl.Close() // applied: closed already; refused: not kept
		if werr != nil {
			return werr
		}
		errs = append(errs, sinkErrs...)
	}
	return errors.Join(errs...)
}

// settleApply is what sync does with one sink's Apply: it saves the
// report, prints it (text or JSON), and returns the errors to report for
// the sink, and werr when standard output itself failed (the command
// stops).
func (c *Config) settleApply(sink string, rep *smimesync.Report, err error, jsonOut bool, stdout io.Writer, log *slog.Logger) (errs []error, werr error) {
	if rep != nil {
		defer rep.Close() // its rows' temporary file
	}
	if e := c.SaveReport(sink, "sync", rep, err, log); e != nil {
		errs = append(errs, e)
	}
	if rep != nil {
		if jsonOut {
			if werr := writeReportJSON(stdout, sink, rep); werr != nil {
				return nil, werr
			}
		} else {
			report.WriteSync(stdout, sink, rep)
		}
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", sink, err))
	}
	return errs, nil
}

// dryRunGuardError says that the guard would stop the real run, and how to
// go on. It wraps the *smimesync.GuardError, so sync --dry-run exits 3 (as
// the real run would) unless --force is given: a script that runs
// `sync --dry-run && sync` stops before the run that would be refused, and
// can tell this from a failure (1) or a configuration error (2).
type dryRunGuardError struct {
	sink  string
	guard *smimesync.GuardError
}

func (e *dryRunGuardError) Error() string {
	what := fmt.Sprintf("%d recipients would lose certificates", e.guard.Losing)
	if e.guard.Pruning > e.guard.Max {
		what = fmt.Sprintf("%d directory entries would have values removed", e.guard.Pruning)
	}
	return fmt.Sprintf("%s: the guard would stop the real sync: %s, more than guard.max_removals (%d); "+
		"review the plan, then run 'smimesync sync --force' to apply it anyway, or raise guard.max_removals", e.sink, what, e.guard.Max)
}

func (e *dryRunGuardError) Unwrap() error { return e.guard }

// sinkDoc is plan --json's document: the plan, with its rows, and the
// sink it is for.
type sinkDoc struct {
	Sink string `json:"sink"`
	*smimesync.Plan
	// Changes is the plan's rows (a Syncer's plan keeps them in its
	// temporary file: Plan.Rows).
	Changes []*smimesync.Change `json:"changes"`
}

// reportDoc is sync --json's document.
type reportDoc struct {
	Sink string `json:"sink"`
	*smimesync.Report
	Changes []*smimesync.Change `json:"changes"`
}

// writePlanJSON writes plan --json's document.
func writePlanJSON(w io.Writer, sink string, p *smimesync.Plan) error {
	rows, err := p.CollectRows()
	if err != nil {
		return err
	}
	return writeJSON(w, sinkDoc{Sink: sink, Plan: p, Changes: rows})
}

// writeReportJSON writes sync --json's document.
func writeReportJSON(w io.Writer, sink string, r *smimesync.Report) error {
	rows, err := r.CollectRows()
	if err != nil {
		return err
	}
	return writeJSON(w, reportDoc{Sink: sink, Report: r, Changes: rows})
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
