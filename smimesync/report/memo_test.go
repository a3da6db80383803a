package report

import (
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

func TestReportMergeKeepsTheWordOnMemoizedEntries(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Sink{Sink: "x"}
	alice := change("alice", smimesync.ActionAdd, smimesync.OutcomeWritten, "userCertificate")
	alice.Drop = []smimesync.Value{{Attribute: "userCertificate", Reasons: []smimesync.Reason{smimesync.ReasonExpired}}}
	s.merge("run", &smimesync.Report{Plan: smimesync.Plan{Full: true, Finished: t0, Changes: []*smimesync.Change{alice}}}, nil, t0)

	// The next full pass takes alice, and bob (whom this report never
	// saw judged), on trust from their memos.
	memo := func(id string) *smimesync.Change {
		c := change(id, smimesync.ActionUnchanged, "")
		c.Memoized = true
		return c
	}
	t1 := t0.Add(time.Hour)
	s.merge("run", &smimesync.Report{Plan: smimesync.Plan{Full: true, Finished: t1, Changes: []*smimesync.Change{memo("alice"), memo("bob")}}}, nil, t1)
	if len(s.Entries) != 2 {
		t.Fatalf("entries: %+v", s.Entries)
	}
	a, b := s.Entries[0], s.Entries[1]
	if a.ID != "alice" || a.Action != smimesync.ActionUnchanged || !a.Seen.Equal(t1) || len(a.Keep) != 1 || len(a.Drop) != 1 || a.Unjudged {
		t.Errorf("alice after a memoized pass: %+v: want the earlier keep and drop", a)
	}
	if b.ID != "bob" || !b.Unjudged || len(b.Keep) != 0 {
		t.Errorf("bob after a memoized pass: %+v: want unjudged", b)
	}
	sum := Summarize(&File{Sinks: []*Sink{s}}, "r.json", t1, 30)
	if ss := sum.Sinks[0]; len(ss.NoUsable) != 0 || len(ss.Dropped) != 1 {
		t.Errorf("summary: no usable %+v, dropped %+v: want bob not counted as having no certificate, alice's drop kept", ss.NoUsable, ss.Dropped)
	}

	// A later pass that judges bob gives its word; the one after, memoized
	// again, keeps it.
	t2 := t1.Add(time.Hour)
	s.merge("run", &smimesync.Report{Plan: smimesync.Plan{Full: true, Finished: t2, Changes: []*smimesync.Change{
		memo("alice"), change("bob", smimesync.ActionUnchanged, "", "userSMIMECertificate")}}}, nil, t2)
	t3 := t2.Add(time.Hour)
	s.merge("run", &smimesync.Report{Plan: smimesync.Plan{Full: true, Finished: t3, Changes: []*smimesync.Change{memo("alice"), memo("bob")}}}, nil, t3)
	if b := s.Entries[1]; b.Unjudged || len(b.Keep) != 1 || len(s.Entries[0].Drop) != 1 {
		t.Errorf("after two more passes: %+v, %+v", s.Entries[0], b)
	}
}
