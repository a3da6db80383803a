package smimesync_test

import (
	"context"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// lookupSink counts the lookups (Find and Current) per address.
type lookupSink struct {
	cloud.Sink
	mu      sync.Mutex
	lookups map[string]int
}

func newLookupSink(s cloud.Sink) *lookupSink {
	return &lookupSink{Sink: s, lookups: map[string]int{}}
}

func (c *lookupSink) Find(ctx context.Context, e *directory.Entry) (*cloud.Recipient, error) {
	c.count(e.Mail)
	return c.Sink.Find(ctx, e)
}

func (c *lookupSink) Current(ctx context.Context, r *cloud.Recipient) (cloud.Certificates, error) {
	c.count(r.ID)
	return c.Sink.Current(ctx, r)
}

func (c *lookupSink) count(addr string) {
	c.mu.Lock()
	c.lookups[strings.ToLower(addr)]++
	c.mu.Unlock()
}

// take returns the lookups counted since the last take.
func (c *lookupSink) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.lookups
	c.lookups = map[string]int{}
	return m
}

// memoRig is a directory of alice and bob synced to a memory sink through
// a counting sink, with a clock the test moves and a Check hook that
// counts the certificates judged per address.
type memoRig struct {
	ca     *testCA
	src    *directory.LDIFFile
	mem    *cloudtest.MemorySink
	sink   *lookupSink
	now    time.Time
	mu     sync.Mutex
	judged map[string]int
	users  []*directory.Entry
	syncer *smimesync.Syncer
}

func newMemoRig(t *testing.T, st smimesync.State, alice ...[]byte) *memoRig {
	t.Helper()
	r := &memoRig{ca: newTestCA(t, "CA"), mem: cloudtest.NewMemorySink(), now: testNow, judged: map[string]int{}}
	if alice == nil {
		alice = [][]byte{r.ca.issue(t, leaf{email: "alice@example.com"})}
	}
	r.users = []*directory.Entry{user(1, "alice", alice...), user(2, "bob", r.ca.issue(t, leaf{email: "bob@example.com", key: 1}))}
	r.src = writeLDIF(t, r.users...)
	r.sink = newLookupSink(r.mem)
	r.syncer = &smimesync.Syncer{Source: r.src, Sink: r.sink, State: st, Now: r.clock, Policy: r.policy(), PolicyVersion: "rules v1"}
	return r
}

func (r *memoRig) clock() time.Time { return r.now }

// policy is the rig's policy: its Check hook counts, and drops nothing.
func (r *memoRig) policy() *smimesync.Policy {
	return &smimesync.Policy{Now: r.clock, Check: func(_ context.Context, c *smimesync.Certificate, e *directory.Entry) []smimesync.Reason {
		r.mu.Lock()
		r.judged[e.Mail]++
		r.mu.Unlock()
		return nil
	}}
}

// rewrite writes the directory again (after a test changed r.users).
func (r *memoRig) rewrite(t *testing.T) {
	t.Helper()
	r.src.Path = writeLDIF(t, r.users...).Path
}

// pass runs a full pass and returns its report, the lookups and the
// certificates judged per address.
func (r *memoRig) pass(t *testing.T) (*smimesync.Report, map[string]int, map[string]int) {
	t.Helper()
	plan, err := r.syncer.PlanFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.syncer.Apply(context.Background(), plan)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	r.mu.Lock()
	judged := r.judged
	r.judged = map[string]int{}
	r.mu.Unlock()
	return rep, r.sink.take(), judged
}

// memoRow returns the row of the rig's user of this mail in rep, or nil
// when rep only counted the entry, unchanged on its memo (Plan.Unlisted).
func memoRow(t *testing.T, rep *smimesync.Report, mail string) *smimesync.Change {
	t.Helper()
	for _, c := range testrows.Of(t, rep) {
		if c.User == mail {
			return c
		}
	}
	for i, name := range []string{"alice", "bob"} {
		if u := user(i+1, name); u.Mail == mail && rep.Unlisted("", u.ID) {
			return nil
		}
	}
	t.Fatalf("no row for %s, and not unlisted", mail)
	return nil
}

