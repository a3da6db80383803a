package smimesync_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// writeLDIF writes entries to an LDIF file and returns the source reading it.
func writeLDIF(t testing.TB, entries ...*directory.Entry) *directory.LDIFFile {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.ldif")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := directory.WriteLDIF(f, entries...); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return &directory.LDIFFile{Path: path}
}

func user(i int, name string, certs ...[]byte) *directory.Entry {
	return &directory.Entry{
		ID:              "0f0e0d0c-0b0a-0908-0706-0504030201" + string(rune('a'+i/10)) + string(rune('0'+i%10)),
		DN:              "CN=" + name + ",OU=Staff,DC=example,DC=com",
		Mail:            name + "@example.com",
		UserCertificate: certs,
	}
}

func newSyncer(src directory.Source, sink cloud.Sink, st smimesync.State) *smimesync.Syncer {
	return &smimesync.Syncer{
		Source: src,
		Sink:   sink,
		Policy: &smimesync.Policy{Now: func() time.Time { return testNow }},
		State:  st,
		Now:    func() time.Time { return testNow },
	}
}

func actions(t testing.TB, p *smimesync.Plan) map[string]smimesync.Action {
	m := map[string]smimesync.Action{}
	for _, c := range testrows.Of(t, p) {
		m[c.User] = c.Action
	}
	return m
}

func TestSyncerRunIsIdempotent(t *testing.T) {
	ca := newTestCA(t, "CA")
	expired := ca.issue(t, leaf{email: "bob@example.com", notAfter: testNow.Add(-time.Hour)})
	src := writeLDIF(t,
		user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})),
		user(2, "bob", expired, ca.issue(t, leaf{email: "bob@example.com"})),
		user(3, "carol"),
	)
	sink := cloudtest.NewMemorySink()
	st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	s := newSyncer(src, sink, st)

	rep, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.Summary.Written, 2; got != want {
		t.Errorf("first run wrote %d recipients, want %d", got, want)
	}
	bob, _ := sink.Get("bob@example.com")
	if len(bob.UserCertificate) != 1 || slices.ContainsFunc(bob.UserCertificate, func(v []byte) bool { return string(v) == string(expired) }) {
		t.Errorf("bob carries %d certificates (expired one included?), want only the valid one", len(bob.UserCertificate))
	}
	if !rep.CookieAdvanced {
		t.Error("a clean run did not save its position")
	}

	before := len(sink.Writes())
	rep, err = s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sink.Writes()) - before; n != 0 {
		t.Errorf("second run wrote %d times, want 0", n)
	}
	if rep.Summary.Unchanged != 3 {
		t.Errorf("second run: %d unchanged, want 3 (%v)", rep.Summary.Unchanged, actions(t, &rep.Plan))
	}
}

func TestSyncerDryRunWritesNothing(t *testing.T) {
	ca := newTestCA(t, "CA")
	src := writeLDIF(t, user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})))
	sink := cloudtest.NewMemorySink()
	path := filepath.Join(t.TempDir(), "state.json")
	s := newSyncer(src, sink, smimesync.FileState(path))
	rep, err := s.DryRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DryRun || rep.Summary.Add != 1 {
		t.Errorf("dry run: DryRun=%v add=%d, want true and 1", rep.DryRun, rep.Summary.Add)
	}
	if n := len(sink.Writes()); n != 0 {
		t.Errorf("dry run wrote %d times", n)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run touched the state file: %v", err)
	}
}

