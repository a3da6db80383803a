package smimesync_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/testpki"
	"github.com/smimesync/go-smimesync/smimesync"
)

// This file's certificates are valid around the time the test runs, read
// once from the clock the policy under test is given.

// rvIssuer is a CA of this file's tests.
type rvIssuer struct {
	cert *x509.Certificate
	ca   *testpki.CA
}

// rvCA makes a CA valid from a day before now for a year, issued by
// parent (self-signed when nil), with the subject key identifier ski (nil:
// Go derives one).
func rvCA(t *testing.T, now time.Time, name string, parent *rvIssuer, ski []byte) *rvIssuer {
	t.Helper()
	opts := []testpki.Option{testpki.Validity(now.Add(-24*time.Hour), now.Add(365*24*time.Hour)), testpki.SubjectKeyID(ski)}
	var ca *testpki.CA
	if parent == nil {
		ca = testpki.MustNew(t, name, opts...)
	} else {
		ca = parent.ca.MustIntermediate(t, name, opts...)
	}
	return &rvIssuer{ca.Cert, ca}
}

// rvLeaf is an S/MIME certificate for addr whose OCSP responder and CRL
// distribution point are loopback URLs: the kind a hostile user points a
// revocation checker at. (The recording checker below fetches nothing.)
func rvLeaf(t *testing.T, now time.Time, addr string, ca *rvIssuer) *x509.Certificate {
	t.Helper()
	return ca.ca.MustIssue(t, testpki.CommonName(addr), testpki.Email(addr),
		testpki.Validity(now.Add(-24*time.Hour), now.Add(365*24*time.Hour)),
		testpki.KeyUsage(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement),
		testpki.OCSPServer("http://127.0.0.1:6379/"), testpki.CRLDistributionPoints("http://169.254.169.254/latest/meta-data/"),
	).X509()
}

func rvBlob(t *testing.T, certs ...*x509.Certificate) []byte {
	t.Helper()
	var all []byte
	for _, c := range certs {
		all = append(all, c.Raw...)
	}
	der, err := pkcs7.DegenerateCertificate(all)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// recordingChecker records what it is asked and answers good, or err.
type recordingChecker struct {
	err   error
	mu    sync.Mutex
	calls [][2]*x509.Certificate // cert, issuer
}

func (r *recordingChecker) Check(ctx context.Context, cert, issuer *x509.Certificate) (smimesync.RevocationStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, [2]*x509.Certificate{cert, issuer})
	if r.err != nil {
		return smimesync.RevocationUnknown, r.err
	}
	return smimesync.RevocationGood, nil
}

