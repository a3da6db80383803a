package smimesync_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// spillWorld is three users whose certificates are written, with the
// plan's temporary file in a folder of the test's own.
type spillWorld struct {
	tmp   string
	src   *directory.LDIFFile
	sink  *cloudtest.MemorySink
	want  map[string]cloud.Certificates
	state *smimesync.MemoryState
}

func newSpillWorld(t *testing.T) *spillWorld {
	t.Helper()
	w := &spillWorld{tmp: t.TempDir(), sink: cloudtest.NewMemorySink(), state: &smimesync.MemoryState{},
		want: map[string]cloud.Certificates{}}
	t.Setenv("TMPDIR", w.tmp)
	ca := newTestCA(t, "CA")
	var entries []*directory.Entry
	for i, name := range []string{"alice", "bob", "carol"} {
		addr := name + "@example.com"
		der, key := ca.issueKey(t, leaf{email: addr})
		second := ca.issue(t, leaf{email: addr})
		e := user(i+1, name, der, second)
		e.UserSMIMECertificate = [][]byte{ca.signedBlob(t, der, key)}
		entries = append(entries, e)
		w.want[addr] = cloud.Certificates{UserCertificate: e.UserCertificate, UserSMIMECertificate: e.UserSMIMECertificate}
	}
	w.src = writeLDIF(t, entries...)
	return w
}

func (w *spillWorld) syncer() *smimesync.Syncer { return newSyncer(w.src, w.sink, w.state) }

// checkCarried fails t unless every recipient carries exactly the
// directory's values.
func (w *spillWorld) checkCarried(t *testing.T) {
	t.Helper()
	for addr, want := range w.want {
		got, _ := w.sink.Get(addr)
		if !sameBytes(got.UserCertificate, want.UserCertificate) || !sameBytes(got.UserSMIMECertificate, want.UserSMIMECertificate) {
			t.Errorf("%s carries other bytes than the directory's", addr)
		}
	}
}

