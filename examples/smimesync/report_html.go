package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	"github.com/smimesync/go-smimesync/internal/atomicfile"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/status"
)

// writeReportHTML is `smimesync report --html FILE`: the status page's view
// of the report as one self-contained HTML file (status.WriteFile), to
// mail or archive. With search, the file holds that search too; with a
// configuration, the search shows what each sink's state says was
// published. The file names people: it is written mode 0600, atomically.
func writeReportHTML(ctx context.Context, cfg *Config, saved *report.File, reportPath, out, search string, days int) error {
	opts := status.FileOptions{ReportFile: reportPath, Now: clock(), Query: search, ExpiryDays: days}
	if cfg != nil && search != "" {
		opts.Published = cfg.publishedFunc()
	}
	var b bytes.Buffer
	if err := status.WriteFile(ctx, &b, saved, opts); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := atomicfile.Write(out, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("report: writing the HTML report: %w", err)
	}
	return nil
}

// publishedFunc reads what each configured sink's state says was
// published (the state file of the sink, as sync and run keep it). It
// returns nil, and the page says it cannot show the recipients' side, when
// the configuration keeps no state or its sinks cannot be built here.
func (c *Config) publishedFunc() status.PublishedFunc {
	if c.State.Path == "" {
		return nil
	}
	sinks, err := c.BuildSinks(slog.New(slog.DiscardHandler))
	if err != nil {
		return nil
	}
	states := map[string]smimesync.State{}
	for i, s := range sinks {
		states[s.Name] = c.Store(s.Name, i)
	}
	return func(ctx context.Context, sink string) (map[string]smimesync.Published, error) {
		st, ok := states[sink]
		if !ok {
			return nil, nil
		}
		snap, err := st.Load(ctx)
		if err != nil {
			return nil, err
		}
		return snap.Published, nil
	}
}
