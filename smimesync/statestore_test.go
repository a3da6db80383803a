package smimesync_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
	bolt "go.etcd.io/bbolt"
)

var (
	_ smimesync.RecordStore = (*smimesync.BoltState)(nil)
	_ smimesync.RecordStore = (*smimesync.MemoryState)(nil)
)

// TestBoltStateView: a view reads the header without the records, a record
// by key, every record in key order, and who holds a recipient, through
// records, forgets and SaveChanges; SaveChanges touches only the records it
// is given and counts the generation up.
func TestBoltStateView(t *testing.T) {
	ctx := context.Background()
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	base := sampleSnapshot()
	if err := st.Save(ctx, base); err != nil {
		t.Fatal(err)
	}
	v, err := st.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	head, err := v.Header(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleSnapshot()
	want.Generation = base.Generation
	want.Published = map[string]smimesync.Published{}
	// (Header also notes the store's count of writes: see
	// planfile_state_test.go.)
	if !reflect.DeepEqual(smimesync.WithoutWrites(head), want) {
		t.Errorf("Header:\n got %+v\nwant %+v", head, want)
	}
	if p, ok, err := v.Published(ctx, "a"); err != nil || !ok || !reflect.DeepEqual(p, base.Published["a"]) {
		t.Errorf("Published(a) = %+v, %v, %v", p, ok, err)
	}
	if _, ok, err := v.Published(ctx, "nobody"); ok || err != nil {
		t.Errorf("Published(nobody) = %v, %v", ok, err)
	}
	holders := func(rid string) []string {
		t.Helper()
		keys, err := v.Holders(ctx, rid)
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if got := holders("ra"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("Holders(ra) = %q", got)
	}
	// b moves to ra, a is forgotten, c comes in on ra: the index follows.
	for id, p := range map[string]smimesync.Published{"b": {Recipient: "ra"}, "a": {}, "c": {Recipient: "ra"}} {
		if err := st.Record(ctx, id, p); err != nil {
			t.Fatal(err)
		}
	}
	if got := holders("ra"); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("Holders(ra) after records = %q, want [b c]", got)
	}
	if got := holders("rb"); len(got) != 0 {
		t.Errorf("Holders(rb) after b moved = %q", got)
	}
	var keys []string
	if err := v.EachPublished(ctx, nil, func(k string, _ smimesync.Published) error { keys = append(keys, k); return nil }); err != nil || !slices.Equal(keys, []string{"b", "c"}) {
		t.Errorf("EachPublished: %q, %v", keys, err)
	}
	stop := errors.New("stop")
	if err := v.EachPublished(ctx, nil, func(string, smimesync.Published) error { return stop }); err != stop {
		t.Errorf("EachPublished did not return fn's error: %v", err)
	}

	head.Cookie = []byte("cookie 2")
	head.Pending = nil
	gen := head.Generation
	if err := st.SaveChanges(ctx, head, map[string]smimesync.Published{"c": {}, "e": {Recipient: "re"}}); err != nil {
		t.Fatal(err)
	}
	if head.Generation != gen+1 {
		t.Errorf("generation after SaveChanges = %d, want %d", head.Generation, gen+1)
	}
	got, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Cookie) != "cookie 2" || got.Generation != gen+1 || len(got.Pending) != 0 {
		t.Errorf("header after SaveChanges: cookie %q generation %d pending %v", got.Cookie, got.Generation, got.Pending)
	}
	if ks := slices.Sorted(func(yield func(string) bool) {
		for k := range got.Published {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(ks, []string{"b", "e"}) || got.Published["b"].Recipient != "ra" {
		t.Errorf("records after SaveChanges: %+v (b untouched, c removed, e added)", got.Published)
	}
	if got := holders("ra"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("Holders(ra) after SaveChanges = %q, want [b]", got)
	}
	if got := holders("re"); !slices.Equal(got, []string{"e"}) {
		t.Errorf("Holders(re) after SaveChanges = %q, want [e]", got)
	}
}

// TestBoltStateRebuildsHolders: a store saved by a release without the
// recipient index (the index's generation is not the header's, entries are
// missing) has it rebuilt when it is opened.
func TestBoltStateRebuildsHolders(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	st := &smimesync.BoltState{Path: path}
	if err := st.Save(ctx, sampleSnapshot()); err != nil {
		t.Fatal(err)
	}
	// An older release: drops the index and saves the header as the next
	// generation without it.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("holders")); err != nil {
			return err
		}
		if _, err := tx.CreateBucket([]byte("holders")); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("holders"), binary.BigEndian.AppendUint64(nil, 99))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	v, err := (&smimesync.BoltState{Path: path}).View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if got, err := v.Holders(ctx, "rb"); err != nil || !slices.Equal(got, []string{"b"}) {
		t.Errorf("Holders(rb) on a store without its index = %q, %v; want [b]", got, err)
	}
}

// strictStore is a BoltState that a delta pass must not read or write
// whole: Load and Save fail, and so does going through every record
// unless full is set.
type strictStore struct {
	*smimesync.BoltState
	full bool
}

func (strictStore) Load(context.Context) (*smimesync.Snapshot, error) {
	return nil, errors.New("Load: the whole state was read")
}

func (strictStore) Save(context.Context, *smimesync.Snapshot) error {
	return errors.New("Save: the whole state was written")
}

func (s strictStore) View(ctx context.Context) (smimesync.StateView, error) {
	v, err := s.BoltState.View(ctx)
	return strictView{v, s.full}, err
}

type strictView struct {
	smimesync.StateView
	full bool
}

func (v strictView) EachPublished(ctx context.Context, skip func(string) bool, fn func(string, smimesync.Published) error) error {
	if !v.full {
		return errors.New("EachPublished: a delta pass went through every record")
	}
	return v.StateView.EachPublished(ctx, skip, fn)
}

// TestDeltaPassReadsOnlyWhatItTouches: over a RecordStore, a delta pass
// (a renewal, a newcomer on a recipient an earlier entry holds, a deletion
// of a published entry) neither loads nor saves the whole state nor goes
// through every record, and still finds the conflict and the departure; a
// full pass goes through the records (with a cursor) and still never
// loads them whole.
func TestDeltaPassReadsOnlyWhatItTouches(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	alice := user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"}))
	bob := user(2, "bob", ca.issue(t, leaf{email: "bob@example.com"}))
	carol := user(3, "carol", ca.issue(t, leaf{email: "carol@example.com"}))
	src := &deltaSource{first: []*directory.Entry{alice, bob, carol}}
	sink := cloudtest.NewMemorySink()
	bs := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	full := strictStore{BoltState: bs, full: true}
	if rep := applyPass(t, newSyncer(src, sink, full), true); rep.Summary.Written != 3 {
		t.Fatalf("first pass: %+v", rep.Summary)
	}

	renewed := *carol
	renewed.UserCertificate = [][]byte{carol.UserCertificate[0], ca.issue(t, leaf{email: "carol@example.com", key: 7})}
	impostor := user(4, "alice", ca.issue(t, leaf{email: "alice@example.com", key: 8})) // alice's recipient
	src.delta = []*directory.Entry{&renewed, impostor, {ID: bob.ID, DN: bob.DN, Deleted: true}}
	s := newSyncer(src, sink, strictStore{BoltState: bs})
	rep := applyPass(t, s, false)
	if rep.Full {
		t.Fatal("the second pass was not a delta")
	}
	if c := rowOf(testrows.Of(t, rep), carol.ID); c == nil || c.Outcome != smimesync.OutcomeWritten {
		t.Errorf("carol's renewal: %v", actionsOf(testrows.Of(t, rep)))
	}
	if c := rowOf(testrows.Of(t, rep), impostor.ID); c == nil || c.Reason != smimesync.SkipConflict {
		t.Errorf("the newcomer on alice's recipient: %v", actionsOf(testrows.Of(t, rep)))
	}
	if c := rowOf(testrows.Of(t, rep), bob.ID); c == nil || !c.Departed() {
		t.Errorf("bob's deletion: %v", actionsOf(testrows.Of(t, rep)))
	}
	if !rep.CookieAdvanced || !rep.StateSaved {
		t.Errorf("cookie advanced %v, state saved %v", rep.CookieAdvanced, rep.StateSaved)
	}
	got, err := bs.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Published[carol.ID]; len(p.UserCertificate) != 2 {
		t.Errorf("carol's record after the delta: %+v", p)
	}
	if _, ok := got.Published[bob.ID]; ok || got.Departed[bob.ID].Recipient == "" {
		t.Errorf("bob after his deletion: published %v, departed %+v", ok, got.Departed[bob.ID])
	}
	if got.Generation != 2 {
		t.Errorf("generation = %d, want 2", got.Generation)
	}
	if _, err := s.LastFull(ctx); err != nil {
		t.Errorf("LastFull read the whole state: %v", err)
	}

	// A full pass without carol: her record has values, so she departs;
	// alice stays.
	src.first = []*directory.Entry{alice}
	rep = applyPass(t, newSyncer(src, sink, full), true)
	if c := rowOf(testrows.Of(t, rep), carol.ID); c == nil || !c.Departed() {
		t.Errorf("carol out of the full read: %v", actionsOf(testrows.Of(t, rep)))
	}
	got, err = bs.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Published) != 1 || got.Published[alice.ID].Recipient == "" {
		t.Errorf("records after the full pass: %+v", got.Published)
	}
}

