package graph_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud/graph"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/smimesync"
)

// The users of the end-to-end tenant; testdata/e2e.ldif holds their
// directory side.
const (
	adminValue = "X509:<PN>alice@contoso.com" // an administrator's binding, not the sink's
)

// fixturePolicy judges testdata/e2e.ldif, whose certificates gen.sh made
// with a fixed validity (fifty years from the day it ran), at a moment
// taken from the fixture itself: a year after alice.der's notBefore. The
// fixture is then valid whatever today's date or the test clock says.
func fixturePolicy(t testing.TB) *smimesync.Policy {
	t.Helper()
	der, err := os.ReadFile(filepath.Join("testdata", "alice.der"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	at := c.NotBefore.AddDate(1, 0, 0)
	return &smimesync.Policy{Now: func() time.Time { return at }}
}

func e2eUsers() []graphtest.User {
	return []graphtest.User{
		{ID: "alice", UserPrincipalName: "alice@contoso.com", Mail: "alice@contoso.com", CertificateUserIDs: []string{adminValue}},
		{ID: "carol", UserPrincipalName: "carol.c@contoso.onmicrosoft.com", Mail: "c.c@contoso.com", ProxyAddresses: []string{"SMTP:c.c@contoso.com", "smtp:carol@contoso.com"}},
		{ID: "bob", UserPrincipalName: "bob@contoso.com", Mail: "Bob@Example.org", OnPremisesImmutableID: "4AQlP4lP0xGaDAMF6CwzAQ==", OnPremisesSyncEnabled: true},
		{ID: "zed", UserPrincipalName: "zed@contoso.com"},
	}
}

func change(t *testing.T, rep *smimesync.Report, dn string) *smimesync.Change {
	t.Helper()
	for _, c := range testrows.Of(t, rep) {
		if c.DN == dn {
			return c
		}
	}
	t.Fatalf("no change for %s", dn)
	return nil
}

func holds(t *testing.T, g *graphtest.Server, id string, want ...string) {
	t.Helper()
	u, ok := g.User(id)
	if !ok {
		t.Fatalf("no user %s", id)
	}
	if !sameSet(u.CertificateUserIDs, want) {
		t.Fatalf("%s holds %q, want %q", id, u.CertificateUserIDs, want)
	}
}

// TestEndToEnd runs LDIF → Syncer → graph sink → Graph emulator: the first
// run writes what the policy keeps, a synced user is skipped with its
// reason, a second run writes nothing, and removing certificates goes
// through the mass-change guard.
func TestEndToEnd(t *testing.T) {
	e := newEnv(t, e2eUsers(), nil, nil)
	state := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	ctx := context.Background()
	syncer := func(ldif string, sink *graph.Sink) *smimesync.Syncer {
		return &smimesync.Syncer{
			Source:      directory.LDIFFile{Path: filepath.Join("testdata", ldif)},
			Sink:        sink,
			State:       state,
			Concurrency: 20,
			Policy:      fixturePolicy(t),
		}
	}

	// First run.
	rep, err := syncer("e2e.ldif", e.sink).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first run: %+v", rep.Summary)
	for dn, want := range map[string]smimesync.Outcome{
		"CN=Alice Example,OU=Staff,DC=contoso,DC=com": smimesync.OutcomeWritten,
		"CN=Carol Example,OU=Staff,DC=contoso,DC=com": smimesync.OutcomeWritten,
	} {
		if c := change(t, rep, dn); c.Outcome != want || c.CurrentFrom != smimesync.CurrentUnknown {
			t.Errorf("%s: %s/%s (current from %s), want %s", dn, c.Action, c.Outcome, c.CurrentFrom, want)
		}
	}
	bob := change(t, rep, "CN=Bob Example,OU=Staff,DC=contoso,DC=com")
	if bob.Action != smimesync.ActionSkip || bob.Reason != smimesync.SkipReadOnly || bob.Detail != graph.ReadOnlySynced || bob.Recipient == nil || bob.Recipient.ID != "bob" {
		t.Errorf("Bob: %s %q %+v, want skipped as directory-synced", bob.Action, bob.Reason, bob.Recipient)
	}
	if dave := change(t, rep, "CN=Dave Example,OU=Staff,DC=contoso,DC=com"); dave.Reason != smimesync.SkipNoRecipient {
		t.Errorf("Dave: %s %q", dave.Action, dave.Reason)
	}
	aliceV := mustValue(t, "alice.der", graph.FormatIssuerSerial)
	carolV := mustValue(t, "carol.der", graph.FormatIssuerSerial)
	holds(t, e.graph, "alice", adminValue, aliceV)
	holds(t, e.graph, "carol", carolV)
	holds(t, e.graph, "bob")
	if n := e.graph.Stats().Writes; n != 2 {
		t.Fatalf("%d writes, want 2", n)
	}

	// Second run, a new process (fresh sink): nothing to write.
	rep, err = syncer("e2e.ldif", e.newSink(t, nil)).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second run: %+v", rep.Summary)
	if rep.Summary.Unchanged != 2 || rep.Summary.Written != 0 {
		t.Errorf("second run: %+v", rep.Summary)
	}
	if n := e.graph.Stats().Writes; n != 2 {
		t.Fatalf("second run wrote: %d writes in all, want 2", n)
	}

	// The certificates are removed in the directory: the plan takes them
	// from two users, more than the guard's 1.
	// The sink manages the values of the CA it is told of: without a
	// certificate left to name it, it would keep them (the default).
	s := syncer("e2e-removed.ldif", e.newSink(t, func(c *graph.Config) {
		c.CertificateUserIDs.ManagedIssuers = []string{issuerOf(t, "alice.der")}
	}))
	s.Guard = smimesync.Guard{MaxRemovals: 1}
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Summary.Remove != 2 || plan.Summary.Losing != 2 {
		t.Fatalf("removal plan: %+v", plan.Summary)
	}
	_, err = s.Apply(ctx, plan)
	var ge *smimesync.GuardError
	if !errors.As(err, &ge) || ge.Losing != 2 {
		t.Fatalf("Apply: %v, want the guard to trip", err)
	}
	if n := e.graph.Stats().Writes; n != 2 {
		t.Fatalf("the guard let %d writes through", n-2)
	}
	plan, err = s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plan.Force = true
	rep, err = s.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Written != 2 {
		t.Fatalf("forced removal: %+v", rep.Summary)
	}
	holds(t, e.graph, "alice", adminValue) // the administrator's value stays
	holds(t, e.graph, "carol")
}

// memSource is a directory.Source over entries in memory.
type memSource []*directory.Entry

func (m memSource) Read(ctx context.Context, _ directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	for _, e := range m {
		if err := ctx.Err(); err != nil {
			return directory.Result{}, err
		}
		cp := *e
		if err := yield(&cp); err != nil {
			return directory.Result{}, err
		}
	}
	return directory.Result{Full: true}, nil
}

// population makes n directory entries, each with one fresh certificate,
// and their Entra users, each holding an older binding of the sink's
// format (so every user's certificates changed).
func population(t testing.TB, n int) (memSource, []graphtest.User) {
	p := newPKI(t)
	var src memSource
	var users []graphtest.User
	for i := range n {
		addr := fmt.Sprintf("user%05d@contoso.com", i)
		src = append(src, &directory.Entry{
			ID:                fmt.Sprintf("CN=User %05d,OU=Staff,DC=contoso,DC=com", i),
			DN:                fmt.Sprintf("CN=User %05d,OU=Staff,DC=contoso,DC=com", i),
			UserPrincipalName: addr,
			Mail:              addr,
			UserCertificate:   [][]byte{p.issue(t, addr, int64(1_000_000+i), testclock.Now().Add(-time.Hour), testclock.Now().Add(365*24*time.Hour))},
		})
		users = append(users, graphtest.User{
			ID:                 fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			UserPrincipalName:  addr,
			Mail:               addr,
			CertificateUserIDs: []string{fmt.Sprintf("X509:<I>O=Fabrikam,CN=Fabrikam Mail CA<SR>%06x", i)},
		})
	}
	return src, users
}

// TestEndToEndThrottleStorm: 300 users against a budget of 40 writes per
// emulated 150 s, the emulator's clock 1,000 times faster: the run ends
// with every write applied exactly once.
func TestEndToEndThrottleStorm(t *testing.T) {
	const n = 300
	src, users := population(t, n)
	e := newEnv(t, users, func(c *graphtest.Config) {
		c.WriteBudget = 40
		c.TimeScale = 1000
	}, nil)
	s := &smimesync.Syncer{Source: src, Sink: e.sink, Concurrency: 40, Policy: &smimesync.Policy{Now: testclock.Now}}
	rep, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st := e.graph.Stats()
	t.Logf("summary %+v; emulator %+v", rep.Summary, st)
	if rep.Summary.Written != n || st.Throttled == 0 {
		t.Fatalf("written %d (want %d), throttled %d (want some)", rep.Summary.Written, n, st.Throttled)
	}
	count := map[string]int{}
	for _, w := range e.graph.Writes() {
		count[w.UserID]++
	}
	for _, u := range users {
		if count[u.ID] != 1 {
			t.Errorf("user %s written %d times", u.UserPrincipalName, count[u.ID])
		}
	}
}

// TestEndToEndCancelledApply cancels an apply half-way: the state records
// exactly the users that were written, and the next run completes.
func TestEndToEndCancelledApply(t *testing.T) {
	const n = 200
	src, users := population(t, n)
	e := newEnv(t, users, func(c *graphtest.Config) {
		c.WriteBudget = 30
		c.TimeScale = 600 // a 0.25 s window
	}, nil)
	state := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	s := &smimesync.Syncer{Source: src, Sink: e.sink, State: state, Concurrency: 40, Policy: &smimesync.Policy{Now: testclock.Now}}
	plan, err := s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer cancel()
	rep, err := s.Apply(ctx, plan)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply: %v, want it cancelled", err)
	}
	if rep.Summary.Written == 0 || rep.Summary.Written == n {
		t.Fatalf("cancelled after %d of %d writes: adjust the budget", rep.Summary.Written, n)
	}
	t.Logf("cancelled after %d writes, %d failed", rep.Summary.Written, rep.Summary.Failed)
	// The state holds exactly the changes reported written, and each of
	// those users holds its new value.
	snap, err := state.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Published) != rep.Summary.Written || rep.CookieAdvanced {
		t.Fatalf("state has %d published, report %d written, cookie advanced %v", len(snap.Published), rep.Summary.Written, rep.CookieAdvanced)
	}
	want := map[string]string{}
	for i, entry := range src {
		v, errs := graph.Values(entry.UserCertificate, graph.FormatIssuerSerial)
		if len(errs) > 0 || len(v) != 1 {
			t.Fatal(errs)
		}
		want[users[i].ID] = v[0]
	}
	for _, c := range testrows.Of(t, rep) {
		if _, ok := snap.Published[c.ID]; ok {
			holds(t, e.graph, c.Recipient.ID, want[c.Recipient.ID])
		}
	}
	// The next run (a new process) completes.
	s2 := &smimesync.Syncer{Source: src, Sink: e.newSink(t, nil), State: state, Concurrency: 40, Policy: &smimesync.Policy{Now: testclock.Now}}
	rep, err = s2.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Written+rep.Summary.Unchanged != n || !rep.CookieAdvanced {
		t.Fatalf("second run: %+v", rep.Summary)
	}
	for _, u := range users {
		holds(t, e.graph, u.ID, want[u.ID])
	}
}

