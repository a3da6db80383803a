package config

import (
	"log/slog"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
)

// OpenReport opens the report store (File.ReportPath), importing the JSON
// report of an earlier release once (File.ReportImport): see
// report.OpenOptions. It returns nil, nil when the configuration keeps no
// report. log (nil: discard) is told of a damaged report set aside and of
// an import.
func (c *File) OpenReport(log *slog.Logger) (*report.Store, error) {
	path := c.ReportPath()
	if path == "" {
		return nil, nil
	}
	return report.OpenOptions(path, report.Options{Logger: log, Import: c.ReportImport()})
}

// SaveReport merges one pass of one sink into the report store
// (File.OpenReport), if the configuration keeps one, at File.Now: what a
// program that runs one pass at a time (`smimesync sync`) calls after
// each Apply (report.Store.Record). command names the program; rep is nil
// when planning failed; a dry run's report is not saved (it wrote
// nothing). log (nil: discard) is told of a damaged report set aside. A
// service keeps its Store instead (status.Status.Attach).
func (c *File) SaveReport(sink, command string, rep *smimesync.Report, passErr error, log *slog.Logger) error {
	if rep != nil && rep.DryRun {
		return nil
	}
	store, err := c.OpenReport(log)
	if err != nil || store == nil {
		return err
	}
	return store.Record(sink, command, rep, passErr, c.now()())
}
