package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/termsafe"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// fixtureNow is the text tests' clock: 17 days before Alice's certificate
// (RFC 9216) expires on 2052-09-27.
var fixtureNow = time.Date(2052, 9, 10, 6, 0, 0, 0, time.UTC)

// fixture is one sync of testdata/users.ldif to a file sink seeded with
// testdata/tenant.json, with the clock at fixtureNow: the plan, the
// report of its Apply, and the report file a Store kept of it.
type fixture struct {
	plan   *smimesync.Plan
	rep    *smimesync.Report
	report string // the report file's path
}

func syncFixture(t testing.TB) fixture {
	t.Helper()
	dir := t.TempDir()
	tenant, err := os.ReadFile("testdata/tenant.json")
	if err != nil {
		t.Fatal(err)
	}
	sinkPath := filepath.Join(dir, "published.json")
	if err := os.WriteFile(sinkPath, tenant, 0o600); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return fixtureNow }
	s := &smimesync.Syncer{
		Source: &directory.LDIFFile{Path: "testdata/users.ldif"},
		Sink:   &cloud.FileSink{Path: sinkPath, Now: now},
		Policy: &smimesync.Policy{Now: now},
		Now:    now,
	}
	ctx := context.Background()
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	// The plan as it was before Apply, which removes its rows with its
	// temporary file.
	rows, err := plan.CollectRows()
	if err != nil {
		t.Fatal(err)
	}
	shown := &smimesync.Plan{Changes: rows, Summary: plan.Summary, Full: plan.Full, Started: plan.Started, Finished: plan.Finished}
	rep, err := s.Apply(ctx, plan)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	f := fixture{plan: shown, rep: rep, report: filepath.Join(dir, "state.report.db")}
	store, err := report.Open(f.report, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Record("file", "run", rep, nil, fixtureNow); err != nil {
		t.Fatal(err)
	}
	return f
}

// golden compares got with the file testdata/name, or rewrites the file
// with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got); run with -update if intended:\n%s", path, diff)
	}
}

