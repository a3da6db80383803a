package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/smimesync/go-smimesync/smimesync"
)

// syncers builds one Syncer per configured sink.
func (c *Config) syncers(log *slog.Logger) ([]namedSyncer, error) {
	src, err := c.source(log)
	if err != nil {
		return nil, err
	}
	pol, err := c.policy(log)
	if err != nil {
		return nil, err
	}
	sinks, err := c.sinks(log)
	if err != nil {
		return nil, err
	}
	var out []namedSyncer
	for i, s := range sinks {
		out = append(out, namedSyncer{name: s.name, Syncer: &smimesync.Syncer{
			Source:      src,
			Sink:        s.sink,
			Policy:      pol,
			Now:         clock,
			State:       c.state(s.name, i),
			Logger:      log.With("sink", s.name),
			Concurrency: cmp.Or(c.Concurrency, s.concurrency),
			Guard:       smimesync.Guard{MaxRemovals: c.Guard.MaxRemovals},
			Prune:       smimesync.Prune{Reasons: c.pruneReasons()},
		}})
	}
	return out, nil
}

type namedSyncer struct {
	name string
	*smimesync.Syncer
}

func setup(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*Config, []namedSyncer, *slog.Logger, bool, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config := fs.String("config", "", "configuration file (YAML)")
	jsonOut := fs.Bool("json", false, "print JSON")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, false, usagef("%s: %v", name, err)
	}
	if *config == "" {
		return nil, nil, nil, false, usagef("%s: --config is required", name)
	}
	if fs.NArg() > 0 {
		return nil, nil, nil, false, usagef("%s: unexpected arguments %v", name, fs.Args())
	}
	cfg, err := loadConfig(*config)
	if err != nil {
		return nil, nil, nil, false, err
	}
	log := cfg.logger(stderr)
	syncers, err := cfg.syncers(log)
	if err != nil {
		return nil, nil, nil, false, err
	}
	return cfg, syncers, log, *jsonOut, nil
}

// cmdPlan prints what a sync would change, writing nothing.
func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var full bool
	_, syncers, _, jsonOut, err := setup("plan", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&full, "full", false, "read the whole directory, not the changes since the last pass")
	})
	if err != nil {
		return err
	}
	for _, s := range syncers {
		planFn := s.Plan
		if full {
			planFn = s.PlanFull
		}
		plan, err := planFn(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if jsonOut {
			if err := writeJSON(stdout, sinkDoc{Sink: s.name, Plan: plan}); err != nil {
				return err
			}
			continue
		}
		printPlan(stdout, s.name, plan)
	}
	return nil
}

// cmdSync plans and applies.
func cmdSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var dryRun, force, full bool
	cfg, syncers, log, jsonOut, err := setup("sync", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "plan and report, write nothing")
		fs.BoolVar(&force, "force", false, "apply even if the mass-change guard would stop this run")
		fs.BoolVar(&full, "full", false, "read the whole directory, not the changes since the last pass")
	})
	if err != nil {
		return err
	}
	if !dryRun {
		unlock, err := lockStates(syncers)
		if err != nil {
			return err
		}
		defer unlock()
	}
	prog := newProgress(stderr, nil)
	for _, s := range syncers {
		s.Progress = prog.hook(s.name)
	}
	var errs []error
	for _, s := range syncers {
		plan := s.Plan
		if full {
			plan = s.PlanFull
		}
		pl, err := plan(ctx)
		prog.clear()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			if e := cfg.saveReport(s.name, "sync", nil, err, log); e != nil {
				errs = append(errs, e)
			}
			continue
		}
		if dryRun {
			rep := &smimesync.Report{Plan: *pl, DryRun: true}
			if jsonOut {
				if err := writeJSON(stdout, reportDoc{Sink: s.name, Report: rep}); err != nil {
					return err
				}
			} else {
				printPlan(stdout, s.name, pl)
				fmt.Fprintln(stdout, "dry run: nothing was written")
			}
			continue
		}
		pl.Force = force
		rep, err := s.Apply(ctx, pl)
		prog.clear()
		if e := cfg.saveReport(s.name, "sync", rep, err, log); e != nil {
			errs = append(errs, e)
		}
		if rep != nil {
			if jsonOut {
				if werr := writeJSON(stdout, reportDoc{Sink: s.name, Report: rep}); werr != nil {
					return werr
				}
			} else {
				printReport(stdout, s.name, rep)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

// sinkDoc is plan --json's document: the plan, and the sink it is for.
type sinkDoc struct {
	Sink string `json:"sink"`
	*smimesync.Plan
}

// reportDoc is sync --json's document.
type reportDoc struct {
	Sink string `json:"sink"`
	*smimesync.Report
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