// leftIn lists the files in the plan's temporary folder.
func (w *spillWorld) leftIn(t *testing.T) []string {
	t.Helper()
	des, err := os.ReadDir(w.tmp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}

// sameBytes reports whether a and b hold the same values, in order.
func sameBytes(a, b [][]byte) bool { return slices.EqualFunc(a, b, bytes.Equal) }

// closed reports whether f was closed.
func closed(f *os.File) bool {
	_, err := f.Stat()
	return errors.Is(err, os.ErrClosed)
}

// TestSpilledValuesWrittenExactly: the values of a plan's writes leave
// the heap for the plan's temporary file and come back byte for byte:
// what the sink receives is what the directory holds. On Unix the file
// has no name while the plan is open; Apply closes it.
func TestSpilledValuesWrittenExactly(t *testing.T) {
	ctx := context.Background()
	w := newSpillWorld(t)
	plan, err := w.syncer().Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := smimesync.SpillFile(plan)
	if f == nil {
		t.Fatal("a plan with three writes has no temporary file")
	}
	if fi, err := f.Stat(); err != nil || fi.Size() < 3*3*200 {
		t.Fatalf("temporary file: %v, %v; want the values of three writes", fi, err)
	}
	if left := w.leftIn(t); runtime.GOOS != "windows" && len(left) != 0 {
		t.Errorf("the temporary file is still named while the plan is open: %v", left)
	}
	rep, err := w.syncer().Apply(ctx, plan)
	if err != nil || rep.Summary.Written != 3 {
		t.Fatalf("Apply: %v, %+v", err, rep.Summary)
	}
	w.checkCarried(t)
	if !closed(f) {
		t.Error("the temporary file is open after Apply")
	}
	if left := w.leftIn(t); len(left) != 0 {
		t.Errorf("left behind after Apply: %v", left)
	}
}

// TestSpillReadBackFails: a write whose values cannot be read back whole
// and exact fails with an error that says so, and nothing is sent for it;
// the other writes go on.
func TestSpillReadBackFails(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		damage func(t *testing.T, f *os.File, rows int64)
		failed int
		why    string
	}{
		// The byte before the rows belongs to the last values record:
		// one write.
		"a changed byte": {failed: 1, why: "does not match its fingerprint", damage: func(t *testing.T, f *os.File, rows int64) {
			var b [1]byte
			if _, err := f.ReadAt(b[:], rows-1); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0xff
			if _, err := f.WriteAt(b[:], rows-1); err != nil {
				t.Fatal(err)
			}
		}},
		// The rows stay; every values record is cut away.
		"the values cut short": {failed: 3, why: "damaged record", damage: func(t *testing.T, f *os.File, rows int64) {
			zero := make([]byte, rows)
			if _, err := f.WriteAt(zero, 0); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			w := newSpillWorld(t)
			plan, err := w.syncer().Plan(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, smimesync.SpillFile(plan), smimesync.SpillRowsStart(plan))
			rep, err := w.syncer().Apply(ctx, plan)
			if !errors.Is(err, smimesync.ErrChangesFailed) {
				t.Fatalf("Apply: %v, want ErrChangesFailed", err)
			}
			if rep.Summary.Failed != tc.failed || rep.Summary.Written != 3-tc.failed {
				t.Fatalf("%d failed, %d written; want %d failed", rep.Summary.Failed, rep.Summary.Written, tc.failed)
			}
			for _, c := range testrows.Of(t, rep) {
				n := w.sink.WriteCount(c.User)
				switch c.Outcome {
				case smimesync.OutcomeFailed:
					if n != 0 {
						t.Errorf("%s: %d writes sent for a failed read-back", c.User, n)
					}
					if !strings.Contains(c.Error, smimesync.ErrSpill.Error()) || !strings.Contains(c.Error, tc.why) {
						t.Errorf("%s: error %q, want it to name the temporary file and %q", c.User, c.Error, tc.why)
					}
				case smimesync.OutcomeWritten:
					got, _ := w.sink.Get(c.User)
					if !sameBytes(got.UserCertificate, w.want[c.User].UserCertificate) {
						t.Errorf("%s carries other bytes than the directory's", c.User)
					}
				default:
					t.Errorf("%s: outcome %q", c.User, c.Outcome)
				}
			}
			// Nothing failed is recorded as published: the next pass
			// plans the failed writes again.
			next, err := w.syncer().Plan(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer next.Close()
			if n := next.Summary.Add + next.Summary.Replace; n != tc.failed {
				t.Errorf("the next pass plans %d writes, want the %d that failed", n, tc.failed)
			}
		})
	}
}

// TestRowsInRuns: rows kept in runs of two, while the workers keep
// adding values between them, come back whole and in the plan's order,
// and every write sends its own values.
func TestRowsInRuns(t *testing.T) {
	smimesync.SetRunRows(t, 2)
	ctx := context.Background()
	w := newSpillWorld(t)
	s := w.syncer()
	s.Concurrency = 3
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, c := range testrows.Of(t, plan) {
		users = append(users, c.User)
	}
	if want := []string{"alice@example.com", "bob@example.com", "carol@example.com"}; !slices.Equal(users, want) {
		t.Fatalf("rows %q, want %q", users, want)
	}
	rep, err := s.Apply(ctx, plan)
	if err != nil || rep.Summary.Written != 3 {
		t.Fatalf("Apply: %v, %+v", err, rep.Summary)
	}
	w.checkCarried(t)
}

// TestSpillRowsDamaged: a plan whose rows cannot be read back stops the
// Apply where they break: nothing is written from there on, the error
// says why, and the cookie stays, so the next pass plans it all again.
func TestSpillRowsDamaged(t *testing.T) {
	ctx := context.Background()
	w := newSpillWorld(t)
	plan, err := w.syncer().Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f, rows := smimesync.SpillFile(plan), smimesync.SpillRowsStart(plan)
	if _, err := f.WriteAt([]byte("}}}}"), rows+8); err != nil {
		t.Fatal(err)
	}
	rep, err := w.syncer().Apply(ctx, plan)
	if !errors.Is(err, smimesync.ErrSpill) {
		t.Fatalf("Apply: %v, want ErrSpill", err)
	}
	if rep.Summary.Written != 0 || rep.CookieAdvanced || !slices.ContainsFunc(rep.Errors, func(e string) bool { return strings.Contains(e, "reading the plan") }) {
		t.Errorf("report: %+v, errors %q; want nothing written, the cookie held, the error named", rep.Summary, rep.Errors)
	}
	for addr := range w.want {
		if n := w.sink.WriteCount(addr); n != 0 {
			t.Errorf("%s written %d times from a damaged plan", addr, n)
		}
	}
	next, err := w.syncer().Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if next.Summary.Add != 3 {
		t.Errorf("the next pass plans %d adds, want 3", next.Summary.Add)
	}
}

// TestPlanClose: Close closes the temporary file (and removes it where it
// still has a name); a closed plan is neither applied nor saved; Close
// may be called again.
func TestPlanClose(t *testing.T) {
	ctx := context.Background()
	w := newSpillWorld(t)
	plan, err := w.syncer().Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := smimesync.SpillFile(plan)
	if err := plan.Close(); err != nil {
		t.Fatal(err)
	}
	if !closed(f) {
		t.Error("the temporary file is open after Close")
	}
	if left := w.leftIn(t); len(left) != 0 {
		t.Errorf("left behind after Close: %v", left)
	}
	if err := plan.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
	if _, err := plan.WriteTo(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("WriteTo of a closed plan: %v", err)
	}
	if rep, err := w.syncer().Apply(ctx, plan); rep != nil || err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Apply of a closed plan: %v (report %v), want it refused before anything", err, rep != nil)
	}
	if n := len(w.sink.Writes()); n != 0 {
		t.Errorf("%d writes from a closed plan", n)
	}
	// A plan with nothing to write has no file; Close is still fine.
	empty, err := newSyncer(writeLDIF(t), w.sink, &smimesync.MemoryState{}).Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if smimesync.SpillFile(empty) != nil {
		t.Error("a plan with nothing to write made a temporary file")
	}
	if err := empty.Close(); err != nil {
		t.Error(err)
	}
}

