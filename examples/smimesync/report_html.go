package main

import (
	"bytes"
	"context"
	"fmt"

	"github.com/smimesync/go-smimesync/internal/atomicfile"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/status"
)

// writeReportHTML is `smimesync report --html FILE`: the status page's view
// of the report as one self-contained HTML file (status.WriteFile), to
// mail or archive. With search, the file holds that search too; with a
// configuration, the search shows what each sink's state says was
// published. The file names people: it is written mode 0600, atomically.
func writeReportHTML(ctx context.Context, cfg *Config, store *report.Store, reportPath, out, search string, days int) error {
	opts := status.FileOptions{ReportFile: reportPath, Now: clock(), Query: search, ExpiryDays: days}
	if cfg != nil && search != "" {
		opts.Published = cfg.Published()
	}
	var b bytes.Buffer
	if err := status.WriteFile(ctx, &b, store, opts); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := atomicfile.Write(out, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("report: writing the HTML report: %w", err)
	}
	return nil
}
