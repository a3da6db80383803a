package smimesync_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
	bolt "go.etcd.io/bbolt"
)

var (
	_ smimesync.Recorder = (*smimesync.BoltState)(nil)
	_ smimesync.Preparer = (*smimesync.BoltState)(nil)
	_ smimesync.Locker   = (*smimesync.BoltState)(nil)
)

func storeFP(s string) []smimesync.Fingerprint {
	return []smimesync.Fingerprint{sha256.Sum256([]byte(s))}
}

// sampleSnapshot has every member a Snapshot has.
func sampleSnapshot() *smimesync.Snapshot {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	return &smimesync.Snapshot{
		Version:   smimesync.StateVersion,
		Cookie:    []byte("cookie 1"),
		Published: map[string]smimesync.Published{"a": {Recipient: "ra", UserCertificate: storeFP("a1"), At: at, User: "a@example.com", Name: "A", Kind: "mailbox"}, "b": {Recipient: "rb", UserSMIMECertificate: storeFP("b1"), At: at}},
		LastRun:   at,
		LastGood:  at,
		LastFull:  at,
		Pending:   map[string]*directory.Entry{"p": {ID: "p", DN: "CN=p,DC=example,DC=com", Mail: "p@example.com"}},
		Departed:  map[string]smimesync.Published{"d": {Recipient: "rd", UserCertificate: storeFP("d1"), At: at}},
	}
}

func TestBoltStateSaveLoad(t *testing.T) {
	ctx := context.Background()
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	empty, err := st.Load(ctx)
	if err != nil || len(empty.Published) != 0 || empty.Cookie != nil || empty.Generation != 0 || empty.Version != smimesync.StateVersion {
		t.Fatalf("new store: %+v, %v", empty, err)
	}
	want := sampleSnapshot()
	if err := st.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	if want.Generation != 1 {
		t.Errorf("generation after the first save = %d, want 1", want.Generation)
	}
	got, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load after Save:\n got %+v\nwant %+v", got, want)
	}
	// A record that leaves the snapshot leaves the store.
	delete(got.Published, "b")
	got.Departed = nil // "d" left: an empty map reads back as none
	got.Pending = nil
	if err := st.Save(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := st.Load(ctx)
	if err != nil || !reflect.DeepEqual(again, got) || again.Generation != 2 {
		t.Errorf("second save: %+v, %v; want %+v", again, err, got)
	}
}

// TestBoltStateSaveRewritesWhatChanged: a save writes the records that
// changed, adds the new ones and drops those that left, in every map of
// the snapshot; the records that did not change read back as they were.
func TestBoltStateSaveRewritesWhatChanged(t *testing.T) {
	ctx := context.Background()
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	first := sampleSnapshot()
	first.Pending["q"] = &directory.Entry{ID: "q", DN: "CN=q", UserCertificate: [][]byte{{0x30, 1}}}
	if err := st.Save(ctx, first); err != nil {
		t.Fatal(err)
	}
	next, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next.Pending["p"] = &directory.Entry{ID: "p", DN: "CN=p,DC=example,DC=com", Mail: "p2@example.com"} // changed
	next.Pending["r"] = &directory.Entry{ID: "r", DN: "CN=r", UserCertificate: [][]byte{{0x30, 2}}}     // added
	a := next.Published["a"]
	a.UserCertificate = storeFP("a2")
	next.Published["a"] = a                                              // changed
	next.Published["c"] = smimesync.Published{Recipient: "rc", At: a.At} // added
	delete(next.Published, "b")                                          // dropped
	next.Departed["e"] = smimesync.Published{Recipient: "re", At: a.At}  // added
	if err := st.Save(ctx, next); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, next) {
		t.Errorf("Load after the second Save:\n got %+v\nwant %+v", got, next)
	}
}