// TestStatePathsAgree: the same passes (full and delta; renewals,
// conflicts with earlier entries, deletions, a missing mailbox, entries
// leaving the scope, RemoveDeparted) leave the same state and the same
// plans whether the State is loaded and saved whole (FileState) or read
// and saved a part at a time (BoltState, MemoryState).
func TestStatePathsAgree(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	cert := func(name string, key int) []byte { return ca.issue(t, leaf{email: name + "@example.com", key: key}) }
	var es []*directory.Entry
	for i, n := range []string{"alice", "bob", "carol", "dave", "erin", "frank"} {
		es = append(es, user(i, n, cert(n, i)))
	}
	alice, bob, carol, dave, erin, frank := es[0], es[1], es[2], es[3], es[4], es[5]
	twin := user(10, "alice", cert("alice", 20))  // alice's recipient, again
	grace := user(11, "grace", cert("grace", 21)) // no mailbox yet
	renewedDave := *dave
	renewedDave.UserCertificate = append(slices.Clone(dave.UserCertificate), cert("dave", 22))
	gone := func(e *directory.Entry) *directory.Entry { return &directory.Entry{ID: e.ID, DN: e.DN, Deleted: true} }

	type pass struct {
		full           bool
		first, delta   []*directory.Entry
		removeDeparted bool
		unreadable     bool
	}
	passes := []pass{
		{full: true, first: es},
		{delta: []*directory.Entry{twin, grace, gone(bob), &renewedDave}},
		{delta: []*directory.Entry{gone(carol)}, unreadable: true},
		{full: true, first: []*directory.Entry{alice, twin, &renewedDave, erin}},
		{delta: nil, removeDeparted: true},
		{full: true, first: []*directory.Entry{alice, &renewedDave, frank}, removeDeparted: true},
	}
	run := func(st smimesync.State) (plans [][]string, snaps []*smimesync.Snapshot) {
		src := &deltaSource{}
		sink := cloudtest.NewMemorySink()
		sink.SetMissing("grace@example.com", true)
		for i, p := range passes {
			src.first, src.delta = p.first, p.delta
			sink.SetUnreadable(p.unreadable)
			s := newSyncer(src, sink, st)
			s.RemoveDeparted = p.removeDeparted
			// The paths of the state, not the memos (which FileState
			// does not keep): every entry is judged, and has a row.
			s.Reverify = smimesync.ReverifyEveryPass
			plan, err := s.Plan(ctx)
			if p.full {
				plan, err = s.PlanFull(ctx)
			}
			if err != nil {
				t.Fatalf("%T pass %d: %v", st, i, err)
			}
			plan.Force = true
			rep, err := s.Apply(ctx, plan)
			if err != nil && !errors.Is(err, smimesync.ErrChangesFailed) {
				t.Fatalf("%T pass %d: %v", st, i, err)
			}
			var rows []string
			for _, c := range testrows.Of(t, rep) {
				rows = append(rows, fmt.Sprintf("%s %s %s %q %s %v", c.ID, c.Action, c.Reason, c.Error, c.Outcome, c.Departed()))
			}
			plans = append(plans, rows)
			snap, err := st.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, snap)
		}
		return plans, snaps
	}
	wantPlans, wantSnaps := run(smimesync.FileState(filepath.Join(t.TempDir(), "state.json")))
	// The scenario does what it says.
	for i, want := range map[int]string{1: twin.ID + " skip conflict", 2: carol.ID + " skip departed"} {
		if !slices.ContainsFunc(wantPlans[i], func(r string) bool { return bytes.HasPrefix([]byte(r), []byte(want)) }) {
			t.Errorf("pass %d has no row %q: %q", i, want, wantPlans[i])
		}
	}
	for _, st := range []smimesync.State{
		&smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")},
		&smimesync.MemoryState{},
	} {
		plans, snaps := run(st)
		for i := range passes {
			if !slices.Equal(plans[i], wantPlans[i]) {
				t.Errorf("%T pass %d plan:\n got %q\nwant %q", st, i, plans[i], wantPlans[i])
			}
			if !reflect.DeepEqual(snaps[i], wantSnaps[i]) {
				t.Errorf("%T pass %d state:\n got %+v\nwant %+v", st, i, snaps[i], wantSnaps[i])
			}
		}
	}
}

