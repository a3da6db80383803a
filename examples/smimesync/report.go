package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/smimesync/go-smimesync/smimesync/report"
)

// defaultExpiryDays is how far ahead `smimesync report` looks for
// certificates that are about to expire.
const defaultExpiryDays = 30

// cmdReport prints what the saved report says: who has no usable
// certificate, whose certificates expire soon, what was dropped and why,
// and who was not published. It reads the report store through a cursor
// (report.Store.Summarize), opened read-only: while `smimesync run`
// merges a pass into it, it waits a few seconds, then says the store is
// locked.
func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("report", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	config := fl.String("config", "", "configuration file (YAML): read the report it names")
	file := fl.String("file", "", "report store to read, instead of --config (a JSON report of an earlier release is read as it is; nothing is changed)")
	jsonOut := fl.Bool("json", false, "print JSON")
	csvOut := fl.Bool("csv", false, "print CSV, one row per finding")
	days := fl.Int("days", defaultExpiryDays, "list certificates that expire within this many days")
	htmlOut := fl.String("html", "", "write the report as one self-contained HTML page to this file")
	search := fl.String("search", "", "with --html: add the search for these users (name, mail, UPN or DN)")
	if err := fl.Parse(args); err != nil {
		return usagef("report: %v", err)
	}
	switch {
	case fl.NArg() > 0:
		return usagef("report: unexpected arguments %v", fl.Args())
	case (*config == "") == (*file == ""):
		return usagef("report: give --config or --file (one of them)")
	case *jsonOut && *csvOut, *htmlOut != "" && (*jsonOut || *csvOut):
		return usagef("report: --json, --csv and --html exclude each other")
	case *search != "" && *htmlOut == "":
		return usagef("report: --search goes with --html")
	case *days < 0:
		return usagef("report: --days must not be negative")
	}
	path := *file
	var cfg *Config
	if *config != "" {
		var err error
		cfg, err = loadConfig(*config)
		if err != nil {
			return err
		}
		if path = cfg.ReportPath(); path == "" {
			return usagef("report: %s sets neither report.path nor state.path: no report is kept", *config)
		}
		// An earlier release's JSON report that the store has not
		// imported yet (the service was not restarted since the
		// upgrade) is read as it is.
		if legacy := cfg.ReportImport(); legacy != "" {
			if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
				if _, err := os.Lstat(legacy); err == nil {
					path = legacy
				}
			}
		}
	}
	// Read only: the command imports, converts and sets aside nothing
	// (sync and run do), and writes nothing beside the report.
	store, err := report.OpenRead(path)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("report: %s does not exist yet: run `smimesync sync` or `smimesync run` first", path)
	}
	if *htmlOut != "" {
		return writeReportHTML(ctx, cfg, store, path, *htmlOut, *search, *days)
	}
	sum, err := store.Summarize(path, clock(), *days)
	if err != nil {
		return err
	}
	switch {
	case *jsonOut:
		return writeJSON(stdout, sum)
	case *csvOut:
		return sum.WriteCSV(stdout)
	}
	return sum.WriteText(stdout)
}
