package smimesync_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestMemoryStateViewDecodesOncePerSave: a MemoryState's view decodes the
// saved snapshot once per saved version, whatever it is asked: a lookup
// per record, every record in order, the holders of every recipient.
// A save is seen by the next read.
func TestMemoryStateViewDecodesOncePerSave(t *testing.T) {
	ctx := context.Background()
	const n = 500
	st := &smimesync.MemoryState{}
	snap := &smimesync.Snapshot{Version: smimesync.StateVersion, Published: map[string]smimesync.Published{}}
	for i := range n {
		snap.Published[fmt.Sprint("k", i)] = smimesync.Published{Recipient: fmt.Sprint("r", i%(n/2), "@example.com"), At: time.Unix(0, 0), UserCertificate: []smimesync.Fingerprint{{1}}}
	}
	if err := st.Save(ctx, snap); err != nil {
		t.Fatal(err)
	}
	v, err := st.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	before := smimesync.MemoryStateDecodes(st)
	for i := range n {
		if _, ok, err := v.Published(ctx, fmt.Sprint("k", i)); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if keys, err := v.Holders(ctx, fmt.Sprint("r", i%(n/2), "@example.com")); err != nil || len(keys) != 2 {
			t.Fatalf("Holders(r%d) = %q, %v", i%(n/2), keys, err)
		}
	}
	var seen int
	if err := v.EachPublished(ctx, nil, func(string, smimesync.Published) error { seen++; return nil }); err != nil || seen != n {
		t.Fatalf("EachPublished saw %d records, %v", seen, err)
	}
	if _, err := v.Header(ctx); err != nil {
		t.Fatal(err)
	}
	if d := smimesync.MemoryStateDecodes(st) - before; d != 1 {
		t.Errorf("%d lookups, holders and a walk through the view decoded the snapshot %d times, want 1", n, d)
	}

	// A save: the next read decodes it (once) and sees it.
	head, err := v.Header(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveChanges(ctx, head, map[string]smimesync.Published{"k0": {}, "new": {Recipient: "r1@example.com"}}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, ok, err := v.Published(ctx, "k0"); ok || err != nil {
			t.Fatalf("k0 after SaveChanges forgot it: %v, %v", ok, err)
		}
		if keys, err := v.Holders(ctx, "r1@example.com"); err != nil || !slices.Equal(keys, []string{"k1", "k251", "new"}) {
			t.Fatalf("Holders(r1) after SaveChanges = %q, %v", keys, err)
		}
	}
	if d := smimesync.MemoryStateDecodes(st) - before; d > 2 {
		t.Errorf("reads of two saved versions decoded the snapshot %d times, want 2 at most", d)
	}
}

// TestMemoryStatePassDecodesOnce: a pass over a MemoryState (a
// RecordStore, or behind Load and Save only) decodes its snapshot a few
// times, not once per entry (a memo hit looks up the entry's record).
func TestMemoryStatePassDecodesOnce(t *testing.T) {
	const n = 300
	var users []*directory.Entry
	for i := range n {
		e := user(0, fmt.Sprint("u", i))
		e.ID = fmt.Sprintf("id-%05d", i)
		users = append(users, e)
	}
	for _, whole := range []bool{false, true} {
		mem := &smimesync.MemoryState{}
		var st smimesync.State = mem
		name := "MemoryState"
		if whole {
			st, name = onlyLoadSave{mem}, "MemoryState behind Load and Save only"
		}
		s := newSyncer(writeLDIF(t, users...), cloudtest.NewMemorySink(), st)
		for pass := range 2 {
			before := smimesync.MemoryStateDecodes(mem)
			rep, err := s.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if d := smimesync.MemoryStateDecodes(mem) - before; d > 3 {
				t.Errorf("%s, pass %d of %d entries (%d memoized): %d decodings of the snapshot, want 3 at most", name, pass+1, n, rep.Summary.Memoized, d)
			}
		}
	}
}

// onlyLoadSave hides all of a State but Load and Save.
type onlyLoadSave struct{ smimesync.State }

// TestMemoryStateViewReturnsCopies: what a MemoryState's view returns is
// the caller's: changing it changes neither the saved snapshot nor the
// next read.
func TestMemoryStateViewReturnsCopies(t *testing.T) {
	ctx := context.Background()
	st := &smimesync.MemoryState{}
	if err := st.Save(ctx, sampleSnapshot()); err != nil {
		t.Fatal(err)
	}
	v, err := st.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	p, _, err := v.Published(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	p.UserCertificate[0][0] ^= 0xff
	v.EachPublished(ctx, nil, func(_ string, p smimesync.Published) error {
		p.UserSMIMECertificate = append(p.UserSMIMECertificate[:0], smimesync.Fingerprint{7})
		return nil
	})
	head, err := v.Header(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head.Pending["p"].Mail = "changed@example.com"
	head.Departed["d"].UserCertificate[0][0] ^= 0xff
	keys, err := v.Holders(ctx, "ra")
	if err != nil {
		t.Fatal(err)
	}
	keys[0] = "changed"

	want := sampleSnapshot()
	got, _, err := v.Published(ctx, "a")
	if err != nil || !slices.Equal(got.UserCertificate, want.Published["a"].UserCertificate) {
		t.Errorf("record a after its copy was changed: %+v, %v", got, err)
	}
	got, _, err = v.Published(ctx, "b")
	if err != nil || !slices.Equal(got.UserSMIMECertificate, want.Published["b"].UserSMIMECertificate) {
		t.Errorf("record b after its copy was changed: %+v, %v", got, err)
	}
	head, err = v.Header(ctx)
	if err != nil || head.Pending["p"].Mail != "p@example.com" || !slices.Equal(head.Departed["d"].UserCertificate, want.Departed["d"].UserCertificate) {
		t.Errorf("header after its copy was changed: %+v, %v", head, err)
	}
	if keys, err := v.Holders(ctx, "ra"); err != nil || !slices.Equal(keys, []string{"a"}) {
		t.Errorf("Holders(ra) after its copy was changed: %q, %v", keys, err)
	}
	loaded, err := st.Load(ctx)
	if err != nil || !slices.Equal(loaded.Published["a"].UserCertificate, want.Published["a"].UserCertificate) {
		t.Errorf("Load after a view's copy was changed: %+v, %v", loaded, err)
	}
}

// TestMemoryStateViewClosedTwice: a view is closed once; a second Close
// is an error, as for a BoltState's.
func TestMemoryStateViewClosedTwice(t *testing.T) {
	v, err := (&smimesync.MemoryState{}).View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err == nil {
		t.Error("a second Close of a MemoryState's view: nil error")
	}
}
