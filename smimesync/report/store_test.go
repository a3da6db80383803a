package report

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestStoreQuietSaves: a Store writes the file after a pass that changed
// or failed something, after a quiet delta only every QuietSaveEvery, and
// what is left on Flush.
func TestStoreQuietSaves(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	path := filepath.Join(t.TempDir(), "r.json")
	st, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.QuietSaveEvery = 15 * time.Minute
	onFile := func() time.Time {
		t.Helper()
		r, err := Load(path)
		if err != nil || len(r.Sinks) == 0 {
			return time.Time{}
		}
		return r.Sinks[0].LastPass.Finished
	}
	full := &smimesync.Report{Plan: smimesync.Plan{Full: true, Changes: []*smimesync.Change{change("a", smimesync.ActionAdd, smimesync.OutcomeWritten, "userCertificate")}}}
	quiet := &smimesync.Report{Plan: smimesync.Plan{Changes: []*smimesync.Change{}}}
	for _, step := range []struct {
		name  string
		after time.Duration
		rep   *smimesync.Report
		err   error
		saved bool
	}{
		{"full pass", 0, full, nil, true},
		{"quiet delta", time.Minute, quiet, nil, false},
		{"quiet delta, 15 minutes on", 15 * time.Minute, quiet, nil, true},
		{"failed plan", time.Minute, nil, errors.New("ldap down"), true},
		{"quiet delta after a failure", time.Minute, quiet, nil, true},
		{"quiet delta again", time.Minute, quiet, nil, false},
	} {
		now = now.Add(step.after)
		if err := st.Record("file", "run", step.rep, step.err, now); err != nil {
			t.Fatal(err)
		}
		if got := onFile().Equal(now); got != step.saved {
			t.Errorf("%s: written %v, want %v", step.name, got, step.saved)
		}
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	if !onFile().Equal(now) {
		t.Error("Flush did not write the last pass")
	}
	if got := st.LastFull("file"); !got.Equal(t0) {
		t.Errorf("LastFull = %v, want %v", got, t0)
	}
}