func TestSyncerGuard(t *testing.T) {
	ca := newTestCA(t, "CA")
	sink := cloudtest.NewMemorySink()
	var entries []*directory.Entry
	for i, name := range []string{"a", "b", "c"} {
		// The tenant carries a certificate the directory no longer has.
		sink.Seed(name+"@example.com", cloud.Certificates{UserCertificate: [][]byte{ca.issue(t, leaf{email: name + "@example.com"})}})
		entries = append(entries, user(i, name))
	}
	src := writeLDIF(t, entries...)

	s := newSyncer(src, sink, &smimesync.MemoryState{})
	s.Guard.MaxRemovals = 2
	plan, err := s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if plan.Summary.Losing != 3 || plan.Summary.Remove != 3 {
		t.Fatalf("plan: losing %d remove %d, want 3 and 3", plan.Summary.Losing, plan.Summary.Remove)
	}
	_, err = s.Apply(context.Background(), plan)
	var ge *smimesync.GuardError
	if !errors.Is(err, smimesync.ErrGuardTripped) || !errors.As(err, &ge) || ge.Losing != 3 || ge.Max != 2 {
		t.Fatalf("Apply = %v, want a GuardError 3 > 2", err)
	}
	if n := len(sink.Writes()); n != 0 {
		t.Fatalf("guard tripped but %d writes happened", n)
	}

	// The override for one run.
	plan.Force = true
	rep, err := s.Apply(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Written != 3 {
		t.Errorf("forced: wrote %d, want 3", rep.Summary.Written)
	}

	// At the limit the guard lets a run through.
	sink2 := cloudtest.NewMemorySink()
	for _, name := range []string{"a", "b"} {
		sink2.Seed(name+"@example.com", cloud.Certificates{UserCertificate: [][]byte{ca.issue(t, leaf{email: name + "@example.com"})}})
	}
	s2 := newSyncer(src, sink2, nil)
	s2.Guard.MaxRemovals = 2
	if _, err := s2.Run(context.Background()); err != nil {
		t.Errorf("2 removals with a limit of 2: %v", err)
	}
}

func TestSyncerUnreadableSinkReliesOnState(t *testing.T) {
	ca := newTestCA(t, "CA")
	alice := ca.issue(t, leaf{email: "alice@example.com"})
	src := writeLDIF(t, user(1, "alice", alice), user(2, "bob"))
	sink := cloudtest.NewMemorySink()
	sink.SetUnreadable(true)
	st := &smimesync.MemoryState{}
	s := newSyncer(src, sink, st)
	s.Reverify = smimesync.ReverifyEveryPass // the lookup is the point, not its memo

	plan, err := s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := actions(t, plan)
	// alice: unknown current, something to publish: written whole.
	// bob: unknown current, nothing to publish: left alone.
	if got["alice@example.com"] != smimesync.ActionReplace || got["bob@example.com"] != smimesync.ActionSkip {
		t.Fatalf("first plan: %v", got)
	}
	if _, err := s.Apply(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	plan, err = s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range testrows.Of(t, plan) {
		if c.User == "alice@example.com" && (c.Action != smimesync.ActionUnchanged || c.CurrentFrom != smimesync.CurrentFromState) {
			t.Errorf("second plan for alice: %s from %q, want unchanged from state", c.Action, c.CurrentFrom)
		}
	}
	if n := sink.WriteCount("alice@example.com"); n != 1 {
		t.Errorf("alice written %d times, want 1", n)
	}
}

// cookieSource is a Source with deltas: it hands out the next cookie after
// every pass and records the cookie it was given.
type cookieSource struct {
	directory.Source
	mu    sync.Mutex
	given [][]byte
	n     int
}

func (c *cookieSource) Read(ctx context.Context, p directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	c.mu.Lock()
	c.given = append(c.given, p.Cookie)
	c.n++
	next := []byte{byte(c.n)}
	c.mu.Unlock()
	if _, err := c.Source.Read(ctx, p, yield); err != nil {
		return directory.Result{}, err
	}
	return directory.Result{Cookie: next, Full: p.Cookie == nil}, nil
}

func TestSyncerFailedWriteKeepsCookie(t *testing.T) {
	ca := newTestCA(t, "CA")
	src := &cookieSource{Source: writeLDIF(t,
		user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})),
		user(2, "bob", ca.issue(t, leaf{email: "bob@example.com"})))}
	sink := cloudtest.NewMemorySink()
	sink.FailWrites("bob@example.com", 1, errors.New("503 service unavailable"))
	st := &smimesync.MemoryState{}
	s := newSyncer(src, sink, st)

	rep, err := s.Run(context.Background())
	if err == nil {
		t.Fatal("Run succeeded with a failed write")
	}
	if rep == nil || rep.CookieAdvanced || rep.Summary.Failed != 1 || rep.Summary.Written != 1 {
		t.Fatalf("report: %+v", rep)
	}
	snap, _ := st.Load(context.Background())
	if snap.Cookie != nil {
		t.Errorf("cookie advanced to %v after a failed write", snap.Cookie)
	}
	if _, ok := snap.Published["0f0e0d0c-0b0a-0908-0706-0504030201a1"]; !ok {
		t.Error("the successful write was not remembered")
	}

	// The next pass starts from the same (nil) cookie and finishes the job.
	rep, err = s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(src.given[1], nil) {
		t.Errorf("second pass was given cookie %v, want the old (nil) one", src.given[1])
	}
	if rep.Summary.Written != 1 || !rep.CookieAdvanced {
		t.Errorf("second run: written %d advanced %v, want 1 and true", rep.Summary.Written, rep.CookieAdvanced)
	}
	if sink.WriteCount("alice@example.com") != 1 {
		t.Errorf("alice written %d times, want exactly once", sink.WriteCount("alice@example.com"))
	}
	rep, err = s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if string(src.given[2]) != string([]byte{2}) {
		t.Errorf("third pass was given cookie %v, want [2]", src.given[2])
	}
	if rep.Full {
		t.Error("a delta pass is reported as full")
	}
	// A full pass ignores the cookie, and its own cookie is kept.
	plan, err := s.PlanFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if src.given[3] != nil || !plan.Full {
		t.Errorf("PlanFull gave the source cookie %v (full %v), want nil", src.given[3], plan.Full)
	}
	if _, err := s.Apply(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if string(src.given[4]) != string([]byte{4}) {
		t.Errorf("after a full pass the next delta was given cookie %v, want [4]", src.given[4])
	}
}

