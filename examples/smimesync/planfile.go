package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// planPaths returns the plan file of each sink, by name (see
// smimesync.PlanFileNames: with several sinks FILE must hold {sink}).
// flag names the option, for errors; every path is checked against the
// files the configuration uses (see checkPlanPath).
func (c *Config) planPaths(flag, file string, syncers []service.Named, writes bool) (map[string]string, error) {
	var names []string
	for _, s := range syncers {
		names = append(names, s.Name)
	}
	paths, err := smimesync.PlanFileNames(file, names)
	if err != nil {
		return nil, usagef("%s %v", flag, err)
	}
	for _, name := range names {
		if err := c.checkPlanPath(flag, paths[name], writes); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// checkPlanPath refuses a plan file that is a file the configuration
// uses (config.File.CheckFile), as loading refuses two keys naming one
// file: plan --out over the state, the report or the LDIF file would
// destroy it. A plan file only read (sync --plan) may not be a file
// smimesync writes either.
func (c *Config) checkPlanPath(flag, path string, writes bool) error {
	if err := c.CheckFile(path, writes); err != nil {
		return usagef("%s %v", flag, err)
	}
	return nil
}

// errStalePlanFile is wrapped by sync --plan's error when a plan file no
// longer fits the state (or was made for another sink): nothing was
// written to any sink, and sync exits 1.
var errStalePlanFile = errors.New("stale plan file")

// syncPlanFiles is sync --plan: it reads every sink's plan file, checks
// them all against the states (holding the locks), and only then applies
// each exactly, with --force going past the guard as for any sync.
func syncPlanFiles(ctx context.Context, cfg *Config, syncers []service.Named, log *slog.Logger, file string, force, jsonOut bool, stdout, stderr io.Writer) error {
	paths, err := cfg.planPaths("--plan", file, syncers, false)
	if err != nil {
		return err
	}
	plans := map[string]*smimesync.Plan{}
	for _, s := range syncers {
		// Anything that is not a plan file as plan --out wrote it (another
		// file, a changed one) is a usage error: exit 2.
		if plans[s.Name], err = smimesync.ReadPlanFile(paths[s.Name]); err != nil {
			return usagef("--plan %s: %v", paths[s.Name], err)
		}
		plans[s.Name].Force = force
	}
	unlock, err := lockStates(syncers)
	if err != nil {
		return err
	}
	defer unlock()
	if err := service.CheckPlans(ctx, syncers, plans); err != nil {
		if !errors.Is(err, smimesync.ErrStalePlan) {
			return err
		}
		return fmt.Errorf("%w\n%w %s: nothing was written; plan again ('smimesync plan --config %s --out %s'), review the plan, then 'smimesync sync --config %s --plan %s'",
			err, errStalePlanFile, file, cfg.file, file, cfg.file, file)
	}
	prog := report.NewProgress(stderr, nil)
	var errs []error
	for _, s := range syncers {
		s.Progress = prog.Hook(s.Name)
		rep, err := s.Apply(ctx, plans[s.Name])
		prog.Clear()
		sinkErrs, werr := cfg.settleApply(s.Name, rep, err, jsonOut, stdout, log)
		plans[s.Name].Close() // applied: closed already; refused: not kept
		if werr != nil {
			return werr
		}
		errs = append(errs, sinkErrs...)
	}
	return errors.Join(errs...)
}
