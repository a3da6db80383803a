package config

import (
	"log/slog"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
)

// SaveReport merges one pass of one sink into the report file
// (File.ReportPath), if the configuration keeps one, at File.Now: what a
// program that runs one pass at a time (`smimesync sync`) calls after
// each Apply (report.Store.Record). command names the program; rep is nil
// when planning failed; a dry run's report is not saved (it wrote
// nothing). log (nil: discard) is told of a damaged report set aside. A
// service keeps the report open instead (status.Status.Attach).
func (c *File) SaveReport(sink, command string, rep *smimesync.Report, passErr error, log *slog.Logger) error {
	path := c.ReportPath()
	if path == "" || (rep != nil && rep.DryRun) {
		return nil
	}
	store, err := report.Open(path, log)
	if err != nil {
		return err
	}
	return store.Record(sink, command, rep, passErr, c.now()())
}