func TestSyncerSkips(t *testing.T) {
	ca := newTestCA(t, "CA")
	dup1 := user(1, "shared", ca.issue(t, leaf{email: "shared@example.com"}))
	dup2 := user(2, "shared", ca.issue(t, leaf{email: "shared@example.com"}))
	dup2.DN = "CN=shared,OU=Other Forest,DC=example,DC=org"
	synced := user(3, "synced", ca.issue(t, leaf{email: "synced@example.com"}))
	nomail := user(4, "nomail", ca.issue(t, leaf{email: "nomail@example.com"}))
	nomail.Mail = ""
	gone := &directory.Entry{ID: "0f0e0d0c-0b0a-0908-0706-050403020199", DN: "CN=gone,OU=Staff,DC=example,DC=com", Deleted: true}
	src := writeLDIF(t, dup1, dup2, synced, nomail, gone)
	sink := cloudtest.NewMemorySink()
	sink.SetReadOnly("synced@example.com", "directory-synced")
	st := &smimesync.MemoryState{}
	// What was published for the deleted entry is forgotten.
	st.Save(context.Background(), &smimesync.Snapshot{Version: smimesync.StateVersion, Published: map[string]smimesync.Published{
		gone.ID: {Recipient: "gone@example.com"},
	}})
	s := newSyncer(src, sink, st)
	rep, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string][]smimesync.SkipReason{}
	for _, c := range testrows.Of(t, rep) {
		if c.Action != smimesync.ActionSkip {
			t.Errorf("%s (%s): action %s, want skip", c.User, c.DN, c.Action)
		}
		reasons[c.ID] = append(reasons[c.ID], c.Reason)
		if c.ID == synced.ID && c.Detail != "directory-synced" {
			t.Errorf("%s: detail %q, want the sink's words %q", c.User, c.Detail, "directory-synced")
		}
	}
	want := map[string]smimesync.SkipReason{dup1.ID: smimesync.SkipConflict, dup2.ID: smimesync.SkipConflict, synced.ID: smimesync.SkipReadOnly, nomail.ID: smimesync.SkipNoRecipient, gone.ID: smimesync.SkipDeleted}
	for id, r := range want {
		if !slices.Equal(reasons[id], []smimesync.SkipReason{r}) {
			t.Errorf("%s: reasons %v, want %s", id, reasons[id], r)
		}
	}
	if n := len(sink.Writes()); n != 0 {
		t.Errorf("%d writes, want none", n)
	}
	snap, _ := st.Load(context.Background())
	if _, ok := snap.Published[gone.ID]; ok {
		t.Error("state still remembers the deleted entry")
	}
}

