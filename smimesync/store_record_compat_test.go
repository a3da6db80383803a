package smimesync_test

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestBoltStateReadsJSONRecords: a store whose Published records are JSON
// (testdata/state/v1-json-records.db, saved by this package at 358456d,
// before the records' binary layout) is read whole: records, departures,
// pending entries, the recipients' index, memos; and a save that rewrites
// some of its records (in the binary layout) leaves the others readable.
func TestBoltStateReadsJSONRecords(t *testing.T) {
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join("testdata", "state", "v1-json-records.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	st := &smimesync.BoltState{Path: path}
	const alice, bob, carol = "ldif\x00id-1", "ldif\x00id-2", "ldif\x00id-3"
	for _, k := range []string{alice, bob, carol} {
		if b := smimesync.RawRecord(t, st, k); len(b) == 0 || b[0] != '{' {
			t.Fatalf("the fixture's record of %q is not JSON: %q", k, b)
		}
	}
	fp := func(s string) smimesync.Fingerprint { return sha256.Sum256([]byte(s)) }
	want := map[string]smimesync.Published{
		alice: {Recipient: "alice@example.com", UserCertificate: []smimesync.Fingerprint{fp("a1"), fp("a2")}, UserSMIMECertificate: []smimesync.Fingerprint{fp("a3")},
			At: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), User: "alice@corp.example.com", Name: "Alice Example", Kind: "UserMailbox"},
		bob:   {Recipient: "bob@example.com", At: time.Date(2025, 12, 31, 23, 0, 0, 0, time.FixedZone("", 2*3600))},
		carol: {Recipient: "alice@example.com", UserSMIMECertificate: []smimesync.Fingerprint{fp("c1")}, User: "carol@corp.example.com", Kind: "MailUser"},
	}
	check := func(when string) {
		t.Helper()
		s, err := st.Load(ctx)
		if err != nil {
			t.Fatalf("%s: Load: %v", when, err)
		}
		if len(s.Published) != len(want) {
			t.Errorf("%s: %d records, want %d", when, len(s.Published), len(want))
		}
		for k, w := range want {
			if !samePublished(s.Published[k], w) {
				t.Errorf("%s: Load's record of %q = %+v, want %+v", when, k, s.Published[k], w)
			}
		}
		if d := s.Departed["ldif\x00id-9"]; d.Recipient != "dave@example.com" || len(d.UserCertificate) != 1 || d.UserCertificate[0] != fp("d1") {
			t.Errorf("%s: departed %+v", when, s.Departed)
		}
		if e := s.Pending["ldif\x00id-5"]; e == nil || e.Mail != "erin@example.com" {
			t.Errorf("%s: pending %+v", when, s.Pending)
		}
		if string(s.Cookie) != "cookie-1" {
			t.Errorf("%s: cookie %q", when, s.Cookie)
		}
		v, err := st.View(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		for k, w := range want {
			if p, ok, err := v.Published(ctx, k); err != nil || !ok || !samePublished(p, w) {
				t.Errorf("%s: the view's record of %q = %+v, %v, %v", when, k, p, ok, err)
			}
		}
		var keys []string
		if err := v.EachPublished(ctx, nil, func(k string, p smimesync.Published) error {
			keys = append(keys, k)
			if !samePublished(p, want[k]) {
				t.Errorf("%s: EachPublished's record of %q = %+v", when, k, p)
			}
			return nil
		}); err != nil {
			t.Errorf("%s: EachPublished: %v", when, err)
		}
		if !slices.Equal(keys, []string{alice, bob, carol}) {
			t.Errorf("%s: EachPublished went through %q", when, keys)
		}
		if h, err := v.Holders(ctx, "alice@example.com"); err != nil || !slices.Equal(h, []string{alice, carol}) {
			t.Errorf("%s: holders of alice = %q, %v", when, h, err)
		}
		if m, ok, err := st.LookupMemo(ctx, alice); err != nil || !ok || m.RecipientName != "Alice Example" || m.Kept != 3 {
			t.Errorf("%s: alice's memo %+v, %v, %v", when, m, ok, err)
		}
	}
	check("as saved before the binary layout")

	// bob's record changes hands: written anew, in the binary layout.
	head, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head.Published = nil
	w := want[bob]
	w.Recipient, w.UserCertificate, w.At = "robert@example.com", []smimesync.Fingerprint{fp("b1")}, time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	want[bob] = w
	if err := st.SaveChanges(ctx, head, map[string]smimesync.Published{bob: w}); err != nil {
		t.Fatal(err)
	}
	if b := smimesync.RawRecord(t, st, bob); len(b) == 0 || b[0] == '{' {
		t.Errorf("bob's record rewritten as %q: want the binary layout", b)
	}
	if b := smimesync.RawRecord(t, st, alice); len(b) == 0 || b[0] != '{' {
		t.Errorf("alice's record, not saved again, became %q", b)
	}
	check("bob's record rewritten")
	v, err := st.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := v.Holders(ctx, "bob@example.com"); err != nil || len(h) != 0 {
		t.Errorf("holders of bob after his record moved = %q, %v", h, err)
	}
	if h, err := v.Holders(ctx, "robert@example.com"); err != nil || !slices.Equal(h, []string{bob}) {
		t.Errorf("holders of robert = %q, %v", h, err)
	}
	v.Close()

	// A whole Save rewrites every record that changed, and only those.
	s, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	check("saved whole")
}

// samePublished compares records, their times as instants.
func samePublished(a, b smimesync.Published) bool {
	return a.At.Equal(b.At) && a.Recipient == b.Recipient && a.User == b.User && a.Name == b.Name && a.Kind == b.Kind &&
		slices.Equal(a.UserCertificate, b.UserCertificate) && slices.Equal(a.UserSMIMECertificate, b.UserSMIMECertificate)
}

// TestMemoStandsOnJSONRecords: memos made over a store whose records are
// JSON (a store saved before their binary layout) still stand on them:
// the next pass over the unchanged directory takes both entries on trust;
// and a record that moved since still retires its memo.
func TestMemoStandsOnJSONRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st := &smimesync.BoltState{Path: path}
	r := newMemoRig(t, st)
	r.settle(t)
	smimesync.RewriteRecordsAsJSON(t, st)
	key := user(1, "alice").ID // one source: the key is the ID
	if b := smimesync.RawRecord(t, st, key); len(b) == 0 || b[0] != '{' {
		t.Fatalf("alice's record is %q, want JSON", b)
	}
	rep, lookups, judged := r.pass(t)
	if rep.Summary.Memoized != 2 || len(lookups) != 0 || len(judged) != 0 {
		t.Fatalf("unchanged pass over JSON records: %+v, lookups %v, judged %v; want both memoized", rep.Summary, lookups, judged)
	}

	// A write the memo did not see: alice's record now holds another
	// certificate's fingerprint (still as JSON).
	ctx := context.Background()
	head, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := head.Published[key]
	p.UserCertificate = []smimesync.Fingerprint{sha256.Sum256([]byte("another"))}
	head.Published = nil
	if err := st.SaveChanges(ctx, head, map[string]smimesync.Published{key: p}); err != nil {
		t.Fatal(err)
	}
	smimesync.RewriteRecordsAsJSON(t, st)
	rep, _, judged = r.pass(t)
	if rep.Summary.Memoized != 1 || judged["alice@example.com"] == 0 {
		t.Errorf("pass after alice's JSON record moved: %+v, judged %v; want alice judged again, bob memoized", rep.Summary, judged)
	}
}
