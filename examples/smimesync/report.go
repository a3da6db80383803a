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
// and who was not published.
func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("report", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	config := fl.String("config", "", "configuration file (YAML): read the report it names")
	file := fl.String("file", "", "report file to read, instead of --config")
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
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("report: %s does not exist yet: run `smimesync sync` or `smimesync run` first", path)
	}
	saved, err := report.Load(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if *htmlOut != "" {
		return writeReportHTML(ctx, cfg, saved, path, *htmlOut, *search, *days)
	}
	sum := report.Summarize(saved, path, clock(), *days)
	switch {
	case *jsonOut:
		return writeJSON(stdout, sum)
	case *csvOut:
		return sum.WriteCSV(stdout)
	}
	return sum.WriteText(stdout)
}
