package revocation

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openSSLCA(t testing.TB) *x509.Certificate {
	t.Helper()
	p, _ := pem.Decode(readTestdata(t, "openssl-ca.pem"))
	if p == nil {
		t.Fatal("testdata/openssl-ca.pem: no PEM block")
	}
	ca, err := x509.ParseCertificate(p.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestOpenSSLCRLs reads CRLs that OpenSSL made (testdata/gen.sh): the
// extensions that limit a CRL's scope are parsed from another tool's
// encoding, not only from what the tests build with Go.
func TestOpenSSLCRLs(t *testing.T) {
	ca := openSSLCA(t)
	plain, err := x509.ParseRevocationList(readTestdata(t, "openssl-plain.crl"))
	if err != nil {
		t.Fatal(err)
	}
	const cdp = "http://crl.example.test/openssl.crl"
	cert := func(serial int64, isCA bool, cdps ...string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), IsCA: isCA, CRLDistributionPoints: cdps}
	}
	revokedLeaf, goodLeaf := cert(0x1001, false, cdp), cert(0x1002, false, cdp)
	tests := []struct {
		file string
		cert *x509.Certificate
		now  time.Time // zero: a minute after ThisUpdate
		want error     // nil: revoked for serial 0x1001, good otherwise
	}{
		{file: "openssl-plain.crl", cert: revokedLeaf},
		{file: "openssl-plain.crl", cert: goodLeaf},
		{file: "openssl-plain.crl", cert: cert(0x1001, false)},
		{file: "openssl-plain.pem.crl", cert: revokedLeaf},
		{file: "openssl-plain.crl", cert: revokedLeaf, now: plain.NextUpdate, want: ErrStale},
		{file: "openssl-plain.crl", cert: revokedLeaf, now: plain.ThisUpdate.Add(-time.Hour), want: ErrStale},
		{file: "openssl-idp_user.crl", cert: revokedLeaf},
		{file: "openssl-idp_user.crl", cert: goodLeaf},
		{file: "openssl-idp_user.crl", cert: cert(0x1001, false, "http://crl.example.test/other.crl"), want: ErrUnsupportedCRL},
		{file: "openssl-idp_user.crl", cert: cert(0x1001, false), want: ErrUnsupportedCRL},
		{file: "openssl-idp_user.crl", cert: cert(0x1001, true, cdp), want: ErrUnsupportedCRL},
		{file: "openssl-idp_ca.crl", cert: revokedLeaf, want: ErrUnsupportedCRL},
		{file: "openssl-idp_ca.crl", cert: cert(0x1001, true)},
		{file: "openssl-idp_reasons.crl", cert: revokedLeaf, want: ErrUnsupportedCRL},
		{file: "openssl-idp_indirect.crl", cert: revokedLeaf, want: ErrUnsupportedCRL},
		{file: "openssl-idp_attr.crl", cert: revokedLeaf, want: ErrUnsupportedCRL},
		{file: "openssl-idp_relative.crl", cert: revokedLeaf, want: ErrUnsupportedCRL},
		{file: "openssl-delta.crl", cert: revokedLeaf, want: ErrUnsupportedCRL},
		{file: "openssl-ca.pem", cert: revokedLeaf, want: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = plain.ThisUpdate.Add(time.Minute)
			}
			c := &Checker{Now: func() time.Time { return now }}
			info, err := c.parseCRL(readTestdata(t, tt.file), ca)
			var a Answer
			if err == nil {
				a, err = info.lookup(cdp, tt.cert)
			}
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("error %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := good
			if tt.cert.SerialNumber.Int64() == 0x1001 {
				want = revoked
			}
			if a.Status != want {
				t.Fatalf("serial %x: %v, want %v", tt.cert.SerialNumber, a.Status, want)
			}
			if want == revoked && (a.Reason != ocsp.KeyCompromise || a.RevokedAt.IsZero()) {
				t.Errorf("revoked with reason %d at %v, want keyCompromise", a.Reason, a.RevokedAt)
			}
		})
	}
}

