package report

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// legacyMerge is the merge of the JSON report (Sink.merge at 58dc5b9), for
// reports made by hand (no unlisted entries): the store must merge a pass
// as it did.
func legacyMerge(s *Sink, command string, rep *smimesync.Report, passErr error, now time.Time) {
	key := func(e *Entry) string { return e.Source + "\x00" + e.ID }
	s.LastPass = Pass{Command: command, Finished: now}
	if passErr != nil {
		s.LastPass.Error = passErr.Error()
	}
	if rep == nil {
		return
	}
	s.LastPass.Full = rep.Full
	s.LastPass.Started = rep.Started
	s.LastPass.Finished = cmp.Or(rep.Finished, now)
	s.LastPass.Summary = rep.Summary
	s.LastPass.CookieAdvanced = rep.CookieAdvanced
	s.LastPass.Errors = rep.Errors
	if passErr == nil {
		s.LastGood = s.LastPass.Finished
	}
	if fullPassDone(rep, passErr) {
		s.LastFull = s.LastPass.Finished
	}
	byKey := make(map[string]*Entry, len(s.Entries))
	unlisted := 0
	for _, e := range s.Entries {
		switch {
		case rep.Unlisted(e.Source, e.ID):
			e.Seen = s.LastPass.Finished
			byKey[key(e)] = e
			unlisted++
		case !rep.Full:
			byKey[key(e)] = e
		}
	}
	if rep.Full {
		s.Complete = unlisted == rep.UnlistedCount()
	}
	earlier := map[string]*Entry{}
	for _, p := range s.Entries {
		earlier[key(p)] = p
	}
	for c, err := range rep.Rows() {
		if err != nil {
			s.LastPass.Errors = append(s.LastPass.Errors, "reading the pass's rows: "+err.Error())
			for _, e := range s.Entries {
				if _, ok := byKey[key(e)]; !ok {
					byKey[key(e)] = e
				}
			}
			break
		}
		e := &Entry{
			ID: c.ID, User: c.User, DN: c.DN, Source: c.Source,
			Action: c.Action, Reason: c.Reason, Detail: c.Detail, Outcome: c.Outcome, Error: c.Error,
			Keep: c.Keep, Drop: c.Drop, Seen: s.LastPass.Finished,
		}
		if c.Memoized {
			if p, ok := earlier[key(e)]; ok && !p.Unjudged {
				e.Keep, e.Drop = p.Keep, p.Drop
			} else {
				e.Unjudged = true
			}
		}
		if c.Recipient != nil {
			e.Recipient = cmp.Or(c.Recipient.Name, c.Recipient.ID)
		}
		if c.Action == smimesync.ActionSkip && c.Reason == smimesync.SkipDeleted {
			delete(byKey, key(e))
			continue
		}
		byKey[key(e)] = e
	}
	s.Entries = slices.SortedFunc(maps.Values(byKey), func(a, b *Entry) int { return compareRefs(a.ref(), b.ref()) })
}

