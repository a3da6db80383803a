package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

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
	o := check.SinkOptions{GraphRoles: graphRoles, Probe: *probe}
	if x := cfg.Sink.Exchange; x != nil {
		if ep, err := x.ResolvedEndpoints(); err == nil {
			o.ExchangeEndpoint = ep.Exchange
		}
	}
	var named []check.Sink
	for _, s := range sinks {
		named = append(named, check.Sink{Name: s.Name, Sink: s.Sink})
	}
	c.Sinks(ctx, named, o)

	failed := c.Failed()
	if *jsonOut {
		err = writeJSON(stdout, c.Report())
	} else {
		err = c.Report().WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("check: %d of %d checks failed: %w", failed, len(c.Results), errChecksFailed)
	}
	return nil
}