// settle runs the first pass (both written) and a second one, which must
// take both from their memos: neither judged nor looked up.
func (r *memoRig) settle(t *testing.T) {
	t.Helper()
	rep, lookups, judged := r.pass(t)
	if rep.Summary.Written != 2 || lookups["alice@example.com"] == 0 || judged["alice@example.com"] == 0 {
		t.Fatalf("first pass: %+v, lookups %v, judged %v", rep.Summary, lookups, judged)
	}
	rep, lookups, judged = r.pass(t)
	if rep.Summary.Unchanged != 2 || rep.Summary.Memoized != 2 || len(lookups) != 0 || len(judged) != 0 {
		t.Fatalf("unchanged pass: %+v, lookups %v, judged %v: want both memoized, no lookup, nothing judged", rep.Summary, lookups, judged)
	}
	for _, mail := range []string{"alice@example.com", "bob@example.com"} {
		if c := memoRow(t, rep, mail); c != nil {
			t.Errorf("unchanged pass, %s: a row %+v, want the entry only counted (Plan.Unlisted)", mail, c)
		}
	}
	if len(testrows.Of(t, rep)) != 0 || rep.Summary.Entries != 2 {
		t.Errorf("unchanged pass: %d rows, %d entries; want no row, 2 entries", len(testrows.Of(t, rep)), rep.Summary.Entries)
	}
}

func TestMemoSkipsUnchangedEntries(t *testing.T) {
	t.Run("MemoryState", func(t *testing.T) {
		r := newMemoRig(t, &smimesync.MemoryState{})
		r.settle(t)
		if rep, _, _ := r.pass(t); rep.Summary.Memoized != 2 {
			t.Errorf("third pass: %+v", rep.Summary)
		}
	})
	t.Run("BoltState, reopened", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		r := newMemoRig(t, &smimesync.BoltState{Path: path})
		r.settle(t)
		// Another process: the memos come from the store's file.
		r.syncer.State = &smimesync.BoltState{Path: path}
		rep, lookups, judged := r.pass(t)
		if rep.Summary.Memoized != 2 || len(lookups) != 0 || len(judged) != 0 {
			t.Errorf("pass with the store reopened: %+v, lookups %v, judged %v", rep.Summary, lookups, judged)
		}
	})
}

