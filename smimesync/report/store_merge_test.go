package report

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// scopeSource yields the users of ids (without certificates), as a full
// read or a delta.
type scopeSource struct {
	ids  []int
	full bool
}

func (s *scopeSource) Read(_ context.Context, _ directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	for _, i := range s.ids {
		e := &directory.Entry{ID: fmt.Sprintf("id-%d", i), DN: fmt.Sprintf("CN=u%d,DC=example,DC=com", i), Mail: fmt.Sprintf("u%d@example.com", i)}
		if err := yield(e); err != nil {
			return directory.Result{}, err
		}
	}
	return directory.Result{Full: s.full, Cookie: []byte("c")}, nil
}

// TestMergeWritesWhatThePassChanged: passes made by a Syncer, whose
// entries found unchanged on their memos are unlisted (no rows), merged
// into a store: an unchanged full pass writes no entry record (yet every
// entry reads as seen by it), a delta that read some entries unchanged
// notes those alone, a quiet delta writes none, and a full pass drops the
// entries it did not read, and only those.
func TestMergeWritesWhatThePassChanged(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	sink := cloudtest.NewMemorySink()
	for i := range 5 {
		sink.Seed(fmt.Sprintf("u%d@example.com", i), cloud.Certificates{})
	}
	src := &scopeSource{}
	sy := &smimesync.Syncer{Source: src, Sink: sink, State: &smimesync.MemoryState{},
		Now: func() time.Time { return now }, Policy: &smimesync.Policy{Now: func() time.Time { return now }}, PolicyVersion: "v1"}
	st, err := Open(filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]time.Time{}
	pass := func(name string, ids []int, full bool, writes int) {
		t.Helper()
		now = now.Add(time.Hour)
		src.ids, src.full = ids, full
		plan, err := sy.Plan(ctx)
		if full {
			plan, err = sy.PlanFull(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		rep, err := sy.Apply(ctx, plan)
		if err != nil {
			t.Fatal(err)
		}
		before := st.entryWrites
		if err := st.Record("x", "run", rep, nil, now); err != nil {
			t.Fatal(err)
		}
		if got := st.entryWrites - before; got != writes {
			t.Errorf("%s: %d entry records written, want %d (unlisted %d, summary %+v)", name, got, writes, rep.UnlistedCount(), rep.Summary)
		}
		for _, i := range ids {
			seen[fmt.Sprintf("id-%d", i)] = now
		}
		f, err := st.Load()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]time.Time{}
		for _, e := range f.Sinks[0].Entries {
			got[e.ID] = e.Seen
		}
		for id, want := range seen {
			if !got[id].Equal(want) {
				t.Errorf("%s: %s seen %v, want %v", name, id, got[id], want)
			}
		}
		if len(got) != len(seen) {
			t.Errorf("%s: entries %v, want %v", name, got, seen)
		}
		if full && !f.Sinks[0].Complete {
			t.Errorf("%s: not Complete", name)
		}
	}
	pass("first full pass", []int{0, 1, 2, 3, 4}, true, 5)
	pass("unchanged full pass", []int{0, 1, 2, 3, 4}, true, 0)
	pass("delta reading two unchanged", []int{0, 1}, false, 2)
	pass("quiet delta", nil, false, 0)
	delete(seen, "id-3")
	delete(seen, "id-4")
	pass("full pass without two", []int{0, 1, 2}, true, 2)
	if n := recordCount(t, st); n != 3 {
		t.Errorf("the header counts %d entries, want 3", n)
	}
}

// recordCount is the count of entry records of the store's sink x.
func recordCount(t *testing.T, st *Store) int {
	t.Helper()
	n := -1
	st.lock()
	defer st.unlock()
	if err := st.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSinks).Bucket([]byte("x"))
		n = countOf(b)
		if m := b.Bucket(bucketEntries).Stats().KeyN; m != n {
			t.Errorf("count %d, records %d", n, m)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMergeDeltaKeepsOthers: a delta merges its rows and keeps every
// other entry as it was; a full pass (rows alone here) replaces them.
func TestMergeDeltaKeepsOthers(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Record("x", "run", fullOf(100), nil, reportNow); err != nil {
		t.Fatal(err)
	}
	delta := &smimesync.Report{Plan: smimesync.Plan{Changes: []*smimesync.Change{
		change("7", smimesync.ActionReplace, smimesync.OutcomeWritten, "userSMIMECertificate"),
		change("new", smimesync.ActionAdd, smimesync.OutcomeWritten, "userCertificate"),
	}}}
	if err := st.Record("x", "run", delta, nil, reportNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	f, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*Entry{}
	for _, e := range f.Sinks[0].Entries {
		byID[e.ID] = e
	}
	if len(byID) != 101 || byID["7"].Action != smimesync.ActionReplace || byID["new"] == nil ||
		byID["8"].Action != smimesync.ActionUnchanged || !byID["8"].Seen.Equal(reportNow) || !byID["7"].Seen.Equal(reportNow.Add(time.Hour)) {
		t.Errorf("after the delta: %d entries, 7 %+v, 8 %+v", len(byID), byID["7"], byID["8"])
	}
	if err := st.Record("x", "run", fullOf(3), nil, reportNow.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if f, err = st.Load(); err != nil || len(f.Sinks[0].Entries) != 3 {
		t.Errorf("after a full pass of 3: %+v, %v", f, err)
	}
}

// recipientsExpiringScan is RecipientsExpiring over every entry, as the
// JSON report counted it.
func recipientsExpiringScan(entries []*Entry, horizon time.Time) int {
	n := 0
	for _, e := range entries {
		if last := lastKept(e); !last.IsZero() && last.Before(horizon) {
			n++
		}
	}
	return n
}

// TestRecipientsExpiringIndex: the expiry index, kept as passes add,
// change, renew and delete entries, counts what a scan of every entry
// counts, at every horizon.
func TestRecipientsExpiringIndex(t *testing.T) {
	day := 24 * time.Hour
	entry := func(id string, after ...time.Duration) *smimesync.Change {
		c := change(id, smimesync.ActionUnchanged, "")
		for _, a := range after {
			c.Keep = append(c.Keep, smimesync.Value{Attribute: "userCertificate", NotAfter: reportNow.Add(a)})
		}
		return c
	}
	deleted := func(id string) *smimesync.Change {
		c := change(id, smimesync.ActionSkip, "")
		c.Reason = smimesync.SkipDeleted
		return c
	}
	st, err := Open(filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range []struct {
		full    bool
		changes []*smimesync.Change
	}{
		{true, []*smimesync.Change{entry("a", 3*day), entry("b", 3*day, 20*day), entry("c", 3*day, 400*day), entry("d", -day),
			entry("e"), {ID: "f", Keep: []smimesync.Value{{}}}, entry("g", 40*day), entry("h", 3*day+time.Nanosecond), entry("i", 3*day)}},
		// Renewed, expiring sooner, deleted, new, the same again.
		{false, []*smimesync.Change{entry("a", 300*day), entry("g", day), deleted("d"), entry("j", 10*day), entry("i", 3*day)}},
		// Nothing kept any more; a memoized row keeps its values.
		{false, []*smimesync.Change{entry("b"), {ID: "c", User: "c@example.com", Action: smimesync.ActionUnchanged, Memoized: true}}},
		// A full pass that names some: the others are gone.
		{true, []*smimesync.Change{entry("a", 300*day), entry("c", 5*day), entry("h", 2*day)}},
	} {
		rep := &smimesync.Report{Plan: smimesync.Plan{Full: step.full, Changes: step.changes}}
		if err := st.Record("x", "run", rep, nil, reportNow.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
		f, err := st.Load()
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []time.Duration{-2 * day, 0, day, 3 * day, 3*day + time.Nanosecond, 3*day + 2*time.Nanosecond, 30 * day, 365 * day, 1000 * day} {
			horizon := reportNow.Add(h)
			want := recipientsExpiringScan(f.Sinks[0].Entries, horizon)
			if got := st.RecipientsExpiring("x", horizon); got != want {
				t.Errorf("step %d, horizon %v: index counts %d, a scan %d", i, h, got, want)
			}
		}
		var lasts []time.Time
		if err := st.Expiries("x", func(last time.Time) { lasts = append(lasts, last) }); err != nil {
			t.Fatal(err)
		}
		if want := recipientsExpiringScan(f.Sinks[0].Entries, reportNow.AddDate(100, 0, 0)); len(lasts) != want {
			t.Errorf("step %d: Expiries gave %d, want %d", i, len(lasts), want)
		}
	}
	if got := st.RecipientsExpiring("graph", reportNow.AddDate(1, 0, 0)); got != 0 {
		t.Errorf("a sink the report does not know: %d", got)
	}
}

// TestReaderWhileLocked: a reader waits a little for a writer (another
// process, or here another open of the file) and then says the store is
// locked, naming it; once the writer is done it reads.
func TestReaderWhileLocked(t *testing.T) {
	defer func(d time.Duration) { readTimeout = d }(readTimeout)
	readTimeout = 50 * time.Millisecond
	path := filepath.Join(t.TempDir(), "r.db")
	st, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Record("x", "run", fullOf(10), nil, reportNow); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := Open(path, nil)
	if err == nil {
		_, err = reader.Summarize(path, reportNow, 30)
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("reading a locked store: %v, want ErrLocked naming %s", err, path)
	}
	db.Close()
	if reader == nil {
		if reader, err = Open(path, nil); err != nil {
			t.Fatal(err)
		}
	}
	if sum, err := reader.Summarize(path, reportNow, 30); err != nil || sum.Sinks[0].Users != 10 {
		t.Errorf("after the writer: %+v, %v", sum, err)
	}
}

// TestStoreConcurrentReads: the status page reads while passes are
// recorded, through one Store.
func TestStoreConcurrentReads(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Record("x", "run", fullOf(200), nil, reportNow); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				sum, err := st.Summarize("", reportNow, 30)
				if err == nil && sum.Sinks[0].Users < 200 {
					err = fmt.Errorf("%d users", sum.Sinks[0].Users)
				}
				if err == nil {
					_, _, err = st.Search(func(string, *Entry) bool { return true }, 5)
				}
				st.RecipientsExpiring("x", reportNow)
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range 20 {
		delta := &smimesync.Report{Plan: smimesync.Plan{Changes: []*smimesync.Change{change(strconv.Itoa(i), smimesync.ActionAdd, smimesync.OutcomeWritten, "userCertificate")}}}
		if err := st.Record("x", "run", delta, nil, reportNow.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestFullPassRowsThatChangeNothing: a full pass's rows that say what the
// records say (entries without a recipient or a certificate, judged again
// each full pass) leave the records as they are, yet read as seen by the
// pass; they are not taken for departed entries.
func TestFullPassRowsThatChangeNothing(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range []struct {
		rep    *smimesync.Report
		writes int
	}{
		{fullOf(100), 100},
		{fullOf(100), 0},
		{fullOf(60), 40},
	} {
		at := reportNow.Add(time.Duration(i) * time.Hour)
		before := st.entryWrites
		if err := st.Record("x", "run", step.rep, nil, at); err != nil {
			t.Fatal(err)
		}
		if got := st.entryWrites - before; got != step.writes {
			t.Errorf("pass %d: %d entry records written, want %d", i, got, step.writes)
		}
		f, err := st.Load()
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Sinks[0].Entries) != len(step.rep.Changes) || !f.Sinks[0].Complete {
			t.Errorf("pass %d: %d entries, complete %v", i, len(f.Sinks[0].Entries), f.Sinks[0].Complete)
		}
		for _, e := range f.Sinks[0].Entries {
			if !e.Seen.Equal(at) {
				t.Errorf("pass %d: %s seen %v, want %v", i, e.ID, e.Seen, at)
				break
			}
		}
	}
}
