package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/smimesync/check"
)

// errChecksFailed is what check returns when some check failed: exit 1.
var errChecksFailed = errors.New("some checks failed")

// cmdCheck walks every configured part in order and says, for each,
// whether it works and, when not, what to do (the checks are package
// check's). It writes nothing, except
// with --probe: see checkProbe.
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config := fs.String("config", "", "configuration file (YAML)")
	jsonOut := fs.Bool("json", false, "print JSON")
	probe := fs.String("probe", "", "write this recipient's certificates back unchanged and read them back")
	trace := traceFlag(fs)
	cfg, err := commandConfig("check", fs, args, trace)
	if err != nil {
		return err
	}
	defer cfg.trace.Close()
	log := cfg.Logger(stderr)
	src, err := cfg.BuildSource(log)
	if err != nil {
		return err
	}
	sinks, err := cfg.BuildSinks(log)
	if err != nil {
		return err
	}

	c := &check.Checker{Part: check.PartConfig}
	c.OK("configuration", *config+" loads")
	if cfg.State.Path == "" {
		c.Note("state", "no state.path", "every run is a first run; set state.path to remember what was published")
	}
	for i, s := range sinks {
		if st := cfg.Store(s.Name, i); cfg.State.Path != "" && st != nil {
			c.State(st)
		}
	}
	for _, l := range []struct {
		key   string
		files []string
	}{{"policy.roots", cfg.Policy.Roots}, {"policy.intermediates", cfg.Policy.Intermediates}, {"policy.managed_cas", cfg.Policy.ManagedCAs}} {
		for i, f := range l.files {
			key := fmt.Sprintf("%s[%d]", l.key, i)
			certs, err := cfg.ReadCerts(key, f)
			c.PolicyFile(key, f, certs, err)
		}
	}
	c.Part = check.PartDirectory
	c.Source(ctx, "", src)
	probed := false
	for _, s := range sinks {
		c.Part = s.Name
		switch sk := s.Sink.(type) {
		case *exchange.Sink:
			configured := ""
			if x := cfg.Sink.Exchange; x != nil {
				if ep, err := x.ResolvedEndpoints(); err == nil {
					configured = ep.Exchange
				}
			}
			if c.Exchange(ctx, sk, configured) && *probe != "" {
				c.Part = check.PartProbe
				c.Probe(ctx, sk, *probe)
				probed = true
			}
		case check.CloudProber:
			c.Cloud(ctx, s.Name, sk, graphRoles)
		default:
			c.OK("sink", s.Name+": nothing to check beyond the state")
		}
	}
	if *probe != "" && !probed {
		c.Part = check.PartProbe
		c.Fail("probe "+*probe, "not run: the probe needs a working exchange sink (the graph sink cannot read certificates back)",
			"configure sink.exchange and fix what is marked ✗ above, then run check --probe again")
	}

	failed := c.Failed()
	if *jsonOut {
		if err := writeJSON(stdout, c.Report()); err != nil {
			return err
		}
	} else {
		printChecks(stdout, c.Results)
	}
	if failed > 0 {
		return fmt.Errorf("check: %d of %d checks failed: %w", failed, len(c.Results), errChecksFailed)
	}
	return nil
}

// printChecks prints the items grouped by part.
func printChecks(w io.Writer, items []check.Result) {
	part := ""
	for _, it := range items {
		if it.Part != part {
			part = it.Part
			fmt.Fprintln(w, termSafe(partTitle(part)))
		}
		mark := "✓"
		if !it.OK {
			mark = "✗"
		}
		line := "  " + mark + " " + it.Check
		if it.Detail != "" {
			line += ": " + it.Detail
		}
		fmt.Fprintln(w, termSafe(line))
		if it.Fix != "" {
			fmt.Fprintln(w, termSafe("      fix: "+it.Fix))
		}
		if it.Note != "" {
			fmt.Fprintln(w, termSafe("      note: "+it.Note))
		}
	}
}

func partTitle(part string) string {
	switch part {
	case "config":
		return "Configuration and state"
	case "directory":
		return "Directory"
	case "probe":
		return "Probe (writes)"
	}
	return "Sink " + part
}
