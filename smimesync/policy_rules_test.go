package smimesync_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// utf8Name encodes a name with UTF8String values, as many CAs write their
// issuer names, where Go's pkix.Name writes a PrintableString.
func utf8Name(t *testing.T, attrs ...[2]any) []byte {
	t.Helper()
	var rdns pkix.RDNSequence
	for _, a := range attrs {
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{
			Type:  a[0].(asn1.ObjectIdentifier),
			Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(a[1].(string))},
		}})
	}
	der, err := asn1.Marshal(rdns)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

var (
	oidCN = asn1.ObjectIdentifier{2, 5, 4, 3}
)

// A managed CA made from a pkix.Name (PrintableString) is the issuer of a
// certificate whose issuer name says the same in UTF8String, in another
// case and spacing: the certificate is managed. Before, raw bytes were
// compared and every such certificate was dropped as issuer-not-managed.
func TestManagedCAComparedCanonically(t *testing.T) {
	ca := newTestCA(t, "Example Issuing CA")
	// The same CA, its name encoded as another issuer writes it.
	reencoded := *ca.cert
	reencoded.RawSubject = utf8Name(t, [2]any{oidCN, "example   ISSUING ca "})
	issuing := &testCA{cert: &reencoded, key: ca.key, serial: 500}
	cert := issuing.issue(t, leaf{email: "alice@example.com"})
	parsed, err := x509.ParseCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	if string(parsed.RawIssuer) == string(ca.cert.RawSubject) {
		t.Fatal("test is broken: the issuer name is encoded as the CA's subject")
	}
	other := newTestCA(t, "Example Issuing CA 2")
	sameNameOtherKey := newTestCA(t, "Example Issuing CA") // a different key: its SKI differs

	entry := &directory.Entry{Mail: "alice@example.com", UserCertificate: [][]byte{cert}}
	for _, tt := range []struct {
		name    string
		managed []*x509.Certificate
		want    []smimesync.Reason
	}{
		{"the CA, encoded differently", []*x509.Certificate{ca.cert}, nil},
		{"another CA", []*x509.Certificate{other.cert}, []smimesync.Reason{smimesync.ReasonIssuerNotManaged}},
		{"the same name, another key", []*x509.Certificate{sameNameOtherKey.cert}, []smimesync.Reason{smimesync.ReasonIssuerNotManaged}},
		{"old and new key listed", []*x509.Certificate{sameNameOtherKey.cert, ca.cert}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &smimesync.Policy{Now: func() time.Time { return testNow }, ManagedCAs: tt.managed, DropUnmanaged: true}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			d := p.Evaluate(context.Background(), entry).UserCertificate[0]
			if !slices.Equal(d.Reasons, tt.want) {
				t.Errorf("reasons %v, want %v", d.Reasons, tt.want)
			}
		})
	}
}

// A ManagedCAs entry that can match nothing is refused: by Validate, and
// by the Syncer's Plan, instead of silently dropping every certificate.
func TestPolicyValidateRefusesWhatCannotMatch(t *testing.T) {
	ca := newTestCA(t, "Example CA")
	notCA, err := x509.ParseCertificate(ca.issue(t, leaf{email: "alice@example.com"}))
	if err != nil {
		t.Fatal(err)
	}
	noName := newTestCA(t, "")
	for _, tt := range []struct {
		name string
		cas  []*x509.Certificate
		want string
	}{
		{"a leaf certificate", []*x509.Certificate{ca.cert, notCA}, "ManagedCAs[1]"},
		{"an empty subject", []*x509.Certificate{noName.cert}, "empty subject"},
		{"nil", []*x509.Certificate{nil}, "ManagedCAs[0] is nil"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &smimesync.Policy{ManagedCAs: tt.cas, DropUnmanaged: true}
			err := p.Validate()
			if !errors.Is(err, smimesync.ErrInvalidPolicy) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want ErrInvalidPolicy naming %q", err, tt.want)
			}
			s := newSyncer(writeLDIF(t), cloudtest.NewMemorySink(), nil)
			s.Policy = p
			if _, err := s.Plan(context.Background()); !errors.Is(err, smimesync.ErrInvalidPolicy) || !errors.Is(err, smimesync.ErrInvalidConfig) {
				t.Errorf("Plan: %v, want ErrInvalidConfig and ErrInvalidPolicy", err)
			}
		})
	}
	if err := (&smimesync.Policy{ManagedCAs: []*x509.Certificate{ca.cert}}).Validate(); err != nil {
		t.Errorf("a CA is refused: %v", err)
	}
}