func TestSyncerCancelledApply(t *testing.T) {
	ca := newTestCA(t, "CA")
	var entries []*directory.Entry
	for i := range 20 {
		name := "user" + string(rune('a'+i))
		entries = append(entries, user(i, name, ca.issue(t, leaf{email: name + "@example.com"})))
	}
	src := &cookieSource{Source: writeLDIF(t, entries...)}
	sink := cloudtest.NewMemorySink()
	ctx, cancel := context.WithCancel(context.Background())
	var written atomic.Int32
	sink.SetWriteHook(func(addr string, c cloud.Certificates) error {
		if written.Add(1) == 5 {
			cancel()
		}
		return nil
	})
	st := &smimesync.MemoryState{}
	s := newSyncer(src, sink, st)
	s.Concurrency = 1
	plan, err := s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Apply(ctx, plan)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply = %v, want context.Canceled", err)
	}
	snap, lerr := st.Load(context.Background())
	if lerr != nil {
		t.Fatal(lerr)
	}
	if snap.Cookie != nil || rep.CookieAdvanced {
		t.Error("a cancelled apply advanced the cookie")
	}
	// Every recipient the state says was published really carries it.
	for id, p := range snap.Published {
		got, ok := sink.Get(p.Recipient)
		if !ok || len(got.UserCertificate) != 1 || sha256.Sum256(got.UserCertificate[0]) != p.UserCertificate[0] {
			t.Errorf("state says %s (%s) was published, sink disagrees", id, p.Recipient)
		}
	}
	if len(snap.Published) == 0 || len(snap.Published) == 20 {
		t.Errorf("state has %d published recipients, want some but not all", len(snap.Published))
	}

	// The next run completes, writing each remaining recipient once.
	sink.SetWriteHook(nil)
	rep, err = s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.CookieAdvanced {
		t.Error("the completing run did not advance the cookie")
	}
	for _, e := range entries {
		if n := sink.WriteCount(e.Mail); n != 1 {
			t.Errorf("%s written %d times, want 1", e.Mail, n)
		}
	}
}

func TestSyncerRefusesUnreadableState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(`{"version":1,"published":{`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSyncer(writeLDIF(t), cloudtest.NewMemorySink(), smimesync.FileState(path))
	_, err := s.Plan(context.Background())
	if !errors.Is(err, smimesync.ErrStateUnreadable) {
		t.Fatalf("Plan = %v, want ErrStateUnreadable", err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != `{"version":1,"published":{` {
		t.Error("the unreadable state file was changed")
	}
}

// prunerSource records what the Syncer asks it to prune.
type prunerSource struct {
	directory.Source
	mu     sync.Mutex
	pruned map[string]int
}

func (p *prunerSource) Prune(ctx context.Context, e *directory.Entry, attr string, values [][]byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pruned[e.ID+" "+attr] += len(values)
	return nil
}

func TestSyncerPrune(t *testing.T) {
	ca := newTestCA(t, "CA")
	expired := ca.issue(t, leaf{email: "alice@example.com", notAfter: testNow.Add(-time.Hour)})
	other := ca.issue(t, leaf{email: "mallory@example.com"})
	alice := user(1, "alice", expired, other, ca.issue(t, leaf{email: "alice@example.com"}))
	for _, reasons := range [][]smimesync.Reason{nil, {smimesync.ReasonExpired}} {
		src := &prunerSource{Source: writeLDIF(t, alice), pruned: map[string]int{}}
		s := newSyncer(src, cloudtest.NewMemorySink(), nil)
		s.Prune.Reasons = reasons
		if _, err := s.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{}
		if reasons != nil {
			// Only the expired value; the one for another address stays.
			want[alice.ID+" userCertificate"] = 1
		}
		if len(src.pruned) != len(want) || src.pruned[alice.ID+" userCertificate"] != want[alice.ID+" userCertificate"] {
			t.Errorf("prune reasons %v: pruned %v, want %v", reasons, src.pruned, want)
		}
	}
}

func TestFileState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	st := smimesync.FileState(path)
	ctx := context.Background()
	snap, err := st.Load(ctx)
	if err != nil || snap.Cookie != nil || len(snap.Published) != 0 {
		t.Fatalf("missing file: %+v, %v; want an empty snapshot", snap, err)
	}
	snap.Cookie = []byte("cookie")
	snap.Published["id"] = smimesync.Published{Recipient: "r", UserCertificate: []smimesync.Fingerprint{sha256.Sum256([]byte("x"))}, At: testNow}
	if err := st.Save(ctx, snap); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Cookie) != "cookie" || got.Published["id"].UserCertificate[0] != sha256.Sum256([]byte("x")) {
		t.Errorf("round trip: %+v", got)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".state.json.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	for name, content := range map[string]string{
		"garbage":       "not json",
		"truncated":     `{"version":1,"cookie":"Y29v`,
		"newer version": `{"version":99,"published":{}}`,
		"bad hex":       `{"version":1,"published":{"id":{"recipient":"r","userCertificate":["zz"]}}}`,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Load(ctx); !errors.Is(err, smimesync.ErrStateUnreadable) {
			t.Errorf("%s: Load = %v, want ErrStateUnreadable", name, err)
		}
	}
}

