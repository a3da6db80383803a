package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/status"
)

// defaultExpiryDays is how far ahead `smimesync report` looks for
// certificates that are about to expire.
const defaultExpiryDays = 30

// saveReport merges one pass of one sink into the report file, if the
// configuration keeps one (see report.Store.Record). sync calls it after
// each Apply; rep is nil when planning failed.
func (c *Config) saveReport(sink, command string, rep *smimesync.Report, passErr error, log *slog.Logger) error {
	path := c.ReportPath()
	if path == "" || (rep != nil && rep.DryRun) {
		return nil
	}
	store, err := report.Open(path, log)
	if err != nil {
		return err
	}
	return store.Record(sink, command, rep, passErr, clock())
}

// flushStatus writes what the service's last passes left in the report
// store (through the status page, which holds its lock).
func flushStatus(page *status.Status, log *slog.Logger) {
	if err := page.Flush(); err != nil {
		log.Error("saving the report", "err", err)
	}
}

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
		return writeReportCSV(stdout, sum)
	}
	printReportSummary(stdout, sum)
	return nil
}

// printReportSummary prints the summary a person reads at a glance, then
// the lists.
func printReportSummary(w io.Writer, r *report.Summary) {
	fmt.Fprintf(w, "smimesync report from %s, as of %s\n", termSafe(r.File), stamp(r.At))
	for _, s := range r.Sinks {
		fmt.Fprintf(w, "\nSink %q: %s\n", termSafe(s.Sink), plural(s.Users, "user"))
		lp := s.LastPass
		kind := "delta"
		if lp.Full {
			kind = "full"
		}
		result := "ok"
		if lp.Error != "" {
			result = "FAILED: " + termSafe(lp.Error)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  last pass\t%s %s, finished %s: %s; %d written, %d failed, %d not writable\n",
			lp.Command, kind, stamp(lp.Finished), result, lp.Summary.Written, lp.Summary.Failed, lp.Summary.NotWritable)
		fmt.Fprintf(tw, "  last good pass\t%s\n", stamp(s.LastGood))
		fmt.Fprintf(tw, "  last full pass\t%s\n", stamp(s.LastFull))
		fmt.Fprintf(tw, "  no usable certificate\t%d\n", len(s.NoUsable))
		fmt.Fprintf(tw, "  expiring within %d days\t%d\n", r.WithinDays, len(s.Expiring))
		fmt.Fprintf(tw, "  dropped values\t%d%s\n", len(s.Dropped), reasonCounts(s.DroppedByReason))
		fmt.Fprintf(tw, "  not published\t%d\n", len(s.NotPublished))
		if len(s.Departed) > 0 {
			fmt.Fprintf(tw, "  left the directory\t%d\n", len(s.Departed))
		}
		tw.Flush()
		if !s.Complete {
			fmt.Fprintln(w, "  note: no full pass recorded yet; the lists cover only the entries read so far")
		}

		if len(s.NoUsable) > 0 {
			fmt.Fprintf(w, "\nNo usable certificate (%d)\n", len(s.NoUsable))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  USER\tWHY")
			for _, u := range s.NoUsable {
				fmt.Fprintf(tw, "  %s\t%s\n", termSafe(u.User), termSafe(u.Why))
			}
			tw.Flush()
		}
		if len(s.Expiring) > 0 {
			fmt.Fprintf(w, "\nExpiring within %d days (%d)\n", r.WithinDays, len(s.Expiring))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  USER\tEXPIRES\tLEFT\tATTRIBUTE\tSHA256")
			for _, x := range s.Expiring {
				left := fmt.Sprintf("%d days", x.Days)
				switch {
				case x.Days == 1:
					left = "1 day"
				case x.NotAfter.Before(r.At):
					left = "EXPIRED"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", termSafe(x.User), stamp(x.NotAfter), left, termSafe(x.Attribute), short(x.SHA256))
			}
			tw.Flush()
		}
		if len(s.Dropped) > 0 {
			fmt.Fprintf(w, "\nDropped values (%d)\n", len(s.Dropped))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  USER\tATTRIBUTE\tSHA256\tWHY")
			for _, d := range s.Dropped {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", termSafe(d.User), termSafe(d.Attribute), short(d.SHA256), termSafe(joinReasons(d.Reasons)))
			}
			tw.Flush()
		}
		if len(s.NotPublished) > 0 {
			fmt.Fprintf(w, "\nNot published (%d)\n", len(s.NotPublished))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  USER\tSTATUS\tWHY")
			for _, n := range s.NotPublished {
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", termSafe(n.User), termSafe(n.Status), termSafe(dash(n.Why)))
			}
			tw.Flush()
		}
		if len(s.Departed) > 0 {
			fmt.Fprintf(w, "\nLeft the directory with certificates published (%d)\n", len(s.Departed))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  USER\tRECIPIENT\tSTATUS\tWHY")
			for _, d := range s.Departed {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", termSafe(d.User), termSafe(dash(d.Recipient)), termSafe(d.Status), termSafe(dash(d.Why)))
			}
			tw.Flush()
		}
	}
}

// writeReportCSV prints one row per finding, for a spreadsheet. Its
// cells go through termSafe too: CSV is often read on a terminal, and
// encoding/csv quotes a control character but does not escape it.
func writeReportCSV(w io.Writer, r *report.Summary) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"sink", "section", "user", "id", "dn", "source", "recipient",
		"attribute", "sha256", "not_after", "days_left", "reasons", "detail"})
	row := func(sink, section string, u report.UserRef, attr, sha, notAfter, days, reasons, detail string) {
		cw.Write(termSafeAll([]string{sink, section, u.User, u.ID, u.DN, u.Source, u.Recipient, attr, sha, notAfter, days, reasons, detail}))
	}
	for _, s := range r.Sinks {
		for _, u := range s.NoUsable {
			row(s.Sink, "no-usable-certificate", u.UserRef, "", "", "", "", "", u.Why)
		}
		for _, x := range s.Expiring {
			row(s.Sink, "expiring", x.UserRef, x.Attribute, x.SHA256.String(), x.NotAfter.Format(time.RFC3339),
				strconv.Itoa(x.Days), "", "")
		}
		for _, d := range s.Dropped {
			row(s.Sink, "dropped", d.UserRef, d.Attribute, d.SHA256.String(), "", "", joinReasons(d.Reasons),
				strings.Join(d.Notes, "; "))
		}
		for _, n := range s.NotPublished {
			row(s.Sink, "not-published", n.UserRef, "", "", "", "", n.Status, n.Why)
		}
		for _, d := range s.Departed {
			row(s.Sink, "departed", d.UserRef, "", "", "", "", d.Status, d.Why)
		}
	}
	cw.Flush()
	return cw.Error()
}

func joinReasons(rs []smimesync.Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, " ")
}

// reasonCounts is " (expired 2, over-limit 5)", or "" for none.
func reasonCounts(m map[smimesync.Reason]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", r, m[r]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// stamp formats a time for people, in UTC to the minute; "never" for zero.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// short is a fingerprint's first 16 hex digits: enough to find it.
func short(f smimesync.Fingerprint) string { return f.String()[:16] }