// TestEndToEndWrongAudience: the app gets tokens for Exchange, not Graph;
// Graph refuses them and nothing is written.
func TestEndToEndWrongAudience(t *testing.T) {
	e := newEnv(t, e2eUsers(), nil, nil)
	e.tokens.SetAudience(tenantID, clientID, "https://outlook.office365.com")
	s := &smimesync.Syncer{Source: directory.LDIFFile{Path: filepath.Join("testdata", "e2e.ldif")}, Sink: e.sink, Policy: fixturePolicy(t)}
	rep, err := s.Run(context.Background())
	if err == nil {
		t.Fatal("Run succeeded with tokens for the wrong audience")
	}
	for _, c := range testrows.Of(t, rep) {
		if c.Reason != smimesync.SkipError || !strings.Contains(c.Error, "401") || !strings.Contains(c.Error, "audience") {
			t.Errorf("%s: %s %q %q", c.DN, c.Action, c.Reason, c.Error)
		}
	}
	if st := e.graph.Stats(); st.Writes != 0 || st.Unauthorized == 0 {
		t.Fatalf("emulator %+v", st)
	}
	if !slices.ContainsFunc(rep.Errors, func(s string) bool { return strings.Contains(s, "audience") }) {
		t.Errorf("report errors %q do not say why", rep.Errors)
	}
}