func TestBoltStateRecord(t *testing.T) {
	ctx := context.Background()
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	base := sampleSnapshot()
	if err := st.Save(ctx, base); err != nil {
		t.Fatal(err)
	}
	if err := st.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	for id, p := range map[string]smimesync.Published{
		"a": {Recipient: "ra", UserCertificate: storeFP("a2")}, // renewed
		"c": {Recipient: "rc"},                                 // new
		"b": {},                                                // forgotten
		"d": {Recipient: "rd2"},                                // departed, came back
	} {
		if err := st.Record(ctx, id, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Published["a"].UserCertificate[0] != storeFP("a2")[0] || got.Published["c"].Recipient != "rc" || got.Published["d"].Recipient != "rd2" {
		t.Errorf("records not read back: %+v", got.Published)
	}
	if _, ok := got.Published["b"]; ok {
		t.Error("a forgetting record left the entry published")
	}
	if len(got.Departed) != 0 {
		t.Errorf("departed after the entry was written again: %+v", got.Departed)
	}
	// Records do not move the generation nor the cookie: only Save does.
	if got.Generation != base.Generation || string(got.Cookie) != "cookie 1" {
		t.Errorf("after records: generation %d cookie %q, want %d and %q", got.Generation, got.Cookie, base.Generation, "cookie 1")
	}
}

func TestBoltStateImport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "state.json")
	fsState := smimesync.FileState(jsonPath)
	if err := fsState.Save(ctx, sampleSnapshot()); err != nil {
		t.Fatal(err)
	}
	// A write recorded in the journal after the last save is imported too.
	if err := fsState.Record(ctx, "j", smimesync.Published{Recipient: "rj", UserCertificate: storeFP("j")}); err != nil {
		t.Fatal(err)
	}
	want, err := fsState.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}

	st := &smimesync.BoltState{Path: filepath.Join(dir, "state.db"), Import: jsonPath}
	got, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("imported:\n got %+v\nwant %+v", got, want)
	}
	if _, err := os.Lstat(jsonPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the imported JSON is still at its name: %v", err)
	}
	if _, err := os.Lstat(jsonPath + ".journal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the imported journal is still at its name: %v", err)
	}
	baks, _ := filepath.Glob(jsonPath + ".imported-*.bak")
	if len(baks) != 1 {
		t.Fatalf("backups %v, want one", baks)
	}
	if b, err := os.ReadFile(baks[0]); err != nil || string(b) != string(raw) {
		t.Errorf("the backup is not the imported file (%v)", err)
	}
	if j, _ := filepath.Glob(jsonPath + ".journal.imported-*.bak"); len(j) != 1 {
		t.Errorf("journal backups %v, want one", j)
	}

	// An import interrupted after its commit, before the rename: the same
	// file is not imported again over what the store learned since.
	if err := st.Record(ctx, "a", smimesync.Published{Recipient: "ra", UserCertificate: storeFP("a3")}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jsonPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Published["a"].UserCertificate[0] != storeFP("a3")[0] {
		t.Error("the JSON state was imported a second time over newer records")
	}
	if _, err := os.Lstat(jsonPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the already imported JSON was not renamed away: %v", err)
	}

	// Another JSON state beside a store that holds one: refused, both kept.
	other := sampleSnapshot()
	other.Cookie = []byte("another")
	if err := fsState.Save(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx); !errors.Is(err, smimesync.ErrStateUnreadable) {
		t.Errorf("a second JSON state: Load = %v, want ErrStateUnreadable", err)
	}
	if _, err := os.Stat(jsonPath); err != nil {
		t.Errorf("the refused JSON state is gone: %v", err)
	}
	st.Import = ""
	if got, err := st.Load(ctx); err != nil || got.Published["a"].UserCertificate[0] != storeFP("a3")[0] {
		t.Errorf("the store after the refusal: %v", err)
	}
}

func TestBoltStateRefusesForeignFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	// A JSON file that is not a state is not imported, nor touched.
	foreign := filepath.Join(dir, "config.json")
	if err := os.WriteFile(foreign, []byte(`{"tenant":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	st := &smimesync.BoltState{Path: filepath.Join(dir, "a.db"), Import: foreign}
	if _, err := st.Load(ctx); !errors.Is(err, smimesync.ErrStateUnreadable) || !strings.Contains(err.Error(), foreign) {
		t.Errorf("foreign JSON: Load = %v, want ErrStateUnreadable naming %s", err, foreign)
	}
	if b, err := os.ReadFile(foreign); err != nil || string(b) != `{"tenant":"x"}` {
		t.Errorf("the foreign JSON was changed: %q, %v", b, err)
	}

	// A file at Path that is not a bbolt file.
	notDB := filepath.Join(dir, "b.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&smimesync.BoltState{Path: notDB}).Load(ctx); !errors.Is(err, smimesync.ErrStateUnreadable) {
		t.Errorf("not a bbolt file: Load = %v, want ErrStateUnreadable", err)
	}

	// A bbolt file of someone else's.
	otherDB := filepath.Join(dir, "c.db")
	db, err := bolt.Open(otherDB, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("things")); return err })
	db.Close()
	if _, err := (&smimesync.BoltState{Path: otherDB}).Load(ctx); !errors.Is(err, smimesync.ErrStateUnreadable) {
		t.Errorf("someone else's bbolt file: Load = %v, want ErrStateUnreadable", err)
	}

	// A symbolic link at Path.
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(filepath.Join(dir, "target.db"), link); err != nil {
		t.Skip(err)
	}
	if _, err := (&smimesync.BoltState{Path: link}).Load(ctx); !errors.Is(err, smimesync.ErrSymlink) {
		t.Errorf("symbolic link: Load = %v, want ErrSymlink", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "target.db")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the link was followed")
	}
}

func TestBoltStateLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	a := &smimesync.BoltState{Path: path}
	b := &smimesync.BoltState{Path: path} // another instance of the file
	unlock, err := a.Lock()
	if err != nil {
		t.Fatal(err)
	}
	var le *smimesync.LockedError
	if _, err := b.Lock(); !errors.Is(err, smimesync.ErrLocked) || !errors.As(err, &le) || le.State != path {
		t.Errorf("second instance's Lock = %v, want a LockedError wrapping ErrLocked", err)
	} else if runtime.GOOS == "linux" && le.PID != os.Getpid() {
		t.Errorf("the LockedError names process %d, want this one (%d)", le.PID, os.Getpid())
	}
	if _, err := b.Load(ctx); !errors.Is(err, smimesync.ErrLocked) {
		t.Errorf("second instance's Load = %v, want ErrLocked", err)
	}
	if _, err := a.Lock(); !errors.Is(err, smimesync.ErrLocked) {
		t.Errorf("a second Lock of the same instance = %v, want ErrLocked", err)
	}
	// The holder reads and writes through its open store.
	if err := a.Save(ctx, sampleSnapshot()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock: %v", err)
	}
	u2, err := b.Lock()
	if err != nil {
		t.Fatalf("Lock after the holder let go: %v", err)
	}
	u2()
	// The Syncer takes it too.
	s := newSyncer(writeLDIF(t), cloudtest.NewMemorySink(), a)
	su, err := s.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer su()
	if _, err := b.Lock(); !errors.Is(err, smimesync.ErrLocked) {
		t.Errorf("Lock while a Syncer holds it = %v, want ErrLocked", err)
	}
}

// boltNoSave is a BoltState whose process dies after its writes, before
// the apply's end.
type boltNoSave struct{ *smimesync.BoltState }

func (boltNoSave) Save(context.Context, *smimesync.Snapshot) error {
	return errors.New("killed before saving")
}

func (boltNoSave) SaveChanges(context.Context, *smimesync.Snapshot, map[string]smimesync.Published) error {
	return errors.New("killed before saving")
}

func TestBoltStateRecordsWritesBeforeSaving(t *testing.T) {
	ca := newTestCA(t, "CA")
	var entries []*directory.Entry
	for i := range 5 {
		name := "user" + string(rune('a'+i))
		entries = append(entries, user(i, name, ca.issue(t, leaf{email: name + "@example.com"})))
	}
	src := writeLDIF(t, entries...)
	sink := cloudtest.NewMemorySink()
	sink.SetUnreadable(true) // like Exchange: only the state knows what was published
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	if _, err := newSyncer(src, sink, boltNoSave{st}).Run(context.Background()); err == nil {
		t.Fatal("Run succeeded although the state could not be saved")
	}
	snap, err := st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Cookie != nil || snap.Generation != 0 {
		t.Errorf("a pass that did not end well moved the cookie or the generation: %q, %d", snap.Cookie, snap.Generation)
	}
	rep, err := newSyncer(src, sink, st).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Unchanged != 5 || rep.Summary.Written != 0 {
		t.Errorf("after the crash: %d unchanged, %d written; want 5 and 0", rep.Summary.Unchanged, rep.Summary.Written)
	}
}