// A directory user cannot make the checker fetch the URLs of a certificate
// whose issuer the policy cannot vouch for: not with a self-made CA in their
// own blob, nor with a CA that copies a managed CA's name and key
// identifier. Only a managed CA whose signature verifies, or an issuer on a
// chain verified to the roots, is handed to the checker.
func TestRevocationOnlyForVouchedIssuers(t *testing.T) {
	now := time.Now()
	const me = "mallory@example.com"
	managed := rvCA(t, now, "Managed CA", nil, nil)
	// Same name and key identifier as the managed CA; another key.
	imitation := rvCA(t, now, "Managed CA", nil, managed.cert.SubjectKeyId)
	selfMade := rvCA(t, now, "Mallory Root", nil, nil)
	root := rvCA(t, now, "Corp Root", nil, nil)
	intermediate := rvCA(t, now, "Corp Issuing CA", root, nil)

	managedLeaf := rvLeaf(t, now, me, managed)
	imitationLeaf := rvLeaf(t, now, me, imitation)
	selfMadeLeaf := rvLeaf(t, now, me, selfMade)
	chainedLeaf := rvLeaf(t, now, me, intermediate)
	roots := x509.NewCertPool()
	roots.AddCert(root.cert)

	tests := []struct {
		name       string
		policy     smimesync.Policy
		certs      []*x509.Certificate // userCertificate
		blobs      [][]byte            // userSMIMECertificate
		wantIssuer *x509.Certificate   // nil: the checker must not be asked
		wantNote   string              // a note that must be there
	}{
		{name: "no managed CAs nor roots: a self-made CA in the blob", blobs: [][]byte{rvBlob(t, selfMade.cert, selfMadeLeaf)},
			wantNote: "revocation: not-checked (no managed CAs or roots configured)"},
		{name: "no managed CAs nor roots: even a real CA's certificate", certs: []*x509.Certificate{managedLeaf},
			wantNote: "revocation: not-checked (no managed CAs or roots configured)"},
		{name: "an imitation of the managed CA in the blob", policy: smimesync.Policy{ManagedCAs: []*x509.Certificate{managed.cert}},
			blobs: [][]byte{rvBlob(t, imitation.cert, imitationLeaf)}, wantNote: "revocation: not-checked (issuer is not a managed CA and does not chain to the roots)"},
		{name: "an imitation's leaf alone", policy: smimesync.Policy{ManagedCAs: []*x509.Certificate{managed.cert}},
			certs: []*x509.Certificate{imitationLeaf}, wantNote: "revocation: not-checked (issuer is not a managed CA and does not chain to the roots)"},
		{name: "a self-made CA with roots configured", policy: smimesync.Policy{Roots: roots, ManagedCAs: []*x509.Certificate{managed.cert}},
			blobs: [][]byte{rvBlob(t, selfMade.cert, selfMadeLeaf)}, wantNote: "revocation: not-checked (issuer is not a managed CA and does not chain to the roots)"},
		{name: "the managed CA's own certificate", policy: smimesync.Policy{ManagedCAs: []*x509.Certificate{managed.cert}},
			certs: []*x509.Certificate{managedLeaf}, wantIssuer: managed.cert},
		{name: "the managed CA's certificate with an imitation beside it in the blob", policy: smimesync.Policy{ManagedCAs: []*x509.Certificate{managed.cert}},
			blobs: [][]byte{rvBlob(t, imitation.cert, managedLeaf)}, wantIssuer: managed.cert},
		{name: "chained to the roots through the blob's intermediate", policy: smimesync.Policy{Roots: roots},
			blobs: [][]byte{rvBlob(t, intermediate.cert, chainedLeaf)}, wantIssuer: intermediate.cert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recordingChecker{}
			p := tt.policy
			p.Now = func() time.Time { return now }
			p.Revocation = rc
			e := &directory.Entry{Mail: me, UserSMIMECertificate: tt.blobs}
			for _, c := range tt.certs {
				e.UserCertificate = append(e.UserCertificate, c.Raw)
			}
			v := p.Evaluate(context.Background(), e)
			var notes []string
			for _, d := range v.Decisions() {
				if !d.Keep {
					t.Errorf("%s dropped: %v", d.Attribute, d.Reasons)
				}
				notes = append(notes, d.Notes...)
			}
			switch {
			case tt.wantIssuer == nil && len(rc.calls) > 0:
				t.Fatalf("the checker was asked about %q with issuer %q; it must not be", rc.calls[0][0].Subject, subjectOf(rc.calls[0][1]))
			case tt.wantIssuer != nil && len(rc.calls) != 1:
				t.Fatalf("the checker was asked %d times, want once", len(rc.calls))
			case tt.wantIssuer != nil && !rc.calls[0][1].Equal(tt.wantIssuer):
				t.Fatalf("issuer handed to the checker: %q, want %q (%x)", subjectOf(rc.calls[0][1]), tt.wantIssuer.Subject, tt.wantIssuer.SubjectKeyId)
			}
			if tt.wantNote != "" && !slices.Contains(notes, tt.wantNote) {
				t.Errorf("notes %q lack %q", notes, tt.wantNote)
			}
		})
	}
}

func subjectOf(c *x509.Certificate) string {
	if c == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s (key id %x)", c.Subject, c.SubjectKeyId)
}

// codedError is a checker error that carries codes, as the revocation
// package's do.
type codedError struct{ msg string }

func (e codedError) Error() string { return e.msg }
func (e codedError) RevocationCodes() []smimesync.RevocationCode {
	return []smimesync.RevocationCode{smimesync.RevocationRefusedDestination, smimesync.RevocationHTTPStatus}
}