func TestMemoReevaluates(t *testing.T) {
	const alice, bob = "alice@example.com", "bob@example.com"
	for _, tt := range []struct {
		name string
		// alice's certificates (nil: one valid around testNow)
		alice func(r *memoRig, t *testing.T) [][]byte
		// change is what happens between the memoized pass and the next
		change func(r *memoRig, t *testing.T)
		// again are the entries judged and looked up again; action is
		// alice's row then.
		again  []string
		action smimesync.Action
	}{{
		name: "a changed value",
		change: func(r *memoRig, t *testing.T) {
			r.users[0].UserCertificate = append(r.users[0].UserCertificate, r.ca.issue(t, leaf{email: alice, key: 2}))
			r.rewrite(t)
		},
		again: []string{alice}, action: smimesync.ActionReplace,
	}, {
		name: "a changed attribute the policy does not judge",
		change: func(r *memoRig, t *testing.T) {
			r.users[0].ProxyAddresses = []string{"smtp:al@example.com"}
			r.rewrite(t)
		},
		again: []string{alice}, action: smimesync.ActionUnchanged,
	}, {
		name: "a changed policy",
		change: func(r *memoRig, t *testing.T) {
			p := r.policy()
			p.RequireEncryption = true
			r.syncer.Policy = p
		},
		again: []string{alice, bob}, action: smimesync.ActionUnchanged,
	}, {
		name:   "a changed PolicyVersion",
		change: func(r *memoRig, t *testing.T) { r.syncer.PolicyVersion = "rules v2" },
		again:  []string{alice, bob}, action: smimesync.ActionUnchanged,
	}, {
		name:   "a changed prune setting",
		change: func(r *memoRig, t *testing.T) { r.syncer.Prune.Reasons = []smimesync.Reason{smimesync.ReasonExpired} },
		again:  []string{alice, bob}, action: smimesync.ActionUnchanged,
	}, {
		name: "a certificate that expired",
		alice: func(r *memoRig, t *testing.T) [][]byte {
			return [][]byte{r.ca.issue(t, leaf{email: alice, notAfter: testNow.Add(2 * time.Hour)})}
		},
		change: func(r *memoRig, t *testing.T) { r.now = testNow.Add(3 * time.Hour) },
		again:  []string{alice}, action: smimesync.ActionRemove,
	}, {
		name: "a certificate that became valid",
		alice: func(r *memoRig, t *testing.T) [][]byte {
			return [][]byte{r.ca.issue(t, leaf{email: alice}), r.ca.issue(t, leaf{email: alice, key: 2, notBefore: testNow.Add(time.Hour)})}
		},
		change: func(r *memoRig, t *testing.T) { r.now = testNow.Add(2 * time.Hour) },
		again:  []string{alice}, action: smimesync.ActionReplace,
	}, {
		name: "Reverify elapsed, and the recipient was changed by hand",
		change: func(r *memoRig, t *testing.T) {
			r.mem.Seed(alice, cloud.Certificates{})
			r.now = testNow.Add(smimesync.DefaultReverify)
		},
		again: []string{alice, bob}, action: smimesync.ActionAdd,
	}, {
		name: "Reverify set to every pass",
		change: func(r *memoRig, t *testing.T) {
			r.mem.Seed(alice, cloud.Certificates{})
			r.syncer.Reverify = smimesync.ReverifyEveryPass
		},
		again: []string{alice, bob}, action: smimesync.ActionAdd,
	}, {
		name: "a shorter Reverify",
		change: func(r *memoRig, t *testing.T) {
			r.syncer.Reverify = time.Hour
			r.now = testNow.Add(time.Hour)
		},
		again: []string{alice, bob}, action: smimesync.ActionUnchanged,
	}, {
		name: "another sink",
		change: func(r *memoRig, t *testing.T) {
			r.syncer.Sink = identifiedSink{r.sink}
		},
		again: []string{alice, bob}, action: smimesync.ActionUnchanged,
	}} {
		t.Run(tt.name, func(t *testing.T) {
			var certs [][]byte
			if tt.alice != nil {
				// Issued by another CA than the rig's: no matter, the
				// policy does not validate chains.
				certs = tt.alice(&memoRig{ca: newTestCA(t, "CA")}, t)
			}
			r := newMemoRig(t, &smimesync.MemoryState{}, certs...)
			r.settle(t)
			tt.change(r, t)
			rep, lookups, judged := r.pass(t)
			for _, mail := range []string{alice, bob} {
				want := false
				for _, a := range tt.again {
					want = want || a == mail
				}
				c := memoRow(t, rep, mail)
				if got := lookups[mail] > 0 && c != nil && !c.Memoized; got != want {
					t.Errorf("%s looked up again: %v, want %v (row %+v)", mail, got, want, c)
				}
				if want && c != nil && len(c.Keep)+len(c.Drop) == 0 {
					t.Errorf("%s judged again, but its row has no values", mail)
				}
				if !want && judged[mail] != 0 {
					t.Errorf("%s judged again", mail)
				}
			}
			if c := memoRow(t, rep, alice); c.Action != tt.action {
				t.Errorf("alice: %s, want %s", c.Action, tt.action)
			}
			// What was judged again is memoized again.
			if r.syncer.Reverify == smimesync.ReverifyEveryPass {
				return
			}
			if rep, lookups, _ := r.pass(t); rep.Summary.Memoized != 2 || len(lookups) != 0 {
				t.Errorf("the pass after: %+v, lookups %v: want both memoized", rep.Summary, lookups)
			}
		})
	}
}

// identifiedSink is the same sink under another identity.
type identifiedSink struct{ cloud.Sink }

func (identifiedSink) Identity() string { return "another tenant" }

func TestMemoReverifySpreads(t *testing.T) {
	// Well within half of Reverify, every entry is taken on trust, even
	// when its recipient was changed by hand; by Reverify, every one was
	// looked at again.
	r := newMemoRig(t, &smimesync.MemoryState{})
	r.settle(t)
	r.mem.Seed("alice@example.com", cloud.Certificates{})
	r.now = testNow.Add(smimesync.DefaultReverify/2 - time.Minute)
	if rep, lookups, _ := r.pass(t); rep.Summary.Memoized != 2 || len(lookups) != 0 {
		t.Fatalf("before half of Reverify: %+v, lookups %v", rep.Summary, lookups)
	}
	r.now = testNow.Add(smimesync.DefaultReverify)
	rep, _, _ := r.pass(t)
	if rep.Summary.Memoized != 0 || rep.Summary.Written != 1 {
		t.Errorf("at Reverify: %+v, want every entry verified and alice written", rep.Summary)
	}
}

