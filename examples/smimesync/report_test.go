package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/config"
	"github.com/smimesync/go-smimesync/smimesync/report"
)

// reportNow is the report tests' clock: 17 days before Alice's
// certificate (RFC 9216) expires on 2052-09-27.
var reportNow = time.Date(2052, 9, 10, 6, 0, 0, 0, time.UTC)

// syncReportFixture syncs testdata/report/users.ldif to a file sink seeded
// with testdata/report/tenant.json, with the clock at reportNow, and
// saves the report as run does. It returns the report file's path.
func syncReportFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tenant, err := os.ReadFile("testdata/report/tenant.json")
	if err != nil {
		t.Fatal(err)
	}
	sinkPath := filepath.Join(dir, "published.json")
	if err := os.WriteFile(sinkPath, tenant, 0o600); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return reportNow }
	s := &smimesync.Syncer{
		Source: &directory.LDIFFile{Path: "testdata/report/users.ldif"},
		Sink:   &cloud.FileSink{Path: sinkPath, Now: now},
		Policy: &smimesync.Policy{Now: now},
		Now:    now,
	}
	rep, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	path := filepath.Join(dir, "state.report.json")
	if err := updateReport(path, "file", "run", rep, nil, reportNow, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReportGolden checks the three outputs of `smimesync report` for a
// directory with one user of each kind: certificate report.Expiring within 30
// days (Alice), only a wrong-address certificate (Bob), only an expired
// one (Hanako), none at all (Carol), and one whose recipient is
// read-only (Dave).
func TestReportGolden(t *testing.T) {
	path := syncReportFixture(t)
	saved, err := report.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := report.Summarize(saved, "state.report.json", reportNow, defaultExpiryDays)

	var text, js, cs strings.Builder
	printReportSummary(&text, sum)
	if err := writeJSON(&js, sum); err != nil {
		t.Fatal(err)
	}
	if err := writeReportCSV(&cs, sum); err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct{ file, got string }{
		{"summary.golden.txt", text.String()},
		{"summary.golden.json", js.String()},
		{"summary.golden.csv", cs.String()},
	} {
		golden := filepath.Join("testdata", "report", g.file)
		if *update {
			if err := os.WriteFile(golden, []byte(g.got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), g.got); diff != "" {
			t.Errorf("%s differs (-want +got); run with -update if intended:\n%s", golden, diff)
		}
	}

	// What the goldens must say, independently of how they are laid out.
	if len(sum.Sinks) != 1 {
		t.Fatalf("sinks: %d", len(sum.Sinks))
	}
	s := sum.Sinks[0]
	users := func(refs []report.UserRef) []string {
		var out []string
		for _, r := range refs {
			out = append(out, r.User)
		}
		return out
	}
	var noUsable, expiringUsers, droppedUsers, unpublishedUsers []report.UserRef
	for _, x := range s.NoUsable {
		noUsable = append(noUsable, x.UserRef)
	}
	for _, x := range s.Expiring {
		expiringUsers = append(expiringUsers, x.UserRef)
		if x.Days != 17 || x.NotAfter != time.Date(2052, 9, 27, 6, 54, 18, 0, time.UTC) {
			t.Errorf("%s: %d days left, notAfter %v; want 17 days, 2052-09-27T06:54:18Z", x.User, x.Days, x.NotAfter)
		}
	}
	for _, x := range s.Dropped {
		droppedUsers = append(droppedUsers, x.UserRef)
	}
	for _, x := range s.NotPublished {
		unpublishedUsers = append(unpublishedUsers, x.UserRef)
	}
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"no usable certificate", users(noUsable), []string{"bob@smime.example", "carol@smime.example", "hanako.yamada@example.com"}},
		// Alice's certificate twice (userCertificate and the one in her
		// blob), Dave's once.
		{"expiring", users(expiringUsers), []string{"alice@smime.example", "alice@smime.example", "dave@smime.example"}},
		{"dropped", users(droppedUsers), []string{"bob@smime.example", "hanako.yamada@example.com"}},
		{"not published", users(unpublishedUsers), []string{"dave@smime.example"}},
	} {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.what, diff)
		}
	}
	if diff := cmp.Diff(map[smimesync.Reason]int{"expired": 1, "no-matching-address": 1}, s.DroppedByReason); diff != "" {
		t.Errorf("dropped by reason (-want +got):\n%s", diff)
	}
	if np := s.NotPublished[0]; np.Status != string(smimesync.SkipReadOnly) || np.Why != "directory-synced" {
		t.Errorf("Dave: status %q (%q), want read-only (directory-synced)", np.Status, np.Why)
	}

	// A shorter horizon lists nothing as report.Expiring.
	if n := len(report.Summarize(saved, path, reportNow, 7).Sinks[0].Expiring); n != 0 {
		t.Errorf("within 7 days: %d expiring, want 0", n)
	}
	// Past the date, the certificate shows as expired.
	later := report.Summarize(saved, path, reportNow.AddDate(0, 1, 0), 30)
	if x := later.Sinks[0].Expiring; len(x) != 3 || x[0].Days >= 0 {
		t.Errorf("a month later: %+v, want 3 expired", x)
	}

	// The CSV parses, with the same number of fields on every row.
	rows, err := csv.NewReader(strings.NewReader(cs.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + 3 + 3 + 2 + 1; len(rows) != want {
		t.Errorf("CSV has %d rows, want %d", len(rows), want)
	}
}

// change makes a Change for the merge tests.
func change(id string, action smimesync.Action, outcome smimesync.Outcome, keep ...string) *smimesync.Change {
	c := &smimesync.Change{ID: id, User: id + "@example.com", Action: action, Outcome: outcome, Keep: []smimesync.Value{}, Drop: []smimesync.Value{}}
	for _, k := range keep {
		c.Keep = append(c.Keep, smimesync.Value{Attribute: k})
	}
	return c
}

// TestReportCommand runs `run --once` then `report` on its report.
func TestReportCommand(t *testing.T) {
	// testdata/users.ldif holds the RFC 9216 sample certificates, whose
	// validity is fixed: judge them at the corpus's time, and ask for the
	// certificates report.Expiring within the days Alice's has left then.
	useCorpusClock(t)
	days := strconv.Itoa(int(pemCertificate(t, "testdata/alice.crt").NotAfter.Sub(clock()).Hours()/24) + 1)
	cfg := writeConfig(t, basicConfig+"log: {level: error}\n")
	code, _, stderr := runCLI(t, "report", "--config", cfg)
	if code != exitRuntime || !strings.Contains(stderr, "does not exist yet") {
		t.Errorf("report before any run: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "run", "--once", "--config", cfg); code != exitOK {
		t.Fatalf("run --once: exit %d: %s", code, stderr)
	}

	code, stdout, stderr := runCLI(t, "report", "--config", cfg)
	if code != exitOK {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		`Sink "file": 2 users`,
		"run full, finished",
		"no usable certificate    1",
		"No usable certificate (1)",
		"bob@smime.example  all dropped: no-matching-address",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, _ = runCLI(t, "report", "--file", filepath.Join(filepath.Dir(cfg), "state.report.json"), "--json", "--days", days)
	var doc report.Summary
	if err := json.Unmarshal([]byte(stdout), &doc); code != exitOK || err != nil {
		t.Fatalf("report --json: exit %d, %v", code, err)
	}
	if len(doc.Sinks) != 1 || strconv.Itoa(doc.WithinDays) != days || len(doc.Sinks[0].Expiring) != 2 || len(doc.Sinks[0].NoUsable) != 1 {
		t.Errorf("report --json: %+v", doc)
	}

	code, stdout, _ = runCLI(t, "report", "--config", cfg, "--csv")
	if code != exitOK || !strings.HasPrefix(stdout, "sink,section,user,") || !strings.Contains(stdout, "file,dropped,bob@smime.example,") {
		t.Errorf("report --csv: exit %d:\n%s", code, stdout)
	}

	for name, args := range map[string][]string{
		"neither":   {"report"},
		"both":      {"report", "--config", cfg, "--file", "x.json"},
		"json+csv":  {"report", "--config", cfg, "--json", "--csv"},
		"bad days":  {"report", "--config", cfg, "--days", "-1"},
		"extra arg": {"report", "--config", cfg, "more"},
		"no state":  {"report", "--config", writeConfig(t, strings.Replace(basicConfig, "state:  {path: state.json}\n", "", 1))},
	} {
		if code, _, stderr := runCLI(t, args...); code != exitUsage {
			t.Errorf("%s: exit %d, want %d (%s)", name, code, exitUsage, stderr)
		}
	}
}

// TestSaveReport: what sync calls after each Apply. A dry run saves
// nothing; a configuration without state or report path keeps nothing.
func TestSaveReport(t *testing.T) {
	dir := t.TempDir()
	c := &Config{File: &config.File{State: config.State{Path: "state.json"}, Dir: dir}}
	rep := &smimesync.Report{Plan: smimesync.Plan{Full: true, Changes: []*smimesync.Change{
		change("a", smimesync.ActionAdd, smimesync.OutcomeWritten, "userCertificate"),
	}}}
	path := filepath.Join(dir, "state.report.json")

	if err := c.saveReport("file", "sync", &smimesync.Report{DryRun: true}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run saved a report: %v", err)
	}
	if err := c.saveReport("file", "sync", rep, nil, nil); err != nil {
		t.Fatal(err)
	}
	r, err := report.Load(path)
	if err != nil || len(r.Sinks) != 1 || r.Sinks[0].LastPass.Command != "sync" || len(r.Sinks[0].Entries) != 1 {
		t.Errorf("saved report: %+v, %v", r, err)
	}
	if err := (&Config{File: &config.File{Dir: dir}}).saveReport("file", "sync", rep, nil, nil); err != nil {
		t.Errorf("no report configured: %v, want nil", err)
	}
}

// bigReport is a saved report of n users, each with one kept certificate
// and one report.Dropped, as a full pass of a large directory leaves it.
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

// BenchmarkReportSummary is `smimesync report` on a large directory.
func BenchmarkReportSummary(b *testing.B) {
	path := filepath.Join(b.TempDir(), "r.json")
	bigReport(b, path, 100_000)
	for b.Loop() {
		r, err := report.Load(path)
		if err != nil {
			b.Fatal(err)
		}
		printReportSummary(io.Discard, report.Summarize(r, path, reportNow, defaultExpiryDays))
	}
}

// updateReport merges one pass into the report file at path, as sync does.
func updateReport(path, sink, command string, rep *smimesync.Report, passErr error, now time.Time, log *slog.Logger) error {
	store, err := report.Open(path, log)
	if err != nil {
		return err
	}
	return store.Record(sink, command, rep, passErr, now)
}
