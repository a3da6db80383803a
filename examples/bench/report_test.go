package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync/report"
)

// TestTinyRunReport: with -report, every pass but the read-alone one is
// merged into the report store beside the state, and the merge is
// measured and tabled; the store holds every user.
func TestTinyRunReport(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "table.md")
	rep := runJSON(t, "-users", "50", "-dir", dir, "-o", table, "-sink", "file", "-report")
	for _, p := range rep.Runs[0].Passes {
		switch {
		case p.ReadOnly && p.Report != nil:
			t.Errorf("the %s pass read alone, and was recorded", p.Name)
		case !p.ReadOnly && (p.Report == nil || p.Report.Bytes == 0 || p.Report.RecordSeconds <= 0):
			t.Errorf("the %s pass: report %+v", p.Name, p.Report)
		}
	}
	store, err := report.Open(filepath.Join(dir, "state.report.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := store.Summarize("", refClock(), 30)
	if err != nil || len(sum.Sinks) != 1 || sum.Sinks[0].Users+len(sum.Sinks[0].Departed) != 50 || !sum.Sinks[0].Complete {
		t.Errorf("the report store: %+v, %v", sum, err)
	}
	if b, err := os.ReadFile(table); err != nil || !strings.Contains(string(b), "| pass | rows | unlisted | record s |") {
		t.Errorf("the table has no report rows: %v\n%s", err, b)
	}
}