func TestMemoFailedWriteIsJudgedAgain(t *testing.T) {
	// alice's memo and record stand for her old value; her new one fails
	// to be written: the failure must not become her memo.
	r := newMemoRig(t, &smimesync.MemoryState{})
	r.settle(t)
	r.users[0].UserCertificate = append(r.users[0].UserCertificate, r.ca.issue(t, leaf{email: "alice@example.com", key: 2}))
	r.rewrite(t)
	r.mem.FailWrites("alice@example.com", 1, nil)
	plan, err := r.syncer.PlanFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := r.syncer.Apply(context.Background(), plan); err == nil || rep.Summary.Failed != 1 {
		t.Fatalf("the failing pass: %v, %+v: want alice's write to fail", err, rep)
	}
	r.sink.take()
	rep, lookups, _ := r.pass(t)
	if c := memoRow(t, rep, "alice@example.com"); c == nil || c.Memoized || c.Outcome != smimesync.OutcomeWritten || lookups["alice@example.com"] == 0 {
		t.Errorf("alice after a failed write: %+v, lookups %v: want judged and written again", c, lookups)
	}
	if c := memoRow(t, rep, "bob@example.com"); c != nil {
		t.Errorf("bob: %+v, want memoized, only counted", c)
	}
}

func TestMemoFailedReverifyDropsTheMemo(t *testing.T) {
	// alice's recipient was emptied by hand; verifying her finds it, and
	// the write that mends it fails: her old memo must not stand for her,
	// even when a longer Reverify would still trust it.
	r := newMemoRig(t, &smimesync.MemoryState{})
	r.settle(t)
	r.mem.Seed("alice@example.com", cloud.Certificates{})
	r.now = testNow.Add(smimesync.DefaultReverify)
	r.mem.FailWrites("alice@example.com", 1, nil)
	plan, err := r.syncer.PlanFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := r.syncer.Apply(context.Background(), plan); err == nil || rep.Summary.Failed != 1 {
		t.Fatalf("the failing pass: %v, %+v: want alice's write to fail", err, rep)
	}
	r.sink.take()
	r.syncer.Reverify = 3 * smimesync.DefaultReverify
	rep, lookups, _ := r.pass(t)
	if c := memoRow(t, rep, "alice@example.com"); c == nil || c.Memoized || c.Outcome != smimesync.OutcomeWritten || lookups["alice@example.com"] == 0 {
		t.Errorf("alice after a failed write: %+v, lookups %v: want judged and written again", c, lookups)
	}
}

func TestMemoOffForAPolicyItCannotFingerprint(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(p *smimesync.Policy)
	}{
		{"a Check hook", func(p *smimesync.Policy) {}},
		{"a Revocation checker", func(p *smimesync.Policy) { p.Check = nil; p.Revocation = goodChecker{} }},
		{"Roots", func(p *smimesync.Policy) { p.Check = nil; p.Roots = x509.NewCertPool() }},
		{"Intermediates", func(p *smimesync.Policy) { p.Check = nil; p.Intermediates = x509.NewCertPool() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newMemoRig(t, &smimesync.MemoryState{})
			tt.set(r.syncer.Policy)
			r.syncer.PolicyVersion = ""
			for pass := range 2 {
				if rep, lookups, _ := r.pass(t); rep.Summary.Memoized != 0 || lookups["alice@example.com"] == 0 {
					t.Errorf("pass %d: %+v, lookups %v: want every entry judged", pass+1, rep.Summary, lookups)
				}
			}
			r.syncer.PolicyVersion = "v1"
			r.pass(t)
			if rep, _, _ := r.pass(t); rep.Summary.Memoized != 2 {
				t.Errorf("with a PolicyVersion: %+v, want both memoized", rep.Summary)
			}
		})
	}
}

// goodChecker says every certificate is good.
type goodChecker struct{}

func (goodChecker) Check(context.Context, *x509.Certificate, *x509.Certificate) (smimesync.RevocationStatus, error) {
	return smimesync.RevocationGood, nil
}

func TestMemoCrashBeforeSaveDoesNotSkip(t *testing.T) {
	// The writes are acknowledged and recorded, and the process dies
	// before the state is saved: no memo may stand for them.
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	r := newMemoRig(t, boltNoSave{st})
	plan, err := r.syncer.PlanFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.syncer.Apply(context.Background(), plan); err == nil {
		t.Fatal("the dying pass succeeded")
	}
	for _, e := range r.users {
		if m, ok, err := st.LookupMemo(context.Background(), e.ID); err != nil || ok {
			t.Fatalf("the memo of %s after the crash: %+v, %v, %v", e.ID, m, ok, err)
		}
	}
	r.sink.take()
	r.syncer.State = st
	rep, lookups, _ := r.pass(t)
	if rep.Summary.Memoized != 0 || lookups["alice@example.com"] == 0 || lookups["bob@example.com"] == 0 {
		t.Errorf("the pass after the crash: %+v, lookups %v: want every entry looked up", rep.Summary, lookups)
	}
}

