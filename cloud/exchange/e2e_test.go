package exchange_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

var update = flag.Bool("update", false, "regenerate testdata/e2e*.ldif")

// The end-to-end tenant: what the LDIF files describe and the emulator
// holds. Certificates are valid 2025–2045 (one of alice's expired in 2025);
// the checked-in fixture (testdata/e2e*.ldif) has that validity fixed, so
// the policy judges it at the fixture's own time, policyNow, never at
// today's date or the test clock (internal/testclock): every Policy of
// these tests and of the bench takes policyNow.
var (
	policyNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	e2eSeed   = []exchangetest.Recipient{
		{Guid: "e2e00000-0000-0000-0000-000000000001", PrimarySmtpAddress: "alice@contoso.com"},
		{Guid: "e2e00000-0000-0000-0000-000000000002", PrimarySmtpAddress: "bob@contoso.com", RecipientTypeDetails: "MailUser"},
		{Guid: "e2e00000-0000-0000-0000-000000000003", PrimarySmtpAddress: "carol@partner.example", RecipientTypeDetails: "MailContact"},
		{Guid: "e2e00000-0000-0000-0000-000000000004", PrimarySmtpAddress: "dave@contoso.com", IsDirSynced: true},
		{Guid: "e2e00000-0000-0000-0000-000000000006", PrimarySmtpAddress: "frank@contoso.com"},
	}
)

const (
	e2eLDIF        = "testdata/e2e.ldif"
	e2eRemovedLDIF = "testdata/e2e-removed.ldif"
)