// TestBoltStatePlanFile: a plan made over a BoltState is saved with the
// state's SHA-256 (computed going through the records, not loading them),
// and applies from its file; a write recorded after it was saved makes it
// stale.
func TestBoltStatePlanFile(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	alice := user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"}))
	bob := user(2, "bob", ca.issue(t, leaf{email: "bob@example.com"}))
	src := &deltaSource{first: []*directory.Entry{alice}}
	sink := cloudtest.NewMemorySink()
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	s := newSyncer(src, sink, st)
	applyPass(t, s, true)
	src.delta = []*directory.Entry{bob}
	for _, recordBetween := range []bool{false, true} {
		plan, err := s.Plan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := plan.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if recordBetween {
			if err := st.Record(ctx, "someone", smimesync.Published{Recipient: "r"}); err != nil {
				t.Fatal(err)
			}
		}
		read, err := smimesync.ReadPlan(&buf)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Apply(ctx, read)
		if recordBetween != errors.Is(err, smimesync.ErrStalePlan) || !recordBetween && err != nil {
			t.Errorf("record between %v: Apply of the plan file: %v", recordBetween, err)
		}
	}
}

// handingStore is a BoltState that counts the records its views' walks
// hand out (EachPublished's fn calls).
type handingStore struct {
	*smimesync.BoltState
	handed *int
}