func TestMemoRefusesNegativeReverify(t *testing.T) {
	r := newMemoRig(t, &smimesync.MemoryState{})
	r.syncer.Reverify = -2 * time.Hour
	if _, err := r.syncer.Plan(context.Background()); !errors.Is(err, smimesync.ErrInvalidConfig) || !strings.Contains(err.Error(), "Reverify") {
		t.Errorf("Plan with Reverify -2h: %v", err)
	}
}

func TestMemoSettledSkips(t *testing.T) {
	const bob = "bob@example.com"
	for _, tt := range []struct {
		name   string
		set    func(r *memoRig, t *testing.T)
		reason smimesync.SkipReason
		detail string
	}{{
		name:   "a read-only recipient",
		set:    func(r *memoRig, t *testing.T) { r.mem.SetReadOnly(bob, "synced from on-premises") },
		reason: smimesync.SkipReadOnly, detail: "synced from on-premises",
	}, {
		name: "a set that cannot be read, and nothing to publish",
		set: func(r *memoRig, t *testing.T) {
			r.mem.SetUnreadable(true)
			r.users[1].UserCertificate = nil
			r.rewrite(t)
		},
		reason: smimesync.SkipCurrentUnknown,
	}} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			r := newMemoRig(t, &smimesync.BoltState{Path: path})
			tt.set(r, t)
			rep, lookups, _ := r.pass(t)
			if c := memoRow(t, rep, bob); c.Action != smimesync.ActionSkip || c.Reason != tt.reason || lookups[bob] == 0 {
				t.Fatalf("first pass, bob: %+v, lookups %v", c, lookups)
			}
			r.syncer.State = &smimesync.BoltState{Path: path}
			rep, lookups, judged := r.pass(t)
			c := memoRow(t, rep, bob)
			if !c.Memoized || c.Action != smimesync.ActionSkip || c.Reason != tt.reason || c.Detail != tt.detail || lookups[bob] != 0 || judged[bob] != 0 {
				t.Errorf("second pass, bob: %+v, lookups %v, judged %v: want the same skip, memoized", c, lookups, judged)
			}
			if c.Recipient == nil || c.Recipient.ID != bob || rep.Summary.Skip != 1 || rep.Summary.Memoized != 2 {
				t.Errorf("second pass: recipient %+v, summary %+v", c.Recipient, rep.Summary)
			}
			// What only the recipient could change is looked at again
			// within Reverify.
			r.mem.SetReadOnly(bob, "")
			r.mem.SetUnreadable(false)
			r.now = testNow.Add(smimesync.DefaultReverify)
			rep, lookups, _ = r.pass(t)
			if c := memoRow(t, rep, bob); c.Memoized || c.Action == smimesync.ActionSkip || lookups[bob] == 0 {
				t.Errorf("after Reverify, bob: %+v, lookups %v: want judged again and not skipped", c, lookups)
			}
		})
	}
}

func TestMemoKeepsTheSummaryCounts(t *testing.T) {
	// A memoized row counts its values as the row that judged it did:
	// metrics of kept and dropped values do not fall to zero on a quiet
	// pass.
	for _, st := range []func(t *testing.T) smimesync.State{
		func(*testing.T) smimesync.State { return &smimesync.MemoryState{} },
		func(t *testing.T) smimesync.State {
			return &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
		},
	} {
		r := newMemoRig(t, st(t))
		r.users[1].UserCertificate = append(r.users[1].UserCertificate,
			r.ca.issue(t, leaf{email: "bob@example.com", key: 2, notAfter: testNow.Add(-time.Hour)}),
			r.ca.issue(t, leaf{email: "carol@example.com", key: 3}))
		r.rewrite(t)
		first, _, _ := r.pass(t)
		second, lookups, _ := r.pass(t)
		if second.Summary.Memoized != 2 || len(lookups) != 0 {
			t.Fatalf("second pass: %+v, lookups %v", second.Summary, lookups)
		}
		f, s := first.Summary, second.Summary
		if f.KeptValues != 2 || f.DroppedValues != 2 || s.KeptValues != f.KeptValues || s.DroppedValues != f.DroppedValues ||
			len(s.Dropped) != 2 || s.Dropped[smimesync.ReasonExpired] != 1 || s.Dropped[smimesync.ReasonNoMatchingAddress] != 1 {
			t.Errorf("%T: counts of the judged pass %d kept, %d dropped %v; of the memoized one %d, %d, %v",
				r.syncer.State, f.KeptValues, f.DroppedValues, f.Dropped, s.KeptValues, s.DroppedValues, s.Dropped)
		}
	}
}
