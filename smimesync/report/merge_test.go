package report

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smimesync/go-smimesync/smimesync"
)

// reportNow is the report tests' clock.
var reportNow = time.Date(2052, 9, 10, 6, 0, 0, 0, time.UTC)

// updateReport is what sync does after each pass: open the file, merge
// the pass, write it.
func updateReport(path, sink, command string, rep *smimesync.Report, passErr error, now time.Time, log *slog.Logger) error {
	s, err := Open(path, log)
	if err != nil {
		return err
	}
	return s.Record(sink, command, rep, passErr, now)
}

// change makes a Change for the merge tests.
func change(id string, action smimesync.Action, outcome smimesync.Outcome, keep ...string) *smimesync.Change {
	c := &smimesync.Change{ID: id, User: id + "@example.com", Action: action, Outcome: outcome, Keep: []smimesync.Value{}, Drop: []smimesync.Value{}}
	for _, k := range keep {
		c.Keep = append(c.Keep, smimesync.Value{Attribute: k})
	}
	return c
}

func TestReportMerge(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := func(s *Sink) []string {
		var out []string
		for _, e := range s.Entries {
			out = append(out, e.ID+":"+string(e.Action)+":"+string(e.Outcome))
		}
		return out
	}
	s := &Sink{Sink: "x"}

	// A delta before any full pass: the view is partial.
	s.merge("run", &smimesync.Report{Plan: smimesync.Plan{Changes: []*smimesync.Change{
		change("b", smimesync.ActionAdd, smimesync.OutcomeWritten, "userCertificate"),
	}}}, nil, t0)
	if s.Complete || !s.LastFull.IsZero() || s.LastGood != t0 {
		t.Errorf("after a delta: complete %v, last full %v, last good %v", s.Complete, s.LastFull, s.LastGood)
	}

	// A full pass replaces everything.
	s.merge("run", &smimesync.Report{Plan: smimesync.Plan{Full: true, Finished: t0.Add(time.Hour), Changes: []*smimesync.Change{
		change("a", smimesync.ActionAdd, smimesync.OutcomeWritten, "userCertificate"),
		change("c", smimesync.ActionUnchanged, ""),
	}}}, nil, t0.Add(time.Hour))
	if diff := cmp.Diff([]string{"a:add:written", "c:unchanged:"}, ids(s)); diff != "" {
		t.Errorf("after a full pass (-want +got):\n%s", diff)
	}
	if !s.Complete || s.LastFull != t0.Add(time.Hour) {
		t.Errorf("after a full pass: complete %v, last full %v", s.Complete, s.LastFull)
	}

	// A delta updates, adds and forgets deleted entries.
	deleted := change("c", smimesync.ActionSkip, "")
	deleted.Reason = smimesync.SkipDeleted
	failed := change("d", smimesync.ActionReplace, smimesync.OutcomeFailed, "userCertificate")
	failed.Error = "503 Service Unavailable"
	s.merge("run", &smimesync.Report{Plan: smimesync.Plan{Finished: t0.Add(2 * time.Hour), Changes: []*smimesync.Change{
		change("a", smimesync.ActionRemove, smimesync.OutcomeWritten), deleted, failed,
	}}}, errors.New("1 changes failed"), t0.Add(2*time.Hour))
	if diff := cmp.Diff([]string{"a:remove:written", "d:replace:failed"}, ids(s)); diff != "" {
		t.Errorf("after a delta (-want +got):\n%s", diff)
	}
	if s.LastGood != t0.Add(time.Hour) || s.LastPass.Error != "1 changes failed" {
		t.Errorf("a failed pass: last good %v, error %q", s.LastGood, s.LastPass.Error)
	}

	// Planning failed: the entries stay, the pass is recorded.
	s.merge("run", nil, errors.New("ldap: connection refused"), t0.Add(3*time.Hour))
	if len(s.Entries) != 2 || s.LastPass.Error != "ldap: connection refused" || s.LastPass.Finished != t0.Add(3*time.Hour) {
		t.Errorf("after a failed plan: %d entries, last pass %+v", len(s.Entries), s.LastPass)
	}

	// A full plan the guard stopped: the picture is new, the schedule
	// is not reset, and nothing counts as published.
	guard := &smimesync.GuardError{Losing: 600, Max: 500}
	s.merge("run", &smimesync.Report{Plan: smimesync.Plan{Full: true, Finished: t0.Add(4 * time.Hour), Changes: []*smimesync.Change{
		change("a", smimesync.ActionAdd, "", "userCertificate"),
	}}}, guard, t0.Add(4*time.Hour))
	if s.LastFull != t0.Add(time.Hour) {
		t.Errorf("a guard-stopped full pass moved the full-pass schedule to %v", s.LastFull)
	}
	np, ok := unpublished(s.Entries[0])
	if !ok || np.Status != "not-written" {
		t.Errorf("entry of a guard-stopped pass: %+v %v, want not-written", np, ok)
	}
}

func TestReportFileErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.json")
	// A report of ours that cannot be read is set aside, not lost. (A
	// file that is not a report is left alone: report_guard_test.go.)
	damaged := `{"format": "smimesync-report", "version": 1, "updated": 7, "sinks": []}`
	if err := os.WriteFile(path, []byte(damaged), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, ErrBadReport) {
		t.Errorf("Load of a damaged report: %v, want ErrBadReport", err)
	}
	if err := updateReport(path, "file", "sync", nil, errors.New("boom"), reportNow, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path + ".bad"); err != nil || string(b) != damaged {
		t.Errorf("the bad report was not set aside: %q, %v", b, err)
	}
	r, err := Load(path)
	if err != nil || len(r.Sinks) != 1 || r.Sinks[0].LastPass.Error != "boom" {
		t.Errorf("new report: %+v, %v", r, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("report file mode: %v, %v; want 0600", fi.Mode(), err)
	}
	// Another version is refused.
	if err := os.WriteFile(path, []byte(`{"format": "smimesync-report", "version": 9}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, ErrBadReport) || !strings.Contains(err.Error(), "version 9") {
		t.Errorf("Load of version 9: %v", err)
	}
}

// bigReport is a saved report of n users, each with one kept certificate
// and one dropped, as a full pass of a large directory leaves it.
func bigReport(b *testing.B, path string, n int) {
	b.Helper()
	changes := make([]*smimesync.Change, n)
	for i := range changes {
		c := change(strconv.Itoa(i), smimesync.ActionUnchanged, "", "userCertificate")
		c.DN = "CN=User " + strconv.Itoa(i) + ",OU=Staff,DC=example,DC=com"
		c.Keep[0].NotAfter = reportNow.AddDate(0, 0, i%400)
		c.Drop = append(c.Drop, smimesync.Value{Attribute: "userCertificate", Reasons: []smimesync.Reason{smimesync.ReasonExpired}})
		changes[i] = c
	}
	rep := &smimesync.Report{Plan: smimesync.Plan{Full: true, Changes: changes}}
	if err := updateReport(path, "file", "run", rep, nil, reportNow, nil); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReportDeltaPass is what updating the report file costs sync
// after a delta pass: read the file, merge 100 changes, write it
// atomically. (run keeps the report in memory between passes and skips
// the read, and the write after a quiet pass.)
func BenchmarkReportDeltaPass(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(strconv.Itoa(n)+"users", func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "r.json")
			bigReport(b, path, n)
			delta := &smimesync.Report{Plan: smimesync.Plan{Changes: []*smimesync.Change{}}}
			for i := range 100 {
				delta.Changes = append(delta.Changes, change(strconv.Itoa(i*7), smimesync.ActionReplace, "written", "userCertificate"))
			}
			b.ResetTimer()
			for b.Loop() {
				if err := updateReport(path, "file", "run", delta, nil, reportNow, nil); err != nil {
					b.Fatal(err)
				}
			}
			if fi, err := os.Stat(path); err == nil {
				b.ReportMetric(float64(fi.Size())/float64(n), "filebytes/user")
			}
		})
	}
}