// The checker's raw error (hosts, ports, dial errors) never reaches the
// notes; its codes do.
func TestRevocationNotesAreCodes(t *testing.T) {
	now := time.Now()
	const me = "alice@example.com"
	ca := rvCA(t, now, "Managed CA", nil, nil)
	cert := rvLeaf(t, now, me, ca)
	raw := "ocsp http://10.0.0.7:22/: dial tcp 10.0.0.7:22: connect: connection refused"
	for _, tt := range []struct {
		err  error
		want string
	}{
		{codedError{raw}, "revocation: refused-destination, http-status"},
		{errors.New(raw), "revocation: error"},
		{context.DeadlineExceeded, "revocation: timeout"},
	} {
		p := smimesync.Policy{Now: func() time.Time { return now }, ManagedCAs: []*x509.Certificate{ca.cert}, Revocation: &recordingChecker{err: tt.err}}
		v := p.Evaluate(context.Background(), &directory.Entry{Mail: me, UserCertificate: [][]byte{cert.Raw}})
		notes := v.UserCertificate[0].Notes
		if !slices.Equal(notes, []string{tt.want}) {
			t.Errorf("error %q: notes %q, want [%q]", tt.err, notes, tt.want)
		}
		for _, n := range notes {
			if strings.Contains(n, "10.0.0.7") {
				t.Errorf("note %q carries the raw error", n)
			}
		}
	}
}

// budgetChecker is a RevocationBudgeter that counts the scopes opened and
// records the scopes each check ran in.
type budgetChecker struct {
	mu              sync.Mutex
	passes, entries int
	seen            []string
}

type scopeKey struct{}

func (b *budgetChecker) BeginPass(ctx context.Context) context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.passes++
	return context.WithValue(ctx, scopeKey{}, "pass")
}

func (b *budgetChecker) BeginEntry(ctx context.Context) context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries++
	s, _ := ctx.Value(scopeKey{}).(string)
	return context.WithValue(ctx, scopeKey{}, s+"+entry")
}

func (b *budgetChecker) Check(ctx context.Context, cert, issuer *x509.Certificate) (smimesync.RevocationStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, _ := ctx.Value(scopeKey{}).(string)
	b.seen = append(b.seen, s)
	return smimesync.RevocationGood, nil
}

// The Syncer opens one pass budget per plan and the Policy one entry budget
// per directory entry, and the checks run inside both.
func TestRevocationBudgetScopes(t *testing.T) {
	now := time.Now()
	ca := rvCA(t, now, "Managed CA", nil, nil)
	var entries []*directory.Entry
	for i, name := range []string{"alice", "bob"} {
		addr := name + "@example.com"
		entries = append(entries, &directory.Entry{
			ID: "0f0e0d0c-0b0a-0908-0706-05040302010" + string(rune('a'+i)), DN: "CN=" + name + ",DC=example,DC=com", Mail: addr,
			UserCertificate: [][]byte{rvLeaf(t, now, addr, ca).Raw, rvLeaf(t, now, addr, ca).Raw},
		})
	}
	bc := &budgetChecker{}
	s := &smimesync.Syncer{
		Source: sliceSource(entries),
		Sink:   cloudtest.NewMemorySink(),
		Policy: &smimesync.Policy{Now: func() time.Time { return now }, ManagedCAs: []*x509.Certificate{ca.cert}, Revocation: bc},
		Now:    func() time.Time { return now },
	}
	for range 2 {
		if _, err := s.Plan(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if bc.passes != 2 || bc.entries != 4 {
		t.Errorf("%d passes and %d entries opened for 2 plans of 2 entries, want 2 and 4", bc.passes, bc.entries)
	}
	if len(bc.seen) != 8 {
		t.Fatalf("%d checks, want 8", len(bc.seen))
	}
	for _, s := range bc.seen {
		if s != "pass+entry" {
			t.Errorf("a check ran in scope %q, want pass+entry", s)
		}
	}
}

// sliceSource yields its entries on every pass.
type sliceSource []*directory.Entry

func (s sliceSource) Read(ctx context.Context, _ directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	for _, e := range s {
		if err := yield(e); err != nil {
			return directory.Result{}, err
		}
	}
	return directory.Result{Full: true}, nil
}
