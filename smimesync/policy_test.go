package smimesync_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// revoker is a hand-written RevocationChecker: it says revoked for the
// serials it holds, and fails with err when set.
type revoker struct {
	revoked map[string]bool
	err     error
}

func (r revoker) Check(ctx context.Context, cert, issuer *x509.Certificate) (smimesync.RevocationStatus, error) {
	if r.err != nil {
		return smimesync.RevocationUnknown, r.err
	}
	if r.revoked[cert.SerialNumber.String()] {
		return smimesync.RevocationRevoked, nil
	}
	return smimesync.RevocationGood, nil
}

func TestPolicyReasons(t *testing.T) {
	ca := newTestCA(t, "Managed CA")
	other := newTestCA(t, "Partner CA")
	const me = "alice@example.com"
	good := ca.issue(t, leaf{email: me})
	goodKey := rsaKeys()[0]
	revokedCert := ca.issue(t, leaf{email: me})
	revokedParsed, _ := x509.ParseCertificate(revokedCert)
	partner := other.issue(t, leaf{email: me})
	signOnly := ca.issue(t, leaf{email: me, usage: x509.KeyUsageDigitalSignature})

	// A signed blob whose signature is broken: flip the last byte (inside
	// the signature value).
	badSig := ca.signedBlob(t, good, goodKey)
	badSig[len(badSig)-1] ^= 0xff

	rfc := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "rfc9216", "cms-der", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	tests := []struct {
		name   string
		policy smimesync.Policy
		certs  [][]byte // userCertificate
		blobs  [][]byte // userSMIMECertificate
		// want holds the reasons per value, userCertificate values first;
		// nil means kept.
		want [][]smimesync.Reason
	}{
		{name: "good", certs: [][]byte{good}, want: [][]smimesync.Reason{nil}},
		{name: "expired", certs: [][]byte{ca.issue(t, leaf{email: me, notBefore: testNow.Add(-400 * 24 * time.Hour), notAfter: testNow.Add(-time.Hour)})},
			want: [][]smimesync.Reason{{smimesync.ReasonExpired}}},
		{name: "not yet valid", certs: [][]byte{ca.issue(t, leaf{email: me, notBefore: testNow.Add(time.Hour)})},
			want: [][]smimesync.Reason{{smimesync.ReasonNotYetValid}}},
		{name: "TLS client certificate", certs: [][]byte{ca.issue(t, leaf{email: me, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})},
			want: [][]smimesync.Reason{{smimesync.ReasonNotForSMIME}}},
		{name: "CA certificate", certs: [][]byte{ca.issue(t, leaf{email: me, isCA: true, usage: x509.KeyUsageCertSign})},
			want: [][]smimesync.Reason{{smimesync.ReasonNotForSMIME}}},
		{name: "signing-only kept by default", certs: [][]byte{signOnly}, want: [][]smimesync.Reason{nil}},
		{name: "signing-only dropped when encryption is required", policy: smimesync.Policy{RequireEncryption: true},
			certs: [][]byte{signOnly}, want: [][]smimesync.Reason{{smimesync.ReasonNotForSMIME}}},
		{name: "someone else's address", certs: [][]byte{ca.issue(t, leaf{email: "mallory@example.com"})},
			want: [][]smimesync.Reason{{smimesync.ReasonNoMatchingAddress}}},
		{name: "every cheap reason at once", certs: [][]byte{ca.issue(t, leaf{email: "mallory@example.com", notBefore: testNow.Add(-400 * 24 * time.Hour), notAfter: testNow.Add(-time.Hour), eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})},
			want: [][]smimesync.Reason{{smimesync.ReasonExpired, smimesync.ReasonNotForSMIME, smimesync.ReasonNoMatchingAddress}}},
		{name: "untrusted chain", policy: smimesync.Policy{Roots: pool(other.cert)},
			certs: [][]byte{good}, want: [][]smimesync.Reason{{smimesync.ReasonUntrustedChain}}},
		{name: "trusted chain", policy: smimesync.Policy{Roots: pool(ca.cert)},
			certs: [][]byte{good}, want: [][]smimesync.Reason{nil}},
		{name: "unmanaged issuer is exempt from the chain and kept", policy: smimesync.Policy{Roots: pool(ca.cert), ManagedCAs: []*x509.Certificate{ca.cert}},
			certs: [][]byte{good, partner}, want: [][]smimesync.Reason{nil, nil}},
		{name: "unmanaged issuer dropped when told", policy: smimesync.Policy{ManagedCAs: []*x509.Certificate{ca.cert}, DropUnmanaged: true},
			certs: [][]byte{good, partner}, want: [][]smimesync.Reason{nil, {smimesync.ReasonIssuerNotManaged}}},
		{name: "revoked", policy: smimesync.Policy{ManagedCAs: []*x509.Certificate{ca.cert}, Revocation: revoker{revoked: map[string]bool{revokedParsed.SerialNumber.String(): true}}},
			certs: [][]byte{good, revokedCert}, want: [][]smimesync.Reason{nil, {smimesync.ReasonRevoked}}},
		{name: "revocation check failing keeps the certificate", policy: smimesync.Policy{ManagedCAs: []*x509.Certificate{ca.cert}, Revocation: revoker{err: errors.New("responder down")}},
			certs: [][]byte{good}, want: [][]smimesync.Reason{nil}},
		{name: "duplicate", certs: [][]byte{good, good}, want: [][]smimesync.Reason{nil, {smimesync.ReasonDuplicate}}},
		{name: "unparseable", certs: [][]byte{good[:len(good)/2], []byte("not a certificate")},
			want: [][]smimesync.Reason{{smimesync.ReasonUnparseable}, {smimesync.ReasonUnparseable}}},
		{name: "signed blob", blobs: [][]byte{ca.signedBlob(t, good, goodKey)}, want: [][]smimesync.Reason{nil}},
		{name: "certificates-only blob", blobs: [][]byte{certsOnly(t, good, ca.cert.Raw)}, want: [][]smimesync.Reason{nil}},
		{name: "blob of only a CA certificate", blobs: [][]byte{certsOnly(t, ca.cert.Raw)}, want: [][]smimesync.Reason{{smimesync.ReasonNoCertificates}}},
		{name: "blob whose certificate expired", blobs: [][]byte{certsOnly(t, ca.issue(t, leaf{email: me, notAfter: testNow.Add(-time.Hour)}))},
			want: [][]smimesync.Reason{{smimesync.ReasonExpired}}},
		{name: "security-settings blob", blobs: [][]byte{{0x01, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00}},
			want: [][]smimesync.Reason{{smimesync.ReasonSecuritySettings}}},
		{name: "EnvelopedData", blobs: [][]byte{rfc("encryptedForBobRSAOaep.p7m")}, want: [][]smimesync.Reason{{smimesync.ReasonWrongContentType}}},
		{name: "SignedData without certificates", blobs: [][]byte{rfc("signedByAliceAndCarlosNoCerts.p7m")},
			want: [][]smimesync.Reason{{smimesync.ReasonNoCertificates}}},
		{name: "bad signature is only a note by default", blobs: [][]byte{badSig}, want: [][]smimesync.Reason{nil}},
		{name: "bad signature dropped when required", policy: smimesync.Policy{RequireValidSignature: true},
			blobs: [][]byte{badSig}, want: [][]smimesync.Reason{{smimesync.ReasonBadSignature}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.policy
			p.Now = func() time.Time { return testNow }
			e := &directory.Entry{Mail: me, UserCertificate: tt.certs, UserSMIMECertificate: tt.blobs}
			v := p.Evaluate(context.Background(), e)
			var got [][]smimesync.Reason
			for _, d := range v.Decisions() {
				if d.Keep != (len(d.Reasons) == 0) {
					t.Errorf("%s: Keep=%v with reasons %v", d.Attribute, d.Keep, d.Reasons)
				}
				got = append(got, d.Reasons)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
			kept := v.Kept()
			if n := kept.Len(); n != countNil(tt.want) {
				t.Errorf("Kept() has %d values, want %d", n, countNil(tt.want))
			}
		})
	}
}

func TestPolicyOverLimit(t *testing.T) {
	ca := newTestCA(t, "CA")
	const me = "erin@example.com"
	// 20 certificates expiring one month apart, stored in a shuffled order.
	var certs [][]byte
	order := []int{7, 19, 3, 0, 12, 5, 16, 9, 1, 14, 18, 2, 10, 6, 17, 4, 11, 15, 8, 13}
	for _, m := range order {
		certs = append(certs, ca.issue(t, leaf{email: me, notAfter: testNow.Add(time.Duration(m+1) * 30 * 24 * time.Hour)}))
	}
	for _, max := range []int{0, 5} {
		p := smimesync.Policy{Now: func() time.Time { return testNow }, MaxValues: max}
		v := p.Evaluate(context.Background(), &directory.Entry{Mail: me, UserCertificate: certs})
		limit := max
		if limit == 0 {
			limit = smimesync.DefaultMaxValues
		}
		var keptMonths []int
		for i, d := range v.UserCertificate {
			switch {
			case d.Keep:
				keptMonths = append(keptMonths, order[i])
			case !slices.Equal(d.Reasons, []smimesync.Reason{smimesync.ReasonOverLimit}):
				t.Errorf("value %d dropped for %v, want over-limit", i, d.Reasons)
			}
		}
		slices.Sort(keptMonths)
		var want []int
		for m := 20 - limit; m < 20; m++ {
			want = append(want, m)
		}
		if !slices.Equal(keptMonths, want) {
			t.Errorf("MaxValues=%d: kept the certificates expiring in months %v, want the latest %v", max, keptMonths, want)
		}
		// Deterministic: the same input gives the same choice.
		again := p.Evaluate(context.Background(), &directory.Entry{Mail: me, UserCertificate: certs})
		if diff := cmp.Diff(v.Kept(), again.Kept()); diff != "" {
			t.Errorf("second evaluation differs:\n%s", diff)
		}
	}
}

func TestPolicyAddresses(t *testing.T) {
	ca := newTestCA(t, "CA")
	alias := ca.issue(t, leaf{email: "Security@Example.com"})
	p := smimesync.Policy{Now: func() time.Time { return testNow }}
	tests := []struct {
		name  string
		entry directory.Entry
		keep  bool
	}{
		{"mail", directory.Entry{Mail: "security@example.com"}, true},
		{"smtp proxy address, any case", directory.Entry{Mail: "trent@example.com", ProxyAddresses: []string{"SMTP:trent@example.com", "smtp:SECURITY@example.com"}}, true},
		{"x500 proxy address does not count", directory.Entry{Mail: "trent@example.com", ProxyAddresses: []string{"X500:security@example.com"}}, false},
		{"UPN is not an address", directory.Entry{UserPrincipalName: "security@example.com"}, false},
		{"no address at all", directory.Entry{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.entry
			e.UserCertificate = [][]byte{alias}
			v := p.Evaluate(context.Background(), &e)
			if got := v.UserCertificate[0].Keep; got != tt.keep {
				t.Errorf("keep = %v (reasons %v), want %v", got, v.UserCertificate[0].Reasons, tt.keep)
			}
		})
	}
}

func TestPolicyCheckCertificateWithoutUser(t *testing.T) {
	ca := newTestCA(t, "CA")
	c, err := smimesync.ParseCertificate(ca.issue(t, leaf{email: "someone@example.com"}))
	if err != nil {
		t.Fatal(err)
	}
	p := smimesync.Policy{Now: func() time.Time { return testNow }}
	if rs, _ := p.CheckCertificate(context.Background(), c, nil); len(rs) != 0 {
		t.Errorf("nil addresses: reasons %v, want none", rs)
	}
	if rs, _ := p.CheckCertificate(context.Background(), c, []string{}); !slices.Equal(rs, []smimesync.Reason{smimesync.ReasonNoMatchingAddress}) {
		t.Errorf("empty addresses: reasons %v, want no-matching-address", rs)
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func countNil(rs [][]smimesync.Reason) int {
	n := 0
	for _, r := range rs {
		if r == nil {
			n++
		}
	}
	return n
}