func (s handingStore) View(ctx context.Context) (smimesync.StateView, error) {
	v, err := s.BoltState.View(ctx)
	return handingView{v, s.handed}, err
}

type handingView struct {
	smimesync.StateView
	handed *int
}

func (v handingView) EachPublished(ctx context.Context, skip func(string) bool, fn func(string, smimesync.Published) error) error {
	return v.StateView.EachPublished(ctx, skip, func(k string, p smimesync.Published) error {
		*v.handed++
		return fn(k, p)
	})
}

// TestFullPassWalksOnlyTheUnseen: a full pass goes through the store's
// records for the entries the directory no longer holds (departures,
// forgetting), not the records of the entries it read: those are not
// even decoded.
func TestFullPassWalksOnlyTheUnseen(t *testing.T) {
	ca := newTestCA(t, "CA")
	alice := user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"}))
	bob := user(2, "bob", ca.issue(t, leaf{email: "bob@example.com"}))
	carol := user(3, "carol", ca.issue(t, leaf{email: "carol@example.com"}))
	src := &deltaSource{first: []*directory.Entry{alice, bob, carol}}
	sink := cloudtest.NewMemorySink()
	var handed int
	st := handingStore{&smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}, &handed}
	if rep := applyPass(t, newSyncer(src, sink, st), true); rep.Summary.Written != 3 {
		t.Fatalf("first pass: %+v", rep.Summary)
	}
	handed = 0
	if rep := applyPass(t, newSyncer(src, sink, st), true); rep.Summary.Unchanged != 3 {
		t.Fatalf("second pass: %+v", rep.Summary)
	}
	if handed != 0 {
		t.Errorf("a full pass that read every entry was handed %d records by its walks, want 0", handed)
	}
	handed = 0
	src.first = []*directory.Entry{alice, bob}
	rep := applyPass(t, newSyncer(src, sink, st), true)
	if c := rowOf(testrows.Of(t, rep), carol.ID); c == nil || !c.Departed() {
		t.Fatalf("carol out of the full read: %v", actionsOf(testrows.Of(t, rep)))
	}
	if handed != 1 {
		t.Errorf("a full pass without carol was handed %d records by its walks, want 1 (carol's)", handed)
	}
}