// TestPlanSyncGolden: the plan and sync tables of a directory with one
// user of each kind, rows in the plan's order.
func TestPlanSyncGolden(t *testing.T) {
	f := syncFixture(t)
	var plan, sync strings.Builder
	if err := report.WritePlan(&plan, "file", f.plan); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteSync(&sync, "file", f.rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.golden.txt", plan.String())
	golden(t, "sync.golden.txt", sync.String())
	for _, want := range []string{
		"bob@smime.example          unchanged  0     1     no-matching-address\n",
		"not writable: dave@smime.example (FileRecipient dave@smime.example): directory-synced\n",
	} {
		if !strings.Contains(plan.String(), want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	if !strings.Contains(sync.String(), "1 written, 0 failed, 0 not writable\nstate saved; the next pass continues from here\n") {
		t.Errorf("sync does not say what was written and saved:\n%s", sync.String())
	}
}

// TestPlanWhy: the WHY column of departed users, removals and a current
// set not read from the sink, and the summary's departed line.
func TestPlanWhy(t *testing.T) {
	r := &cloud.Recipient{ID: "r1", Name: "Dora"}
	two := []smimesync.Fingerprint{{1}, {2}}
	for _, tt := range []struct {
		name string
		c    *smimesync.Change
		want string
	}{
		{"depart", &smimesync.Change{Action: smimesync.ActionDepart, Recipient: r, Published: two}, "left the directory: removing what smimesync published from Dora"},
		{"departed kept", &smimesync.Change{Action: smimesync.ActionSkip, Reason: smimesync.SkipDeparted, Recipient: r, Published: two}, "left the directory: 2 certificates published on Dora stay (remove_departed is off)"},
		{"departed detail", &smimesync.Change{Action: smimesync.ActionSkip, Reason: smimesync.SkipDeparted, Published: two[:1], Detail: "over the guard"}, "left the directory: 1 certificate published on the recipient stay (over the guard)"},
		{"read-only", &smimesync.Change{Action: smimesync.ActionSkip, Reason: smimesync.SkipReadOnly, Detail: "directory-synced"}, "directory-synced"},
		{"removes", &smimesync.Change{Action: smimesync.ActionReplace, Removes: two[:1], Drop: []smimesync.Value{{Reasons: []smimesync.Reason{"expired"}}, {Reasons: []smimesync.Reason{"expired"}}}}, "expired ×2 [takes away 1 certificate it carries now]"},
		{"from state", &smimesync.Change{Action: smimesync.ActionUnchanged, CurrentFrom: smimesync.CurrentFromState}, "[current set from " + string(smimesync.CurrentFromState) + "]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.User = "u"
			var b strings.Builder
			report.WritePlan(&b, "x", &smimesync.Plan{Changes: []*smimesync.Change{tt.c}})
			line := strings.Split(b.String(), "\n")[3]
			if !strings.HasSuffix(line, "  "+tt.want) {
				t.Errorf("row %q, want it to end in %q", line, tt.want)
			}
		})
	}
	var b strings.Builder
	report.WritePlan(&b, "x", &smimesync.Plan{Summary: smimesync.Summary{Departed: 3, Depart: 1}})
	if !strings.Contains(b.String(), "\n3 users left the directory with certificates published: 1 to remove, 2 left in place\n") {
		t.Errorf("no departed summary:\n%s", b.String())
	}
}

// TestSummaryGolden checks the three outputs of `smimesync report` for a
// directory with one user of each kind: certificates expiring within 30
// days (Alice), only a wrong-address certificate (Bob), only an expired
// one (Hanako), none at all (Carol), and one whose recipient is
// read-only (Dave).
func TestSummaryGolden(t *testing.T) {
	f := syncFixture(t)
	saved, err := report.Load(f.report)
	if err != nil {
		t.Fatal(err)
	}
	// What `smimesync report` prints: the store read through a cursor.
	store, err := report.Open(f.report, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := store.Summarize("state.report.json", fixtureNow, 30)
	if err != nil {
		t.Fatal(err)
	}
	// The same as the report loaded whole.
	if diff := cmp.Diff(report.Summarize(saved, "state.report.json", fixtureNow, 30), sum); diff != "" {
		t.Errorf("Store.Summarize differs from Summarize of the loaded report (-loaded +store):\n%s", diff)
	}
	var text, cs strings.Builder
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	js, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := sum.WriteCSV(&cs); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.golden.txt", text.String())
	golden(t, "summary.golden.json", string(js)+"\n")
	golden(t, "summary.golden.csv", cs.String())

	// The CSV parses, with the same number of fields on every row: a
	// header, 3 without a usable certificate, 3 expiring, 2 dropped, 1 not
	// published.
	rows, err := csv.NewReader(strings.NewReader(cs.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + 3 + 3 + 2 + 1; len(rows) != want {
		t.Errorf("CSV has %d rows, want %d", len(rows), want)
	}

	// A month later Alice's certificates show as expired.
	var later strings.Builder
	report.Summarize(saved, "r.json", fixtureNow.AddDate(0, 1, 0), 30).WriteText(&later)
	if !strings.Contains(later.String(), "alice@smime.example  2052-09-27 06:54 UTC  EXPIRED  userCertificate") {
		t.Errorf("a month later, Alice's certificate is not shown expired:\n%s", later.String())
	}
}

// TestTextOutputEscapes: plan and sync tables, the report's text and CSV,
// and the progress line escape what came from the directory or the cloud.
func TestTextOutputEscapes(t *testing.T) {
	const hostile = termsafe.Hostile
	changes := []*smimesync.Change{{
		ID: hostile, User: hostile, DN: "cn=" + hostile, Action: smimesync.ActionSkip, Reason: smimesync.SkipError,
		Error: "lookup failed: " + hostile,
	}, {
		ID: "2", User: hostile, Action: smimesync.ActionSkip, Reason: hostile,
		Recipient: &cloud.Recipient{ID: "r", Name: hostile, Kind: "Mail\x1b[0mUser", ReadOnly: hostile},
	}}
	var plan, sync bytes.Buffer
	report.WritePlan(&plan, "exo\x1b[2J", &smimesync.Plan{Changes: changes})
	report.WriteSync(&sync, "exo", &smimesync.Report{Plan: smimesync.Plan{Changes: changes}, Errors: []string{hostile}})

	ref := report.UserRef{User: hostile, ID: hostile, DN: "cn=" + hostile, Recipient: hostile}
	sum := &report.Summary{File: "r\x1b.json", Sinks: []report.SinkSummary{{
		Sink:         "exo\x1b[2J",
		LastPass:     report.Pass{Command: "run", Error: hostile},
		NoUsable:     []report.NoUsable{{UserRef: ref, Why: hostile}},
		Expiring:     []report.Expiring{{UserRef: ref, Attribute: "userCertificate", NotAfter: fixtureNow}},
		Dropped:      []report.Dropped{{UserRef: ref, Attribute: hostile, Reasons: []smimesync.Reason{"expired"}, Notes: []string{hostile}}},
		NotPublished: []report.NotPublished{{UserRef: ref, Status: hostile, Why: hostile}},
		Departed:     []report.Departed{{UserRef: ref, Status: hostile, Why: hostile}},
	}}}
	var text, cs bytes.Buffer
	sum.WriteText(&text)
	if err := sum.WriteCSV(&cs); err != nil {
		t.Fatal(err)
	}

	// The progress line's own escape (back to the start, erase the line)
	// is the only one it may print.
	var prog bytes.Buffer
	report.NewProgress(&prog, func(io.Writer) bool { return true }).Hook(hostile)(smimesync.Progress{Stage: smimesync.StagePlan, Done: 1})
	progress := strings.ReplaceAll(prog.String(), "\r\x1b[K", "") + "\n"

	for name, out := range map[string]string{"plan": plan.String(), "sync": sync.String(), "report": text.String(), "report --csv": cs.String(), "progress": progress} {
		if !strings.Contains(out, `mallory\x1b[2J`) {
			t.Errorf("%s output does not show the escaped user:\n%s", name, out)
		}
		if bad := termsafe.Unsafe(out); bad != "" {
			t.Errorf("%s output prints %q raw:\n%q", name, bad, out)
		}
	}
}

// TestWriteErrors: a renderer returns the error of the writer it writes
// to, and stops writing.
func TestWriteErrors(t *testing.T) {
	f := syncFixture(t)
	saved, err := report.Load(f.report)
	if err != nil {
		t.Fatal(err)
	}
	sum := report.Summarize(saved, "r.json", fixtureNow, 30)
	for name, write := range map[string]func(io.Writer) error{
		"WritePlan": func(w io.Writer) error { return report.WritePlan(w, "file", f.plan) },
		"WriteSync": func(w io.Writer) error { return report.WriteSync(w, "file", f.rep) },
		"WriteText": sum.WriteText,
		"WriteCSV":  sum.WriteCSV,
	} {
		fw := &failingWriter{}
		if err := write(fw); err != errDiskFull || fw.after > 0 {
			t.Errorf("%s: %v, %d writes after the failure; want errDiskFull, none", name, err, fw.after)
		}
	}
}

var errDiskFull = fmt.Errorf("disk full")

// failingWriter fails every write, and counts those after the first.
type failingWriter struct{ writes, after int }

func (f *failingWriter) Write([]byte) (int, error) {
	if f.writes++; f.writes > 1 {
		f.after++
	}
	return 0, errDiskFull
}

// TestProgressPiped: when the output is not a terminal (a buffer, a pipe),
// nothing is drawn, and log lines pass through untouched.
func TestProgressPiped(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var buf bytes.Buffer
	for name, out := range map[string]io.Writer{"buffer": &buf, "pipe": w} {
		p := report.NewProgress(out, nil)
		if p.Hook("file") != nil {
			t.Errorf("%s: a progress hook on a non-terminal", name)
		}
		if p.Writer(out) != out {
			t.Errorf("%s: log writer wrapped on a non-terminal", name)
		}
		p.Clear()
	}
	w.Close()
	got, _ := io.ReadAll(r)
	if len(got) != 0 || buf.Len() != 0 {
		t.Errorf("progress wrote %q / %q to a non-terminal", got, buf.String())
	}
	var nilp *report.Progress
	if nilp.Hook("file") != nil || nilp.Writer(&buf) != &buf {
		t.Error("a nil Progress draws")
	}
	nilp.Clear()
}

// TestProgressTerminal draws on a fake terminal: one line, rewritten in
// place, cleared at the end, and erased around log lines.
func TestProgressTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := report.NewProgress(&buf, func(io.Writer) bool { return true })
	hook := p.Hook("file")
	if hook == nil {
		t.Fatal("no hook on a terminal")
	}
	hook(smimesync.Progress{Stage: smimesync.StagePlan, Done: 1})
	hook(smimesync.Progress{Stage: smimesync.StagePlan, Done: 2}) // within 100 ms: not drawn
	log := p.Writer(&buf)
	fmt.Fprint(log, "level=INFO msg=hello\n")
	hook(smimesync.Progress{Stage: smimesync.StageApply, Done: 2, Total: 2})
	p.Clear()
	p.Clear() // nothing more to clear

	const clr = "\r\x1b[K"
	want := clr + "file: planning, 1 entry read" +
		clr + "level=INFO msg=hello\n" + clr + "file: planning, 1 entry read" +
		clr + "file: applying, 2 of 2 writes (100%)" +
		clr
	if got := buf.String(); got != want {
		t.Errorf("terminal output\n got %q\nwant %q", got, want)
	}
}

// BenchmarkSummaryText is `smimesync report` on a large directory: a
// saved report of 100,000 users, each with one kept certificate and one
// dropped, read through a cursor (Store.Summarize) and written as text.
func BenchmarkSummaryText(b *testing.B) {
	path := filepath.Join(b.TempDir(), "r.db")
	changes := make([]*smimesync.Change, 100_000)
	for i := range changes {
		changes[i] = &smimesync.Change{
			ID: strconv.Itoa(i), User: strconv.Itoa(i) + "@example.com", DN: "CN=User " + strconv.Itoa(i) + ",OU=Staff,DC=example,DC=com",
			Action: smimesync.ActionUnchanged,
			Keep:   []smimesync.Value{{Attribute: "userCertificate", NotAfter: fixtureNow.AddDate(0, 0, i%400)}},
			Drop:   []smimesync.Value{{Attribute: "userCertificate", Reasons: []smimesync.Reason{smimesync.ReasonExpired}}},
		}
	}
	store, err := report.Open(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Record("file", "run", &smimesync.Report{Plan: smimesync.Plan{Full: true, Changes: changes}}, nil, fixtureNow); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sum, err := store.Summarize(path, fixtureNow, 30)
		if err != nil {
			b.Fatal(err)
		}
		if err := sum.WriteText(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
