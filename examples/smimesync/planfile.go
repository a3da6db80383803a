package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/smimesync/go-smimesync/internal/atomicfile"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// sinkPlaceholder in plan --out FILE and sync --plan FILE stands for the
// sink's name: with several sinks (exchange and graph) each has a plan
// file of its own, as each has a state of its own.
const sinkPlaceholder = "{sink}"

// planPaths returns the plan file of each sink, by name: FILE with
// {sink} replaced. With several sinks FILE must hold {sink}. flag names
// the option, for errors; every path is checked against the files the
// configuration uses (see checkPlanPath).
func (c *Config) planPaths(flag, file string, syncers []service.Named, writes bool) (map[string]string, error) {
	if len(syncers) > 1 && !strings.Contains(file, sinkPlaceholder) {
		var names []string
		for _, s := range syncers {
			names = append(names, s.Name)
		}
		return nil, usagef("%s %s: the configuration has %d sinks (%s), each with a plan of its own: put %s in the name (for example plan.%s.json)",
			flag, file, len(syncers), strings.Join(names, ", "), sinkPlaceholder, sinkPlaceholder)
	}
	out := map[string]string{}
	for _, s := range syncers {
		p, err := filepath.Abs(strings.ReplaceAll(file, sinkPlaceholder, s.Name))
		if err != nil {
			return nil, usagef("%s %s: %v", flag, file, err)
		}
		if err := c.checkPlanPath(flag, p, writes); err != nil {
			return nil, err
		}
		out[s.Name] = p
	}
	return out, nil
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

// savePlan writes a plan file atomically, mode 0600, streaming it.
func savePlan(path string, plan *smimesync.Plan) error {
	err := atomicfile.WriteWith(path, 0o600, func(w io.Writer) error {
		_, err := plan.WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("saving the plan: %w", err)
	}
	return nil
}

// loadPlan reads a plan file. Anything that is not a plan file as plan
// --out wrote it (another file, a changed one) is a usage error: exit 2.
func loadPlan(path string) (*smimesync.Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("--plan: %v", err)
	}
	defer f.Close()
	p, err := smimesync.ReadPlan(f)
	if err != nil {
		return nil, usagef("--plan %s: %v", path, err)
	}
	return p, nil
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
		if plans[s.Name], err = loadPlan(paths[s.Name]); err != nil {
			return err
		}
		plans[s.Name].Force = force
	}
	unlock, err := lockStates(syncers)
	if err != nil {
		return err
	}
	defer unlock()
	var stale []error
	for _, s := range syncers {
		if err := s.CheckPlan(ctx, plans[s.Name]); err != nil {
			if !errors.Is(err, smimesync.ErrStalePlan) {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			stale = append(stale, fmt.Errorf("%s: %w %s: %w", s.Name, errStalePlanFile, paths[s.Name], err))
		}
	}
	if len(stale) > 0 {
		stale = append(stale, fmt.Errorf("nothing was written; plan again ('smimesync plan --config %s --out %s'), review the plan, then 'smimesync sync --config %s --plan %s'",
			cfg.file, file, cfg.file, file))
		return errors.Join(stale...)
	}
	prog := newProgress(stderr, nil)
	var errs []error
	for _, s := range syncers {
		s.Progress = prog.hook(s.Name)
		rep, err := s.Apply(ctx, plans[s.Name])
		prog.clear()
		sinkErrs, werr := cfg.settleApply(s.Name, rep, err, jsonOut, stdout, log)
		if werr != nil {
			return werr
		}
		errs = append(errs, sinkErrs...)
	}
	return errors.Join(errs...)
}
