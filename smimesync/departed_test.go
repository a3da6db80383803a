package smimesync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// applyPass plans (a full read when full is set) and applies.
func applyPass(t *testing.T, s *smimesync.Syncer, full bool) *smimesync.Report {
	t.Helper()
	plan, err := s.Plan(context.Background())
	if full {
		plan, err = s.PlanFull(context.Background())
	}
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Apply(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// rowOf returns the change about the entry with id, or nil.
func rowOf(cs []*smimesync.Change, id string) *smimesync.Change {
	for _, c := range cs {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// departedSetup publishes alice and bob, then takes bob out of the
// directory that full reads return.
func departedSetup(t *testing.T) (src *deltaSource, sink *cloudtest.MemorySink, bob *directory.Entry, bobCert []byte) {
	t.Helper()
	ca := newTestCA(t, "CA")
	bobCert = ca.issue(t, leaf{email: "bob@example.com"})
	alice := user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"}))
	bob = user(2, "bob", bobCert)
	return &deltaSource{first: []*directory.Entry{alice, bob}}, cloudtest.NewMemorySink(), bob, bobCert
}

// TestDepartedUserIsShownNotRemoved: a full read without a user whose
// certificate was published gives a row for that user (skip, departed),
// naming the user and the recipient, counted and logged; nothing is
// removed, and every full pass shows it again until the user comes back.
// (Before: no row, no log line, and the state forgot the user silently.)
func TestDepartedUserIsShownNotRemoved(t *testing.T) {
	src, sink, bob, bobCert := departedSetup(t)
	st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	var logs bytes.Buffer
	s := newSyncer(src, sink, st)
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if rep := applyPass(t, s, true); rep.Summary.Written != 2 {
		t.Fatalf("first pass wrote %d, want 2", rep.Summary.Written)
	}
	src.first = src.first[:1] // bob leaves
	writes := len(sink.Writes())

	for pass := 1; pass <= 2; pass++ {
		logs.Reset()
		rep := applyPass(t, s, true)
		c := rowOf(testrows.Of(t, rep), bob.ID)
		if c == nil {
			t.Fatalf("pass %d: no row for the user who left; changes %v", pass, actionsOf(testrows.Of(t, rep)))
		}
		if c.Action != "skip" || c.Reason != "departed" || c.User != "bob@example.com" ||
			c.Recipient == nil || c.Recipient.ID != "bob@example.com" {
			t.Fatalf("pass %d: row %s %q user %q recipient %+v; want skip departed for bob@example.com", pass, c.Action, c.Reason, c.User, c.Recipient)
		}
		if want := []smimesync.Fingerprint{sha256.Sum256(bobCert)}; !slices.Equal(c.Published, want) {
			t.Errorf("pass %d: published %v, want %v", pass, c.Published, want)
		}
		if rep.Summary.Departed != 1 || rep.Summary.Skip != 1 || rep.Summary.Losing != 0 || rep.Summary.Depart != 0 {
			t.Errorf("pass %d: summary %+v; want 1 departed (a skip), nothing losing", pass, rep.Summary)
		}
		if l := logs.String(); !strings.Contains(l, "level=INFO msg=\"entry left the directory\" user=bob@example.com recipient=bob@example.com") {
			t.Errorf("pass %d: no info line naming the user and the recipient:\n%s", pass, l)
		}
	}
	if n := len(sink.Writes()); n != writes {
		t.Errorf("%d writes after bob left, want none", n-writes)
	}
	if got, _ := sink.Get("bob@example.com"); len(got.UserCertificate) != 1 {
		t.Errorf("bob's recipient carries %d certificates, want his 1 left in place", len(got.UserCertificate))
	}

	// He comes back: planning resumes as usual, and the row is gone.
	src.first = append(src.first, bob)
	rep := applyPass(t, s, true)
	if c := rowOf(testrows.Of(t, rep), bob.ID); c == nil || c.Action != smimesync.ActionUnchanged || rep.Summary.Departed != 0 {
		t.Fatalf("after bob came back: %v, departed %d", actionsOf(testrows.Of(t, rep)), rep.Summary.Departed)
	}
	snap, err := st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Departed) != 0 || snap.Published[bob.ID].User != "bob@example.com" {
		t.Errorf("state after the return: departed %v, bob's record %+v", snap.Departed, snap.Published[bob.ID])
	}
}

func actionsOf(cs []*smimesync.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.User+":"+string(c.Action)+":"+string(c.Reason))
	}
	return out
}

// TestRemoveDepartedTakesOnlyWhatWasPublished: with RemoveDeparted, the
// departed user's recipient loses the values smimesync published and
// keeps what someone else put there; the guard counts it; the state
// forgets the user once the write is acknowledged.
func TestRemoveDepartedTakesOnlyWhatWasPublished(t *testing.T) {
	src, sink, bob, bobCert := departedSetup(t)
	st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	s := newSyncer(src, sink, st)
	applyPass(t, s, true)
	foreign := []byte("a value someone else put there")
	sink.Seed("bob@example.com", cloud.Certificates{UserCertificate: [][]byte{bobCert, foreign}})

	src.first = src.first[:1]
	s.RemoveDeparted = true
	plan, err := s.PlanFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := rowOf(testrows.Of(t, plan), bob.ID)
	if c == nil || c.Action != smimesync.ActionDepart || !c.Writes() || c.CurrentFrom != smimesync.CurrentFromSink {
		t.Fatalf("row %v; want depart, read from the sink", actionsOf(testrows.Of(t, plan)))
	}
	if want := []smimesync.Fingerprint{sha256.Sum256(bobCert)}; !slices.Equal(c.Removes, want) {
		t.Errorf("removes %v, want only the published %v", c.Removes, want)
	}
	if plan.Summary.Losing != 1 || plan.Summary.Depart != 1 || plan.Summary.Departed != 1 {
		t.Errorf("summary %+v; want 1 losing, 1 depart, 1 departed", plan.Summary)
	}
	rep, err := s.Apply(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if c := rowOf(testrows.Of(t, rep), bob.ID); c.Outcome != smimesync.OutcomeWritten || rep.Summary.Written != 1 {
		t.Fatalf("outcome %q, written %d", c.Outcome, rep.Summary.Written)
	}
	got, _ := sink.Get("bob@example.com")
	if len(got.UserCertificate) != 1 || !bytes.Equal(got.UserCertificate[0], foreign) {
		t.Errorf("bob's recipient carries %q, want only the foreign value", got.UserCertificate)
	}
	snap, err := st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Published[bob.ID]; ok || len(snap.Departed) != 0 {
		t.Errorf("state still remembers bob: published %v, departed %v", snap.Published[bob.ID], snap.Departed)
	}
	if rep := applyPass(t, s, true); rowOf(testrows.Of(t, rep), bob.ID) != nil || len(sink.Writes()) != 3 {
		t.Errorf("the next full pass: %v, %d writes in all (want no row, 3)", actionsOf(testrows.Of(t, rep)), len(sink.Writes()))
	}
}

// TestRemoveDepartedInsideTheGuard: removals of departed users count as
// losing; a guard trip stops them, writes nothing and keeps the state;
// forced, they go through.
func TestRemoveDepartedInsideTheGuard(t *testing.T) {
	ca := newTestCA(t, "CA")
	var es []*directory.Entry
	for i, n := range []string{"alice", "bob", "carol"} {
		es = append(es, user(i+1, n, ca.issue(t, leaf{email: n + "@example.com"})))
	}
	src := &deltaSource{first: es}
	sink := cloudtest.NewMemorySink()
	st := &smimesync.MemoryState{}
	s := newSyncer(src, sink, st)
	applyPass(t, s, true)
	src.first = es[:1]
	s.RemoveDeparted = true
	s.Guard.MaxRemovals = 1
	plan, err := s.PlanFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if plan.Summary.Losing != 2 {
		t.Fatalf("losing %d, want 2", plan.Summary.Losing)
	}
	if _, err := s.Apply(context.Background(), plan); !errors.Is(err, smimesync.ErrGuardTripped) {
		t.Fatalf("Apply: %v, want the guard to stop it", err)
	}
	if n := len(sink.Writes()); n != 3 {
		t.Fatalf("%d writes, want the first pass's 3 only", n)
	}
	snap, _ := st.Load(context.Background())
	if len(snap.Published) != 3 || len(snap.Departed) != 0 {
		t.Fatalf("the guard's stop changed the state: %d published, %d departed", len(snap.Published), len(snap.Departed))
	}
	plan, err = s.PlanFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	plan.Force = true
	rep, err := s.Apply(context.Background(), plan)
	if err != nil || rep.Summary.Written != 2 {
		t.Fatalf("forced: %v, %d written", err, rep.Summary.Written)
	}
	for _, n := range []string{"bob", "carol"} {
		if got, _ := sink.Get(n + "@example.com"); got.Len() != 0 {
			t.Errorf("%s still carries %d values", n, got.Len())
		}
	}
}

// TestDepartedByDelta: a delta that reports a published user deleted
// gives the same row (the record names the user, the deletion the DN),
// and with RemoveDeparted the same removal; a deleted user with nothing
// published stays a plain "deleted" skip.
func TestDepartedByDelta(t *testing.T) {
	for _, remove := range []bool{false, true} {
		src, sink, bob, bobCert := departedSetup(t)
		never := &directory.Entry{ID: "never-published", DN: "CN=never,DC=example,DC=com", Deleted: true}
		s := newSyncer(src, sink, &smimesync.MemoryState{})
		applyPass(t, s, true)
		src.delta = []*directory.Entry{{ID: bob.ID, DN: "CN=bob,CN=Deleted Objects,DC=example,DC=com", Deleted: true}, never}
		s.RemoveDeparted = remove
		rep := applyPass(t, s, false)
		if rep.Full {
			t.Fatal("the second pass was not a delta")
		}
		c := rowOf(testrows.Of(t, rep), bob.ID)
		want := smimesync.ActionSkip
		if remove {
			want = smimesync.ActionDepart
		}
		if c == nil || c.Action != want || !c.Departed() || c.User != "bob@example.com" || !strings.Contains(c.DN, "Deleted Objects") {
			t.Fatalf("remove %v: bob's row %v (dn %q), want %s", remove, actionsOf(testrows.Of(t, rep)), c.DN, want)
		}
		if n := rowOf(testrows.Of(t, rep), never.ID); n == nil || n.Reason != smimesync.SkipDeleted {
			t.Errorf("remove %v: the never-published deletion: %v", remove, actionsOf(testrows.Of(t, rep)))
		}
		got, _ := sink.Get("bob@example.com")
		if remove == (got.Len() != 0) || !remove && !bytes.Equal(got.UserCertificate[0], bobCert) {
			t.Errorf("remove %v: bob's recipient carries %d values", remove, got.Len())
		}
		// Left in place, the record is kept: turning removal on later
		// cleans up on the next pass, a delta that brings nothing new.
		if !remove {
			src.delta = nil
			s.RemoveDeparted = true
			rep := applyPass(t, s, false)
			if c := rowOf(testrows.Of(t, rep), bob.ID); c == nil || c.Action != smimesync.ActionDepart || !c.Retried || c.Outcome != smimesync.OutcomeWritten {
				t.Fatalf("removal turned on later: %v", actionsOf(testrows.Of(t, rep)))
			}
			if got, _ := sink.Get("bob@example.com"); got.Len() != 0 {
				t.Errorf("removal turned on later: bob still carries %d values", got.Len())
			}
		}
	}
}

// TestRemoveDepartedUnreadableSink: a sink that cannot read back is
// written an empty set (what the state says was published is what goes),
// counted as losing; a recipient that is gone, or no longer carries what
// was published, is forgotten without a write.
func TestRemoveDepartedUnreadableSink(t *testing.T) {
	src, sink, bob, _ := departedSetup(t)
	s := newSyncer(src, sink, &smimesync.MemoryState{})
	applyPass(t, s, true)
	src.first = src.first[:1]
	sink.SetUnreadable(true)
	s.RemoveDeparted = true
	plan, err := s.PlanFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := rowOf(testrows.Of(t, plan), bob.ID)
	if c == nil || c.Action != smimesync.ActionDepart || c.CurrentFrom != smimesync.CurrentFromState || len(c.Removes) != 1 || plan.Summary.Losing != 1 {
		t.Fatalf("row %v from %q removes %d, losing %d", actionsOf(testrows.Of(t, plan)), c.CurrentFrom, len(c.Removes), plan.Summary.Losing)
	}
	if _, err := s.Apply(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	if w := sink.Writes(); w[len(w)-1].Addr != "bob@example.com" || w[len(w)-1].Certificates.Len() != 0 {
		t.Errorf("last write %+v, want an empty set for bob", w[len(w)-1])
	}

	// Nothing of ours left on the recipient: no write, the record goes.
	src2, sink2, bob2, _ := departedSetup(t)
	s2 := newSyncer(src2, sink2, &smimesync.MemoryState{})
	applyPass(t, s2, true)
	sink2.Seed("bob@example.com", cloud.Certificates{})
	src2.first = src2.first[:1]
	s2.RemoveDeparted = true
	rep := applyPass(t, s2, true)
	if c := rowOf(testrows.Of(t, rep), bob2.ID); c == nil || c.Reason != smimesync.SkipDeparted || !strings.Contains(c.Detail, "no longer carries") || rep.Summary.Losing != 0 {
		t.Fatalf("nothing left to remove: %v, losing %d", actionsOf(testrows.Of(t, rep)), rep.Summary.Losing)
	}
	if rep := applyPass(t, s2, true); rowOf(testrows.Of(t, rep), bob2.ID) != nil {
		t.Errorf("the record was not forgotten: %v", actionsOf(testrows.Of(t, rep)))
	}
}

// TestDepartedRecipientTakenOver: when the departed user's recipient now
// belongs to an entry still in the directory, nothing is removed from it
// and the departed record is forgotten: the new owner's own plan decides.
func TestDepartedRecipientTakenOver(t *testing.T) {
	src, sink, bob, _ := departedSetup(t)
	s := newSyncer(src, sink, &smimesync.MemoryState{})
	applyPass(t, s, true)
	ca := newTestCA(t, "CA2")
	heir := user(9, "heir", ca.issue(t, leaf{email: "bob@example.com"}))
	heir.Mail = "bob@example.com"
	src.first = []*directory.Entry{src.first[0], heir}
	s.RemoveDeparted = true
	rep := applyPass(t, s, true)
	c := rowOf(testrows.Of(t, rep), bob.ID)
	if c == nil || c.Action != smimesync.ActionSkip || c.Reason != smimesync.SkipDeparted || !strings.Contains(c.Detail, "belongs to") {
		t.Fatalf("bob's row: %v", actionsOf(testrows.Of(t, rep)))
	}
	if h := rowOf(testrows.Of(t, rep), heir.ID); h == nil || h.Action != smimesync.ActionReplace || h.Outcome != smimesync.OutcomeWritten {
		t.Fatalf("the heir's row: %v", actionsOf(testrows.Of(t, rep)))
	}
	if rep := applyPass(t, s, true); rowOf(testrows.Of(t, rep), bob.ID) != nil {
		t.Errorf("bob's record was kept: %v", actionsOf(testrows.Of(t, rep)))
	}
}

// TestDepartedRemovalJournalled: the removal's record reaches the
// journal as it is acknowledged, so that a crash before the state is
// saved does not bring the departed entry back; a state written before
// the record named its user still loads, and the row names the entry by
// its ID.
func TestDepartedRemovalJournalled(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	st := smimesync.FileState(path)
	old := `{"version":1,"published":{"u1":{"recipient":"bob@example.com","userCertificate":["` +
		strings.Repeat("ab", 32) + `"],"at":"2024-01-02T03:04:05Z"}}}`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx); err != nil {
		t.Fatalf("a state written before the names existed: %v", err)
	}
	s := newSyncer(&deltaSource{}, cloudtest.NewMemorySink(), st)
	plan, err := s.PlanFull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := rowOf(testrows.Of(t, plan), "u1"); c == nil || c.User != "u1" || c.Recipient.Name != "bob@example.com" || c.Reason != smimesync.SkipDeparted {
		t.Fatalf("row of an old record: %v", actionsOf(testrows.Of(t, plan)))
	}
	if err := st.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Record(ctx, "u1", smimesync.Published{}); err != nil {
		t.Fatal(err)
	}
	// A crash here: the snapshot still has u1, the journal says it went.
	snap, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Published["u1"]; ok {
		t.Errorf("the journalled removal was not replayed: %+v", snap.Published)
	}
	b, _ := json.Marshal(snap)
	if strings.Contains(string(b), "departed") {
		t.Errorf("an empty departed member is written: %s", b)
	}
}

// failingCurrent fails Current for one address.
type failingCurrent struct {
	*cloudtest.MemorySink
	addr string
}

func (f *failingCurrent) Current(ctx context.Context, r *cloud.Recipient) (cloud.Certificates, error) {
	if r.ID == f.addr {
		return cloud.Certificates{}, errors.New("HTTP 500 from the service")
	}
	return f.MemorySink.Current(ctx, r)
}

// TestRemoveDepartedReadFails: a departed user's recipient that cannot be
// read is a failed change (named in the errors, the record kept); the
// next pass removes the values.
func TestRemoveDepartedReadFails(t *testing.T) {
	src, mem, bob, _ := departedSetup(t)
	sink := &failingCurrent{MemorySink: mem}
	s := newSyncer(src, sink, &smimesync.MemoryState{})
	applyPass(t, s, true)
	src.first = src.first[:1]
	s.RemoveDeparted = true
	sink.addr = "bob@example.com"
	plan, err := s.PlanFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Apply(context.Background(), plan)
	if !errors.Is(err, smimesync.ErrChangesFailed) {
		t.Fatalf("Run: %v, want ErrChangesFailed", err)
	}
	c := rowOf(testrows.Of(t, rep), bob.ID)
	if c == nil || c.Reason != smimesync.SkipDeparted || c.Outcome != smimesync.OutcomeFailed || !strings.Contains(c.Error, "HTTP 500") ||
		rep.Summary.Failed != 1 || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "bob@example.com") {
		t.Fatalf("row %+v, summary %+v, errors %q", c, rep.Summary, rep.Errors)
	}
	sink.addr = ""
	rep = applyPass(t, s, false)
	if c := rowOf(testrows.Of(t, rep), bob.ID); c == nil || c.Action != smimesync.ActionDepart || c.Outcome != smimesync.OutcomeWritten {
		t.Fatalf("the next pass: %v", actionsOf(testrows.Of(t, rep)))
	}
	if got, _ := mem.Get("bob@example.com"); got.Len() != 0 {
		t.Errorf("bob still carries %d values", got.Len())
	}
}
