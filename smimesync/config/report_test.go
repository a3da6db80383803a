package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
)

// TestSaveReport: what sync calls after each Apply. A dry run saves
// nothing; a configuration without state or report path keeps nothing;
// the pass is dated by File.Now.
func TestSaveReport(t *testing.T) {
	dir := t.TempDir()
	now := testclock.Now().UTC().Truncate(time.Second)
	c := &File{State: State{Path: "state.json"}, Dir: dir, Now: func() time.Time { return now }}
	rep := &smimesync.Report{Plan: smimesync.Plan{Full: true, Changes: []*smimesync.Change{
		{ID: "a", User: "a@example.com", DN: "CN=a,DC=example,DC=com", Action: smimesync.ActionAdd, Outcome: smimesync.OutcomeWritten},
	}}}
	path := filepath.Join(dir, "state.report.db")

	if err := c.SaveReport("file", "sync", &smimesync.Report{DryRun: true}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a dry run saved a report: %v", err)
	}
	if err := c.SaveReport("file", "sync", rep, nil, nil); err != nil {
		t.Fatal(err)
	}
	r, err := report.Load(path)
	if err != nil || len(r.Sinks) != 1 || r.Sinks[0].LastPass.Command != "sync" || len(r.Sinks[0].Entries) != 1 ||
		!r.Sinks[0].LastPass.Finished.Equal(now) {
		t.Errorf("saved report: %+v, %v", r, err)
	}
	if err := (&File{Dir: dir}).SaveReport("file", "sync", rep, nil, nil); err != nil {
		t.Errorf("no report configured: %v, want nil", err)
	}
}
