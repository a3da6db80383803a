package status

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// The fixture's people. Bob has only dropped certificates and an old one
// on his recipient: "why can't I encrypt to Bob?". Mallory's names are
// markup, to see that the page escapes them.
const (
	alice   = "alice@example.com"
	bob     = "bob@example.com"
	carol   = "carol@example.com"
	dave    = "dave@example.com"
	mallory = `<img src=x onerror="document.title='pwned'">@example.com`
)

// fp is a made-up fingerprint for a name.
func fp(name string) smimesync.Fingerprint { return sha256.Sum256([]byte(name)) }

// fixture is a Status with a report store of two sinks, fed by passes as
// a service feeds it, on a clock fixed at now (taken from time.Now at run
// time: the certificates' expiry is relative to it).
type fixture struct {
	st        *Status
	now       time.Time
	published map[string]map[string]smimesync.Published
	// expiringWithin30 and withUsable are what the page must show for
	// sink exchange.
	users, withUsable, withoutUsable, expiringWithin30 int
}

func value(name, attr string, notAfter time.Time, reasons ...smimesync.Reason) smimesync.Value {
	return smimesync.Value{SHA256: fp(name), Attribute: attr, Reasons: reasons,
		Subject: "CN=" + name + ",O=Example", Issuer: "CN=Example Issuing CA,O=Example", Serial: "4242", NotAfter: notAfter}
}

func change(user string, action smimesync.Action, outcome smimesync.Outcome, keep, drop []smimesync.Value) *smimesync.Change {
	return &smimesync.Change{ID: "id-" + user, User: user, DN: "CN=" + user + ",OU=People,DC=example,DC=com", Source: "ldap",
		Recipient: &cloud.Recipient{ID: "r-" + user, Name: user}, Action: action, Outcome: outcome, Keep: keep, Drop: drop}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Minute)
	days := func(n int) time.Time { return now.Add(time.Duration(n) * 24 * time.Hour) }
	store, err := report.Open(filepath.Join(t.TempDir(), "state.report.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{now: now, published: map[string]map[string]smimesync.Published{}}
	f.st = &Status{Report: store, Now: func() time.Time { return now },
		Published: func(_ context.Context, sink string) (map[string]smimesync.Published, error) {
			return f.published[sink], nil
		}}

	changes := []*smimesync.Change{
		change(alice, smimesync.ActionReplace, smimesync.OutcomeWritten,
			[]smimesync.Value{value("alice-2", "userSMIMECertificate", days(10)), value("alice-1", "userCertificate", days(12))},
			[]smimesync.Value{value("alice-old", "userCertificate", days(-30), smimesync.ReasonExpired)}),
		change(bob, smimesync.ActionRemove, smimesync.OutcomeWritten, nil,
			[]smimesync.Value{value("bob-wrong", "userCertificate", days(300), smimesync.ReasonNoMatchingAddress),
				value("bob-old", "userCertificate", days(-3), smimesync.ReasonExpired)}),
		change(carol, smimesync.ActionUnchanged, "", nil, nil),
		change(mallory, smimesync.ActionAdd, smimesync.OutcomeFailed,
			[]smimesync.Value{value(mallory, "userCertificate", days(20))}, nil),
	}
	dc := change(dave, smimesync.ActionSkip, "", []smimesync.Value{value("dave", "userCertificate", days(200))}, nil)
	dc.Reason, dc.Detail = smimesync.SkipReadOnly, "directory-synced: only Entra Connect may write it"
	changes = append(changes, dc)
	// A crowd whose last certificates expire over the year, more of them
	// in the spring, to give the chart a shape.
	for i := range 60 {
		d := 40 + (i*i)%320
		changes = append(changes, change(fmt.Sprintf("user%02d@example.com", i), smimesync.ActionUnchanged, "",
			[]smimesync.Value{value(fmt.Sprintf("u%d-a", i), "userCertificate", days(d-5)), value(fmt.Sprintf("u%d-b", i), "userSMIMECertificate", days(d))}, nil))
	}
	f.users = len(changes)
	f.withoutUsable = 2    // Bob, Carol
	f.expiringWithin30 = 3 // Alice's two, Mallory's
	f.withUsable = f.users - f.withoutUsable

	sum := smimesync.Summary{Entries: len(changes), Add: 1, Replace: 1, Remove: 1, Unchanged: 61, Skip: 1,
		Written: 2, Failed: 1, KeptValues: 124, DroppedValues: 3}
	full := &smimesync.Report{Plan: smimesync.Plan{Changes: changes, Summary: sum, Full: true,
		Started: now.Add(-3 * time.Minute), Finished: now.Add(-2 * time.Minute)}}
	delta := &smimesync.Report{Plan: smimesync.Plan{Summary: smimesync.Summary{}, Started: now.Add(-time.Minute), Finished: now.Add(-time.Minute)},
		CookieAdvanced: true}
	passes := []service.PassResult{
		{Sink: "exchange", Kind: service.KindFull, Result: service.ResultError, Started: now.Add(-3 * time.Minute),
			Finished: now.Add(-2*time.Minute - 13*time.Second), Report: full, Err: fmt.Errorf("%w: 1 of 3 writes failed (host exo.internal.example)", smimesync.ErrChangesFailed)},
		{Sink: "exchange", Kind: service.KindDelta, Result: service.ResultOK, Started: now.Add(-time.Minute),
			Finished: now.Add(-time.Minute + 800*time.Millisecond), Report: delta},
		{Sink: "graph", Kind: service.KindFull, Result: service.ResultOK, Started: now.Add(-90 * time.Second),
			Finished: now.Add(-80 * time.Second), Report: &smimesync.Report{Plan: smimesync.Plan{Full: true,
				Changes: []*smimesync.Change{change(alice, smimesync.ActionUnchanged, "", []smimesync.Value{value("alice-2", "userSMIMECertificate", days(10))}, nil)},
				Summary: smimesync.Summary{Entries: 1, Unchanged: 1, KeptValues: 1}}}},
	}
	// The last exchange pass fails to plan: the source is unreachable.
	passes = append(passes, service.PassResult{Sink: "exchange", Kind: service.KindDelta, Result: service.ResultError,
		Started: now.Add(-20 * time.Second), Finished: now.Add(-18 * time.Second),
		Err: fmt.Errorf("dial tcp 10.1.2.3:636: connect: connection refused (bind CN=svc-sync,OU=Service)"), Code: service.CodeSourceUnreachable})
	for i, p := range passes {
		if p.Code == "" {
			p.Code = service.ErrorCode(p.Err)
		}
		if err := f.st.Record(p); err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
	}
	f.published["exchange"] = map[string]smimesync.Published{
		smimesync.PublishedKey("ldap", "id-"+alice): {Recipient: "r-" + alice, At: now.Add(-2 * time.Minute),
			UserCertificate: []smimesync.Fingerprint{fp("alice-1")}, UserSMIMECertificate: []smimesync.Fingerprint{fp("alice-2")}},
		// Bob's certificates were taken away: both are unusable now.
		smimesync.PublishedKey("ldap", "id-"+bob): {Recipient: "r-" + bob, At: now.Add(-2 * time.Minute)},
		// Dave's recipient carries a certificate of 2019 the directory no
		// longer holds (it is read-only: smimesync cannot replace it).
		smimesync.PublishedKey("ldap", "id-"+dave): {Recipient: "r-" + dave, At: now.Add(-400 * 24 * time.Hour),
			UserCertificate: []smimesync.Fingerprint{fp("dave-2019")}},
	}
	return f
}