// TestPlanDroppedClosesItsFile: a plan dropped without Apply or Close
// has its temporary file closed by the garbage collector.
func TestPlanDroppedClosesItsFile(t *testing.T) {
	w := newSpillWorld(t)
	f := func() *os.File {
		plan, err := w.syncer().Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return smimesync.SpillFile(plan)
	}()
	if f == nil {
		t.Fatal("no temporary file")
	}
	for i := 0; i < 100 && !closed(f); i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if !closed(f) {
		t.Error("the temporary file of a dropped plan is still open")
	}
	if left := w.leftIn(t); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestReadPlanSpills: a plan read from a file keeps the values of its
// writes in a temporary file too, and applies them exactly.
func TestReadPlanSpills(t *testing.T) {
	ctx := context.Background()
	w := newSpillWorld(t)
	plan, err := w.syncer().Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := savePlan(t, plan)
	if err := plan.Close(); err != nil {
		t.Fatal(err)
	}
	loaded := loadPlan(t, file)
	f := smimesync.SpillFile(loaded)
	if f == nil {
		t.Fatal("the plan read back keeps its values in memory")
	}
	if again := savePlan(t, loaded); !bytes.Equal(again, file) {
		t.Error("the plan read back saves to other bytes")
	}
	rep, err := w.syncer().Apply(ctx, loaded)
	if err != nil || rep.Summary.Written != 3 {
		t.Fatalf("Apply: %v, %+v", err, rep.Summary)
	}
	for addr, want := range w.want {
		got, _ := w.sink.Get(addr)
		if !sameBytes(got.UserCertificate, want.UserCertificate) || !sameBytes(got.UserSMIMECertificate, want.UserSMIMECertificate) {
			t.Errorf("%s carries other bytes than the plan file's", addr)
		}
	}
	if !closed(f) {
		t.Error("the temporary file is open after Apply")
	}
}

// twinsPlan is the plan of two entries with the same recipient, alice's:
// two conflicts. It is closed when t ends.
func twinsPlan(t *testing.T) *smimesync.Plan {
	t.Helper()
	ca := newTestCA(t, "CA")
	a := user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"}))
	b := user(2, "alice", ca.issue(t, leaf{email: "alice@example.com"})) // the same recipient
	b.DN = "CN=alice2,OU=Staff,DC=example,DC=com"
	plan, err := newSyncer(writeLDIF(t, a, b), cloudtest.NewMemorySink(), &smimesync.MemoryState{}).Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plan.Close() })
	return plan
}