// A rule of the caller's own drops a certificate with a custom reason that
// a plan and its summary show apart from the built-in ones.
func TestPolicyCheckRule(t *testing.T) {
	ca := newTestCA(t, "Example CA")
	small := ca.issue(t, leaf{email: "alice@example.com"})
	blessed := ca.issue(t, leaf{email: "bob@example.com"})
	blessedSerial := mustParse(t, blessed).Serial
	var sawEntry []string
	p := &smimesync.Policy{
		Now: func() time.Time { return testNow },
		Check: func(ctx context.Context, c *smimesync.Certificate, e *directory.Entry) []smimesync.Reason {
			if e != nil {
				sawEntry = append(sawEntry, e.Mail)
			}
			// Only serials the organisation recorded are published.
			if c.Serial.Cmp(blessedSerial) != 0 {
				return []smimesync.Reason{"serial-not-recorded"}
			}
			return nil
		},
	}
	s := newSyncer(writeLDIF(t, user(1, "alice", small), user(2, "bob", blessed)), cloudtest.NewMemorySink(), nil)
	s.Concurrency = 1
	s.Policy = p
	plan, err := s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := smimesync.CustomReason("serial-not-recorded")
	for _, c := range testrows.Of(t, plan) {
		switch c.User {
		case "alice@example.com":
			if len(c.Drop) != 1 || !slices.Equal(c.Drop[0].Reasons, []smimesync.Reason{want}) || !c.Drop[0].Reasons[0].IsCustom() {
				t.Errorf("alice: drop %+v, want one value dropped with %q", c.Drop, want)
			}
		case "bob@example.com":
			if len(c.Keep) != 1 || len(c.Drop) != 0 {
				t.Errorf("bob: keep %d drop %d, want his recorded certificate kept", len(c.Keep), len(c.Drop))
			}
		}
	}
	if plan.Summary.Dropped[want] != 1 || string(want) != "custom:serial-not-recorded" {
		t.Errorf("summary dropped %v, want %s: 1", plan.Summary.Dropped, want)
	}
	if len(sawEntry) != 2 {
		t.Errorf("Check saw entries %v, want both", sawEntry)
	}
	if smimesync.ReasonExpired.IsCustom() {
		t.Error("a built-in reason is custom")
	}
	// On its own (no entry), the rule still runs.
	rs, _ := p.CheckCertificate(context.Background(), mustParse(t, small), nil)
	if !slices.Equal(rs, []smimesync.Reason{want}) {
		t.Errorf("CheckCertificate: %v, want %v", rs, want)
	}
}

func mustParse(t *testing.T, der []byte) *smimesync.Certificate {
	t.Helper()
	c, err := smimesync.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A Policy without a clock reads the Syncer's: a certificate valid today
// but expired at the Syncer's time is dropped as expired, and the caller's
// Policy is left as it was.
func TestSyncerClockIsThePolicyClock(t *testing.T) {
	ca := newTestCA(t, "Example CA")
	pol := &smimesync.Policy{}
	s := &smimesync.Syncer{
		Source: writeLDIF(t, user(1, "alice", ca.issue(t, leaf{email: "alice@example.com", notBefore: time.Now().Add(-time.Hour), notAfter: time.Now().Add(365 * 24 * time.Hour)}))),
		Sink:   cloudtest.NewMemorySink(),
		Policy: pol,
		Now:    func() time.Time { return time.Now().Add(2 * 365 * 24 * time.Hour) }, // past the leaf's notAfter
	}
	plan, err := s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := testrows.Of(t, plan)[0]
	if len(c.Drop) != 1 || !slices.Equal(c.Drop[0].Reasons, []smimesync.Reason{smimesync.ReasonExpired}) {
		t.Errorf("drop %+v keep %d, want the certificate dropped as expired by the Syncer's clock", c.Drop, len(c.Keep))
	}
	if pol.Now != nil {
		t.Error("the caller's Policy was changed")
	}
}