func TestOpenSSLCRLWrongIssuer(t *testing.T) {
	ca := openSSLCA(t)
	impostor := newCA(t, "OpenSSL Test CA", fixedKey(t, "impostor"), ca.NotBefore.Add(time.Hour)).cert
	c := &Checker{Now: func() time.Time { return ca.NotBefore.Add(time.Hour) }}
	for _, issuer := range []*x509.Certificate{impostor, newCA(t, "Other", fixedKey(t, "other"), ca.NotBefore).cert} {
		if _, err := c.parseCRL(readTestdata(t, "openssl-plain.crl"), issuer); !errors.Is(err, ErrBadSignature) {
			t.Errorf("issuer %s: error %v, want ErrBadSignature", issuer.Subject, err)
		}
	}
}

func TestParseIssuingDP(t *testing.T) {
	uri := func(tag byte, s string) []byte {
		// SEQUENCE { [0] { [0] { [tag] s } } }
		n := len(s)
		return append([]byte{0x30, byte(n + 6), 0xa0, byte(n + 4), 0xa0, byte(n + 2), tag, byte(n)}, s...)
	}
	tests := []struct {
		name string
		der  []byte
		want crlScope
		err  error
	}{
		{name: "empty sequence", der: []byte{0x30, 0x00}},
		{name: "onlyContainsUserCerts", der: []byte{0x30, 0x03, 0x81, 0x01, 0xff}, want: crlScope{onlyUser: true}},
		{name: "onlyContainsCACerts", der: []byte{0x30, 0x03, 0x82, 0x01, 0xff}, want: crlScope{onlyCA: true}},
		{name: "explicit FALSE", der: []byte{0x30, 0x03, 0x84, 0x01, 0x00}},
		{name: "URI", der: uri(0x86, "http://a/b.crl"), want: crlScope{dpNamed: true, uris: []string{"http://a/b.crl"}}},
		{name: "DNS name only", der: uri(0x82, "crl.example"), want: crlScope{dpNamed: true, uris: []string{}}},
		{name: "onlySomeReasons", der: []byte{0x30, 0x04, 0x83, 0x02, 0x07, 0x80}, err: ErrUnsupportedCRL},
		{name: "indirectCRL", der: []byte{0x30, 0x03, 0x84, 0x01, 0xff}, err: ErrUnsupportedCRL},
		{name: "onlyContainsAttributeCerts", der: []byte{0x30, 0x03, 0x85, 0x01, 0xff}, err: ErrUnsupportedCRL},
		{name: "nameRelativeToCRLIssuer", der: []byte{0x30, 0x04, 0xa0, 0x02, 0xa1, 0x00}, err: ErrUnsupportedCRL},
		{name: "user and CA", der: []byte{0x30, 0x06, 0x81, 0x01, 0xff, 0x82, 0x01, 0xff}, err: ErrMalformed},
		{name: "out of order", der: []byte{0x30, 0x06, 0x82, 0x01, 0xff, 0x81, 0x01, 0xff}, err: ErrMalformed},
		{name: "long boolean", der: []byte{0x30, 0x04, 0x81, 0x02, 0xff, 0xff}, err: ErrMalformed},
		{name: "trailing byte", der: []byte{0x30, 0x03, 0x81, 0x01, 0xff, 0x00}, err: ErrMalformed},
		{name: "truncated", der: []byte{0x30, 0x05, 0xa0, 0x03, 0xa0}, err: ErrMalformed},
		{name: "not a sequence", der: []byte{0x04, 0x00}, err: ErrMalformed},
		{name: "nothing", der: nil, err: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIssuingDP(tt.der)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if got.onlyUser != tt.want.onlyUser || got.onlyCA != tt.want.onlyCA || got.dpNamed != tt.want.dpNamed ||
				!slices.Equal(got.uris, tt.want.uris) || (got.uris == nil) != (tt.want.uris == nil) {
				t.Fatalf("scope %+v, want %+v", got, tt.want)
			}
		})
	}
}