// TestStoreMergesAsTheJSONReportDid: random passes made by hand (full and
// delta, memoized rows, deletions, failed, guard-tripped, dry runs, two
// sources sharing IDs, two sinks), merged into a store and by the JSON
// report's merge, leave the same report.
func TestStoreMergesAsTheJSONReportDid(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	st, err := Open(filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*Sink{"a": {Sink: "a", Entries: []*Entry{}}, "b": {Sink: "b", Entries: []*Entry{}}}
	at := reportNow
	actions := []smimesync.Action{smimesync.ActionAdd, smimesync.ActionReplace, smimesync.ActionUnchanged, smimesync.ActionSkip, smimesync.ActionRemove}
	for pass := range 300 {
		at = at.Add(time.Hour)
		sink := []string{"a", "b"}[rng.IntN(2)]
		rep := &smimesync.Report{Plan: smimesync.Plan{Full: rng.IntN(3) == 0}, DryRun: rng.IntN(10) == 0}
		used := map[string]bool{}
		for range rng.IntN(12) {
			id, src := fmt.Sprint(rng.IntN(15)), []string{"ad", "ldap"}[rng.IntN(2)]
			if used[src+id] {
				continue
			}
			used[src+id] = true
			c := change(id, actions[rng.IntN(len(actions))], smimesync.OutcomeWritten)
			c.Source = src
			for range rng.IntN(3) {
				c.Keep = append(c.Keep, smimesync.Value{Attribute: "userCertificate", NotAfter: at.Add(time.Duration(rng.IntN(100)) * 24 * time.Hour)})
			}
			if rng.IntN(3) == 0 {
				c.Drop = append(c.Drop, smimesync.Value{Attribute: "userCertificate", Reasons: []smimesync.Reason{smimesync.ReasonExpired}})
			}
			switch rng.IntN(6) {
			case 0:
				c.Action, c.Reason = smimesync.ActionSkip, smimesync.SkipDeleted
			case 1:
				c.Memoized, c.Action = true, smimesync.ActionUnchanged
			}
			rep.Changes = append(rep.Changes, c)
		}
		slices.SortFunc(rep.Changes, func(a, b *smimesync.Change) int {
			return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Source, b.Source))
		})
		var passErr error
		switch rng.IntN(6) {
		case 0:
			passErr = errors.New("boom")
		case 1:
			passErr = smimesync.ErrGuardTripped
		case 2:
			rep = nil
			passErr = errors.New("planning failed")
		}
		if err := st.Record(sink, "run", rep, passErr, at); err != nil {
			t.Fatal(err)
		}
		if rep == nil || !rep.DryRun {
			legacyMerge(want[sink], "run", rep, passErr, at)
		}
		got, err := st.Load()
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got.Sinks {
			w := want[g.Sink]
			if diff := gocmp.Diff(w, g, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("pass %d (sink %s, full %v, err %v): the store differs from the JSON report's merge (-JSON +store):\n%s",
					pass, sink, rep != nil && rep.Full, passErr, diff)
			}
		}
	}
}

// TestStoreMergesSyncerPassesAsTheJSONReportDid: random passes of a
// Syncer (full and delta reads of a changing scope, entries unlisted on
// their memos, users with and without a recipient), merged into a store
// and by the JSON report's merge, leave the same report.
func TestStoreMergesSyncerPassesAsTheJSONReportDid(t *testing.T) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(9, 9))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	sink := cloudtest.NewMemorySink()
	for i := range 20 {
		if i%3 != 0 {
			sink.Seed(fmt.Sprintf("u%d@example.com", i), cloud.Certificates{})
		}
	}
	src := &scopeSource{}
	sy := &smimesync.Syncer{Source: src, Sink: sink, State: &smimesync.MemoryState{},
		Now: func() time.Time { return now }, Policy: &smimesync.Policy{Now: func() time.Time { return now }}, PolicyVersion: "v1"}
	st, err := Open(filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Sink{Sink: "x", Entries: []*Entry{}}
	for pass := range 120 {
		now = now.Add(time.Hour)
		src.ids = src.ids[:0]
		for i := range 20 {
			if rng.IntN(5) != 0 {
				src.ids = append(src.ids, i)
			}
		}
		src.full = rng.IntN(3) == 0
		plan, err := sy.Plan(ctx)
		if src.full {
			plan, err = sy.PlanFull(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		rep, err := sy.Apply(ctx, plan)
		if err != nil && rep == nil {
			t.Fatal(err)
		}
		if err := st.Record("x", "run", rep, err, now); err != nil {
			t.Fatal(err)
		}
		legacyMerge(want, "run", rep, err, now)
		got, err := st.Load()
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff([]*Sink{want}, got.Sinks, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("pass %d (full %v, %d unlisted): the store differs from the JSON report's merge (-JSON +store):\n%s", pass, rep.Full, rep.UnlistedCount(), diff)
		}
	}
}