func TestFileStateJournal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	st := smimesync.FileState(path)
	var _ smimesync.Recorder = st
	fp := func(s string) []smimesync.Fingerprint { return []smimesync.Fingerprint{sha256.Sum256([]byte(s))} }

	// Records before any save replay over an empty snapshot.
	if err := st.Record(ctx, "a", smimesync.Published{Recipient: "ra", UserCertificate: fp("a1")}); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Load(ctx)
	if err != nil || snap.Published["a"].Recipient != "ra" {
		t.Fatalf("after a record: %+v, %v", snap, err)
	}
	// Save folds them in and removes the journal.
	if err := st.Save(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".journal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal left after Save: %v", err)
	}
	// A record of the new generation overrides the snapshot...
	if err := st.Record(ctx, "a", smimesync.Published{Recipient: "ra", UserCertificate: fp("a2")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Record(ctx, "b", smimesync.Published{Recipient: "rb"}); err != nil {
		t.Fatal(err)
	}
	snap, err = st.Load(ctx)
	if err != nil || snap.Published["a"].UserCertificate[0] != fp("a2")[0] || snap.Published["b"].Recipient != "rb" {
		t.Fatalf("replay: %+v, %v", snap.Published, err)
	}
	// ...and a torn last line (a crash mid-append) is ignored.
	j, err := os.OpenFile(path+".journal", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	j.WriteString(`{"g":1,"id":"c","p":{"recipi`)
	j.Close()
	snap, err = st.Load(ctx)
	if err != nil || len(snap.Published) != 2 {
		t.Fatalf("torn last line: %+v, %v", snap.Published, err)
	}
	// A journal left by a crash between Save's rename and its removal
	// belongs to the old generation and is not replayed over the new one.
	journal, _ := os.ReadFile(path + ".journal")
	delete(snap.Published, "b") // b's entry was deleted from the directory
	if err := st.Save(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".journal", journal, 0o600); err != nil {
		t.Fatal(err)
	}
	snap, err = st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Published["b"]; ok {
		t.Error("an old generation's record was replayed over a newer snapshot")
	}
	// A damaged line in the middle is an error, not a silent gap.
	if err := os.WriteFile(path+".journal", []byte("{not json}\n{\"g\":2,\"id\":\"x\",\"p\":{}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx); !errors.Is(err, smimesync.ErrStateUnreadable) {
		t.Errorf("damaged journal: Load = %v, want ErrStateUnreadable", err)
	}
}

// crashState is a FileState whose Save never happens: the process "dies"
// after the writes, before the apply's end.
type crashState struct{ smimesync.FileState }

func (c crashState) Save(ctx context.Context, s *smimesync.Snapshot) error {
	return errors.New("killed before saving")
}

func TestSyncerRecordsWritesBeforeSaving(t *testing.T) {
	ca := newTestCA(t, "CA")
	var entries []*directory.Entry
	for i := range 5 {
		name := "user" + string(rune('a'+i))
		entries = append(entries, user(i, name, ca.issue(t, leaf{email: name + "@example.com"})))
	}
	src := writeLDIF(t, entries...)
	sink := cloudtest.NewMemorySink()
	sink.SetUnreadable(true) // like Exchange: only the state knows what was published
	path := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	crashed := newSyncer(src, sink, crashState{path})
	if _, err := crashed.Run(context.Background()); err == nil {
		t.Fatal("Run succeeded although the state could not be saved")
	}
	// The next process: every write is known, nothing is written twice.
	rep, err := newSyncer(src, sink, path).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Unchanged != 5 || rep.Summary.Written != 0 {
		t.Errorf("after the crash: %d unchanged, %d written; want 5 and 0", rep.Summary.Unchanged, rep.Summary.Written)
	}
}

// deltaSource yields first on a full pass (nil cookie), then delta on every
// pass with a cookie; stale makes it refuse any cookie.
type deltaSource struct {
	first, delta []*directory.Entry
	stale        bool
	passes       []bool // full or not, per pass
}

func (d *deltaSource) Read(ctx context.Context, p directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	if p.Cookie != nil && d.stale {
		return directory.Result{}, fmt.Errorf("dirsync: %w", directory.ErrStaleCookie)
	}
	es := d.first
	if p.Cookie != nil {
		es = d.delta
	}
	d.passes = append(d.passes, p.Cookie == nil)
	for _, e := range es {
		c := *e
		if err := yield(&c); err != nil {
			return directory.Result{}, err
		}
	}
	return directory.Result{Cookie: []byte("c"), Full: p.Cookie == nil}, nil
}

func TestSyncerRetriesSkippedEntries(t *testing.T) {
	ca := newTestCA(t, "CA")
	alice := user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"}))
	src := &deltaSource{first: []*directory.Entry{alice}}
	sink := cloudtest.NewMemorySink()
	sink.SetMissing("alice@example.com", true) // her mailbox does not exist yet
	st := &smimesync.MemoryState{}
	s := newSyncer(src, sink, st)
	rep, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if testrows.Of(t, rep)[0].Reason != smimesync.SkipNoRecipient || !rep.CookieAdvanced {
		t.Fatalf("first pass: %s %q, advanced %v", testrows.Of(t, rep)[0].Action, testrows.Of(t, rep)[0].Reason, rep.CookieAdvanced)
	}
	// The mailbox appears; the directory does not change, so the delta is
	// empty, and yet alice is published: once the period of
	// RecheckNotFound in which the sink last answered is over. Until then
	// her skip stands on its memo.
	sink.SetMissing("alice@example.com", false)
	rep, err = s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := testrows.Of(t, rep); rep.Summary.Retried != 1 || rep.Summary.Written != 0 || len(r) != 1 || !r[0].Memoized || r[0].Reason != smimesync.SkipNoRecipient {
		t.Fatalf("second pass, same clock: retried %d written %d, rows %+v; want alice's skip memoized", rep.Summary.Retried, rep.Summary.Written, r)
	}
	later := testNow.Truncate(smimesync.DefaultRecheckNotFound).Add(smimesync.DefaultRecheckNotFound)
	s.Now = func() time.Time { return later }
	rep, err = s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Full || rep.Summary.Retried != 1 || rep.Summary.Written != 1 || !testrows.Of(t, rep)[0].Retried {
		t.Fatalf("next period: full %v retried %d written %d", rep.Full, rep.Summary.Retried, rep.Summary.Written)
	}
	// Published: no longer pending.
	rep, err = s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(testrows.Of(t, rep)) != 0 {
		t.Errorf("third pass planned %d changes, want none", len(testrows.Of(t, rep)))
	}
	if n := sink.WriteCount("alice@example.com"); n != 1 {
		t.Errorf("alice written %d times, want 1", n)
	}
}

func TestSyncerStaleCookieReadsEverything(t *testing.T) {
	ca := newTestCA(t, "CA")
	src := &deltaSource{first: []*directory.Entry{user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"}))}}
	s := newSyncer(src, cloudtest.NewMemorySink(), &smimesync.MemoryState{})
	if _, err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	src.stale = true
	plan, err := s.Plan(context.Background())
	if err != nil {
		t.Fatalf("Plan with a refused cookie: %v", err)
	}
	if !plan.Full || plan.Summary.Entries != 1 || !slices.Equal(src.passes, []bool{true, true}) {
		t.Errorf("full %v, %d entries, passes %v; want a full re-read", plan.Full, plan.Summary.Entries, src.passes)
	}
}

func TestSyncerRefusesStalePlan(t *testing.T) {
	ca := newTestCA(t, "CA")
	src := writeLDIF(t, user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})))
	s := newSyncer(src, cloudtest.NewMemorySink(), smimesync.FileState(filepath.Join(t.TempDir(), "state.json")))
	p1, err := s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(context.Background(), p1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(context.Background(), p2); !errors.Is(err, smimesync.ErrStalePlan) {
		t.Errorf("applying an older plan: %v, want ErrStalePlan", err)
	}
}

func TestSyncerGuardCountsUnknownSets(t *testing.T) {
	ca := newTestCA(t, "CA")
	var es []*directory.Entry
	for i, n := range []string{"a", "b", "c"} {
		es = append(es, user(i, n, ca.issue(t, leaf{email: n + "@example.com"})))
	}
	sink := cloudtest.NewMemorySink()
	sink.SetUnreadable(true) // what they carry now is not known
	s := newSyncer(writeLDIF(t, es...), sink, &smimesync.MemoryState{})
	s.Guard.MaxRemovals = 2
	_, err := s.Run(context.Background())
	var ge *smimesync.GuardError
	if !errors.As(err, &ge) || ge.Losing != 3 {
		t.Fatalf("Run = %v, want the guard to count 3 blind overwrites", err)
	}
	if len(sink.Writes()) != 0 {
		t.Error("written despite the guard")
	}
}

func TestSyncerPruneSafety(t *testing.T) {
	ca := newTestCA(t, "CA")
	var es []*directory.Entry
	for i, n := range []string{"a", "b", "c"} {
		es = append(es, user(i, n, ca.issue(t, leaf{email: n + "@example.com", notAfter: testNow.Add(-time.Hour)}), ca.issue(t, leaf{email: n + "@example.com"})))
	}
	src := &prunerSource{Source: writeLDIF(t, es...), pruned: map[string]int{}}
	s := newSyncer(src, cloudtest.NewMemorySink(), nil)

	s.Prune.Reasons = []smimesync.Reason{smimesync.ReasonNoMatchingAddress}
	if _, err := s.Plan(context.Background()); !errors.Is(err, smimesync.ErrUnsafePrune) {
		t.Errorf("pruning for a wrong address: %v, want ErrUnsafePrune", err)
	}
	s.Prune.Reasons = []smimesync.Reason{smimesync.ReasonExpired}
	s.Guard.MaxRemovals = 2
	_, err := s.Run(context.Background())
	var ge *smimesync.GuardError
	if !errors.As(err, &ge) || ge.Pruning != 3 || len(src.pruned) != 0 {
		t.Fatalf("Run = %v, pruned %v; want the guard to stop 3 prunes", err, src.pruned)
	}
}

// failingFind fails every lookup but the first's recipient.
type failingFind struct{ cloud.Sink }

func (f failingFind) Find(ctx context.Context, e *directory.Entry) (*cloud.Recipient, error) {
	if e.Mail == "bob@example.com" {
		return nil, errors.New("503 from the lookup")
	}
	return f.Sink.Find(ctx, e)
}

func TestSyncerCountsFailedLookups(t *testing.T) {
	ca := newTestCA(t, "CA")
	src := &cookieSource{Source: writeLDIF(t,
		user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})),
		user(2, "bob", ca.issue(t, leaf{email: "bob@example.com"})))}
	st := &smimesync.MemoryState{}
	rep, err := newSyncer(src, failingFind{cloudtest.NewMemorySink()}, st).Run(context.Background())
	if err == nil || rep.Summary.Failed != 1 || rep.Summary.Written != 1 || rep.CookieAdvanced {
		t.Fatalf("Run = %v; failed %d written %d advanced %v; want 1, 1, false", err, rep.Summary.Failed, rep.Summary.Written, rep.CookieAdvanced)
	}
	snap, _ := st.Load(context.Background())
	if len(snap.Pending) != 1 {
		t.Errorf("the failed lookup is not kept to retry: %d pending", len(snap.Pending))
	}
}