// TestPlanFileWithAConflict: a change that a conflict turned into a skip
// sends nothing, and its plan file says so: it reads back.
func TestPlanFileWithAConflict(t *testing.T) {
	plan := twinsPlan(t)
	if plan.Summary.Skip != 2 {
		t.Fatalf("%+v, want two conflicts", plan.Summary)
	}
	loaded := loadPlan(t, savePlan(t, plan))
	if got, want := jsonOf(t, loaded), jsonOf(t, plan); got != want {
		t.Errorf("read back:\n%s\nwant\n%s", got, want)
	}
}

// TestRunAndDryRunClose: the reports of DryRun, which writes nothing,
// and of Run, whose plan the guard stopped, show the plan's rows until
// their Close, which closes the plan's temporary file.
func TestRunAndDryRunClose(t *testing.T) {
	ctx := context.Background()
	w := newSpillWorld(t)
	rep, err := w.syncer().DryRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := smimesync.SpillFile(&rep.Plan)
	if rows := testrows.Of(t, rep); len(rows) != 3 || rows[0].Action != smimesync.ActionAdd {
		t.Errorf("DryRun's report: %d rows", len(rows))
	}
	if err := rep.Close(); err != nil || f == nil || !closed(f) {
		t.Errorf("DryRun's report's Close: %v; left its plan's temporary file open (%v)", err, f)
	}
	if _, err := rep.CollectRows(); err == nil {
		t.Error("a closed report's rows were read")
	}
	// Each recipient carries a certificate the directory no longer has:
	// three would lose one, over a guard of one.
	for addr := range w.want {
		w.sink.Seed(addr, cloud.Certificates{UserCertificate: [][]byte{[]byte("gone")}})
	}
	s := w.syncer()
	s.Guard.MaxRemovals = 1
	rep, err = s.Run(ctx)
	if !errors.Is(err, smimesync.ErrGuardTripped) {
		t.Fatalf("Run: %v, want the guard", err)
	}
	if rows := testrows.Of(t, rep); len(rows) != 3 || rows[0].Action != smimesync.ActionReplace {
		t.Errorf("the report of the Run the guard stopped: %d rows", len(rows))
	}
	f = smimesync.SpillFile(&rep.Plan)
	if err := rep.Close(); err != nil || f == nil || !closed(f) {
		t.Errorf("Close of the report of the Run the guard stopped: %v; the temporary file is open (%v)", err, f)
	}
}

// TestReportRows: Apply's report keeps the rows with their outcomes in a
// file of its own, after the plan's is removed, until its Close; the
// report of a plan the guard refused shows the plan's rows, and its Close
// leaves the plan to be applied.
func TestReportRows(t *testing.T) {
	ctx := context.Background()
	w := newSpillWorld(t)
	for addr := range w.want {
		w.sink.Seed(addr, cloud.Certificates{UserCertificate: [][]byte{[]byte("gone")}})
	}
	s := w.syncer()
	s.Guard.MaxRemovals = 1
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refused, err := s.Apply(ctx, plan)
	if !errors.Is(err, smimesync.ErrGuardTripped) {
		t.Fatalf("Apply: %v, want the guard", err)
	}
	if rows := testrows.Of(t, refused); len(rows) != 3 || rows[0].Outcome != "" {
		t.Errorf("the refused report: %d rows", len(rows))
	}
	if err := refused.Close(); err != nil {
		t.Fatal(err)
	}
	plan.Force = true
	rep, err := s.Apply(ctx, plan)
	if err != nil || rep.Summary.Written != 3 {
		t.Fatalf("Apply with Force after the refused report's Close: %v, %+v", err, rep)
	}
	if _, err := plan.CollectRows(); err == nil {
		t.Error("the applied plan's rows were read: its file should be gone")
	}
	rows := testrows.Of(t, rep)
	if len(rows) != 3 || rows[2].User != "carol@example.com" || rows[2].Outcome != smimesync.OutcomeWritten {
		t.Fatalf("the report's rows: %d, last %+v", len(rows), rows[len(rows)-1])
	}
	f := smimesync.SpillFile(&rep.Plan)
	if err := rep.Close(); err != nil || f == nil || !closed(f) {
		t.Errorf("the report's Close: %v, file open (%v)", err, f)
	}
	if left := w.leftIn(t); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