// writeGolden regenerates the LDIF files (go test -run TestEndToEnd -update).
func writeGolden(t *testing.T) {
	p := newPKI(t)
	valid := func(email string, serial int64) []byte {
		return p.issue(t, email, serial, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	expired := p.issue(t, "alice@contoso.com", 100, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	entries := []*directory.Entry{
		{ID: "a1c0ffee-0000-4000-8000-000000000001", DN: "CN=Alice,OU=Staff,DC=contoso,DC=com", UserPrincipalName: "alice@contoso.com", Mail: "alice@contoso.com",
			UserCertificate: [][]byte{valid("alice@contoso.com", 101), expired}},
		{ID: "a1c0ffee-0000-4000-8000-000000000002", DN: "CN=Bob,OU=Staff,DC=contoso,DC=com", UserPrincipalName: "bob@contoso.com", ProxyAddresses: []string{"SMTP:bob@contoso.com"},
			UserCertificate: [][]byte{valid("bob@contoso.com", 102)}},
		{ID: "a1c0ffee-0000-4000-8000-000000000003", DN: "CN=Carol,OU=Partners,DC=contoso,DC=com", Mail: "carol@partner.example",
			UserCertificate: [][]byte{valid("carol@partner.example", 103)}},
		{ID: "a1c0ffee-0000-4000-8000-000000000004", DN: "CN=Dave,OU=Synced,DC=contoso,DC=com", Mail: "dave@contoso.com",
			UserCertificate: [][]byte{valid("dave@contoso.com", 104)}},
		{ID: "a1c0ffee-0000-4000-8000-000000000005", DN: "CN=Erin,OU=Staff,DC=contoso,DC=com", Mail: "erin@contoso.com",
			UserCertificate: [][]byte{valid("erin@contoso.com", 105)}},
		{ID: "a1c0ffee-0000-4000-8000-000000000006", DN: "CN=Frank,OU=Staff,DC=contoso,DC=com", Mail: "frank@contoso.com", ProxyAddresses: []string{"SMTP:frank@contoso.com", "smtp:f.jones@contoso.com"},
			UserCertificate: [][]byte{valid("frank@contoso.com", 106)}},
	}
	write := func(path string, es []*directory.Entry) {
		var buf bytes.Buffer
		if err := directory.WriteLDIF(&buf, es...); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(e2eLDIF, entries)
	// The same directory after alice's and frank's certificates were removed.
	removed := make([]*directory.Entry, len(entries))
	for i, e := range entries {
		c := *e
		if i == 0 || i == 5 {
			c.UserCertificate = nil
		}
		removed[i] = &c
	}
	write(e2eRemovedLDIF, removed)
}

// syncer returns a Syncer reading path and writing to e's sink.
func (e *env) syncer(path string, state smimesync.State) *smimesync.Syncer {
	return &smimesync.Syncer{
		Source: directory.LDIFFile{Path: path},
		Sink:   e.sink,
		Policy: &smimesync.Policy{Now: func() time.Time { return policyNow }},
		State:  state,
	}
}

// ackSink counts the writes its Sink acknowledged.
type ackSink struct {
	cloud.Sink
	acked atomic.Int32
}

func (a *ackSink) Write(ctx context.Context, r *cloud.Recipient, c cloud.Certificates) error {
	err := a.Sink.Write(ctx, r, c)
	if err == nil {
		a.acked.Add(1)
	}
	return err
}

// changeOf returns the change of the entry whose user name contains who.
func changeOf(t *testing.T, changes []*smimesync.Change, who string) *smimesync.Change {
	t.Helper()
	for _, c := range changes {
		if strings.Contains(strings.ToLower(c.User+" "+c.DN), who) {
			return c
		}
	}
	t.Fatalf("no change for %s", who)
	return nil
}

// checkTenant asserts that every recipient published in st carries exactly
// the fingerprints st says.
func checkTenant(t *testing.T, e *env, st smimesync.State) {
	t.Helper()
	snap, err := st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for id, p := range snap.Published {
		r, ok := e.exo.Recipient(p.Recipient)
		if !ok {
			t.Errorf("state names recipient %s for %s, which does not exist", p.Recipient, id)
			continue
		}
		var got []smimesync.Fingerprint
		for _, v := range r.UserCertificate {
			got = append(got, sha256.Sum256(v))
		}
		if len(got) != len(p.UserCertificate) {
			t.Errorf("%s: service holds %d certificates, state says %d", r.PrimarySmtpAddress, len(got), len(p.UserCertificate))
			continue
		}
		for i := range got {
			if got[i] != p.UserCertificate[i] {
				t.Errorf("%s: certificate %d differs from the state's", r.PrimarySmtpAddress, i)
			}
		}
	}
}

func TestEndToEnd(t *testing.T) {
	if *update {
		writeGolden(t)
	}
	newE2E := func(t *testing.T, cfg exchangetest.Config, mod ...func(*exchange.Config)) *env {
		e := newEnv(t, cfg, func(c *exchange.Config) {
			for _, m := range mod {
				m(c)
			}
		})
		e.exo.Add(e2eSeed...)
		return e
	}

	t.Run("first run writes what the policy keeps, second writes nothing", func(t *testing.T) {
		e := newE2E(t, exchangetest.Config{})
		st := &smimesync.MemoryState{}
		rep, err := e.syncer(e2eLDIF, st).Run(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("first run: %+v", rep.Summary)
		if rep.Summary.Written != 4 || e.exo.Requests("") == 0 {
			t.Errorf("first run wrote %d, want 4 (alice, bob, carol, frank)", rep.Summary.Written)
		}
		alice, _ := e.exo.Recipient("alice@contoso.com")
		if len(alice.UserCertificate) != 1 {
			t.Errorf("alice carries %d certificates, want 1 (the expired one dropped)", len(alice.UserCertificate))
		}
		checkTenant(t, e, st)
		if c := changeOf(t, testrows.Of(t, rep), "dave"); c.Action != smimesync.ActionSkip || c.Reason != smimesync.SkipReadOnly || !strings.Contains(c.Detail, "directory-synced") {
			t.Errorf("dave: %s %q (%q), want skip read-only with the directory-synced detail", c.Action, c.Reason, c.Detail)
		}
		if c := changeOf(t, testrows.Of(t, rep), "erin"); c.Action != smimesync.ActionSkip || c.Reason != smimesync.SkipNoRecipient {
			t.Errorf("erin: %s %q, want skip no-recipient", c.Action, c.Reason)
		}
		if d, _ := e.exo.Recipient("dave@contoso.com"); len(d.UserCertificate) != 0 || e.exo.Writes("dave@contoso.com") != 0 {
			t.Error("the synced recipient was written")
		}

		e.exo.ResetCounters()
		rep, err = e.syncer(e2eLDIF, st).Run(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("second run: %+v; requests: Get-Recipient %d, Get-Mailbox %d, Get-MailUser %d, Get-MailContact %d, Set-* %d",
			rep.Summary, e.exo.Requests("Get-Recipient"), e.exo.Requests("Get-Mailbox"), e.exo.Requests("Get-MailUser"), e.exo.Requests("Get-MailContact"),
			e.exo.Requests("Set-Mailbox")+e.exo.Requests("Set-MailUser")+e.exo.Requests("Set-MailContact"))
		if rep.Summary.Written != 0 || len(e.exo.WriteCounts()) != 0 || rep.Summary.Unchanged != 4 {
			t.Errorf("second run: written %d, unchanged %d, service writes %v; want 0, 4, none", rep.Summary.Written, rep.Summary.Unchanged, e.exo.WriteCounts())
		}
	})

	t.Run("a 429 storm ends with every write applied exactly once", func(t *testing.T) {
		// Two writes per 1 s of service time at 10x: 100 ms windows, and
		// concurrency-limit 429s on top.
		// Without Rate-Limit-* headers, so that the 429 path is what is tested
		// (pacing on them: TestRateLimitPacesBefore429).
		e := newE2E(t, exchangetest.Config{Budget: 2, Window: time.Second, TimeScale: 10, NoRateLimitHeaders: true}, func(c *exchange.Config) { c.Retry.MaxTries = 20 })
		e.exo.Fail(exchangetest.Fault{Kind: exchangetest.FaultThrottle, Times: 6, RetryAfter: 20 * time.Millisecond})
		st := &smimesync.MemoryState{}
		rep, err := e.syncer(e2eLDIF, st).Run(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		counts := e.exo.WriteCounts()
		for _, who := range []string{"alice@contoso.com", "bob@contoso.com", "carol@partner.example", "frank@contoso.com"} {
			r, _ := e.exo.Recipient(who)
			if counts[r.Guid] != 1 {
				t.Errorf("%s written %d times, want 1", who, counts[r.Guid])
			}
		}
		if e.exo.Throttled() == 0 {
			t.Error("the write budget never throttled")
		}
		t.Logf("storm: written %d, budget 429s %d, sink %+v", rep.Summary.Written, e.exo.Throttled(), e.sink.Stats())
		checkTenant(t, e, st)
	})

	t.Run("a cancelled apply leaves state consistent and the next run completes", func(t *testing.T) {
		// ReadBackNever: with confirmed first writes (read_back: auto) the
		// first three go one at a time, so a hanging write among them
		// would hold back the three acknowledgements this case waits for.
		e := newE2E(t, exchangetest.Config{}, func(c *exchange.Config) {
			c.RequestTimeout = time.Minute
			c.ReadBack = exchange.ReadBackNever
		})
		// Carol's write hangs until the run is cancelled.
		e.exo.Fail(exchangetest.Fault{Cmdlet: "Set-MailContact", Kind: exchangetest.FaultSlow, Delay: time.Minute})
		st := &smimesync.MemoryState{}
		s := e.syncer(e2eLDIF, st)
		acks := &ackSink{Sink: s.Sink}
		s.Sink = acks
		plan, err := s.Plan(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithCancel(ctx(t))
		go func() {
			// Cancel once the three other writes were acknowledged to the
			// Syncer (the emulator counts a write when it arrives, before
			// its answer is back).
			for acks.acked.Load() < 3 && c.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
		}()
		rep, err := s.Apply(c, plan)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Apply = %v, want context.Canceled", err)
		}
		if rep.CookieAdvanced {
			t.Error("cookie advanced after a cancelled apply")
		}
		snap, _ := st.Load(context.Background())
		if _, ok := snap.Published["a1c0ffee-0000-4000-8000-000000000003"]; ok {
			t.Error("carol recorded as published though her write never happened")
		}
		if len(snap.Published) != 3 {
			t.Errorf("state records %d published, want 3", len(snap.Published))
		}
		checkTenant(t, e, st)

		e.exo.ResetCounters()
		rep, err = e.syncer(e2eLDIF, st).Run(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Summary.Written != 1 || e.exo.Writes("carol@partner.example") != 1 || len(e.exo.WriteCounts()) != 1 {
			t.Errorf("next run wrote %d (service %v), want carol only", rep.Summary.Written, e.exo.WriteCounts())
		}
		checkTenant(t, e, st)
		rep, err = e.syncer(e2eLDIF, st).Run(ctx(t))
		if err != nil || rep.Summary.Written != 0 {
			t.Errorf("third run wrote %d, %v; want nothing", rep.Summary.Written, err)
		}
	})

	t.Run("removing the last certificate goes through the guard", func(t *testing.T) {
		e := newE2E(t, exchangetest.Config{})
		st := &smimesync.MemoryState{}
		if _, err := e.syncer(e2eLDIF, st).Run(ctx(t)); err != nil {
			t.Fatal(err)
		}
		e.exo.ResetCounters()
		s := e.syncer(e2eRemovedLDIF, st)
		s.Guard = smimesync.Guard{MaxRemovals: 1}
		plan, err := s.Plan(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if c := changeOf(t, testrows.Of(t, plan), "alice"); c.Action != smimesync.ActionRemove {
			t.Errorf("alice: %s, want remove", c.Action)
		}
		_, err = s.Apply(ctx(t), plan)
		var ge *smimesync.GuardError
		if !errors.As(err, &ge) || ge.Losing != 2 {
			t.Fatalf("Apply = %v, want the guard tripped by 2 removals", err)
		}
		if n := len(e.exo.WriteCounts()); n != 0 {
			t.Fatalf("%d recipients written despite the guard", n)
		}
		plan, err = s.Plan(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		plan.Force = true
		if _, err := s.Apply(ctx(t), plan); err != nil {
			t.Fatal(err)
		}
		for _, who := range []string{"alice@contoso.com", "frank@contoso.com"} {
			r, _ := e.exo.Recipient(who)
			if len(r.UserCertificate) != 0 || e.exo.Writes(who) != 1 {
				t.Errorf("%s: %d certificates after %d writes, want 0 after 1", who, len(r.UserCertificate), e.exo.Writes(who))
			}
		}
		checkTenant(t, e, st)
	})

	t.Run("a token for the wrong audience is refused", func(t *testing.T) {
		e := newE2E(t, exchangetest.Config{})
		e.tokens.SetAudience(tenant, clientID, "https://graph.microsoft.com")
		rep, err := e.syncer(e2eLDIF, &smimesync.MemoryState{}).Run(ctx(t))
		if err == nil {
			t.Fatal("run succeeded with a wrong-audience token")
		}
		if len(e.exo.WriteCounts()) != 0 {
			t.Error("something was written")
		}
		if rep == nil || len(rep.Errors) == 0 || !strings.Contains(rep.Errors[0], "not authorized") {
			t.Errorf("report errors %v, want them to say not authorized", rep)
		}
		for _, q := range e.exo.Log() {
			if q.Status != 401 {
				t.Errorf("request %s answered %d, want 401", q.Cmdlet, q.Status)
			}
		}
	})
}