func TestSyncerStateIsPerSource(t *testing.T) {
	ca := newTestCA(t, "CA")
	// Two forests whose LDIF exports carry no objectGUID: the IDs are the
	// DNs, and both have "CN=alice,OU=Staff,DC=example,DC=com".
	a := &directory.Entry{DN: "CN=alice,OU=Staff,DC=example,DC=com", Mail: "alice@example.com", UserCertificate: [][]byte{ca.issue(t, leaf{email: "alice@example.com"})}}
	b := &directory.Entry{DN: a.DN, Mail: "alice@example.org", UserCertificate: [][]byte{ca.issue(t, leaf{email: "alice@example.org"})}}
	m := &directory.Multi{Sources: []directory.Named{{Name: "com", Source: writeLDIF(t, a)}, {Name: "org", Source: writeLDIF(t, b)}}}
	sink := cloudtest.NewMemorySink()
	sink.SetUnreadable(true)
	st := &smimesync.MemoryState{}
	s := newSyncer(m, sink, st)
	if _, err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap, _ := st.Load(context.Background())
	if len(snap.Published) != 2 {
		t.Errorf("state holds %d records, want one per source", len(snap.Published))
	}
	rep, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Unchanged != 2 {
		t.Errorf("second run: %d unchanged, want 2", rep.Summary.Unchanged)
	}
}
