package revocation

import (
	"context"
	"crypto/x509"
	"math/big"
	"testing"

	"golang.org/x/crypto/ocsp"
)

// fuzzSerial is the serial number of the certificate the Check fuzzers ask
// about. The test PKI's authorities have fixed keys, so seeds signed in one
// fuzz worker verify in every other.
var fuzzSerial = big.NewInt(0xf022)

// FuzzCheckOCSP feeds Check an OCSP responder that answers with the fuzz
// input. Property: no panic, and garbage never makes a certificate good
// (nor revoked: only a validly signed answer may).
func FuzzCheckOCSP(f *testing.F) {
	p := newPKI(f)
	other := big.NewInt(0xf023)
	p.revoked[fuzzSerial.String()] = ocsp.KeyCompromise
	// Validly signed but unusable answers, and answers by the wrong signer;
	// none of them may give a status.
	for _, mode := range []string{"wrongkey", "stale", "future", "noeku", "rogue", "expiredresp", "otherissuer"} {
		f.Add(p.makeOCSP(fuzzSerial, mode))
	}
	delete(p.revoked, fuzzSerial.String())
	for _, mode := range []string{"wrongkey", "stale", "otherissuer"} {
		f.Add(p.makeOCSP(fuzzSerial, mode))
	}
	f.Add(p.makeOCSP(other, "direct"))    // about another certificate
	f.Add(p.makeOCSP(other, "delegated")) // idem, delegated responder
	f.Add(ocsp.UnauthorizedErrorResponse)
	f.Add([]byte{})
	leaf := p.leafSerial(fuzzSerial, []string{"fuzz"}, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		p.setFuzzBody(body)
		checkGarbage(t, p, leaf, []Method{OCSP})
	})
}

// FuzzCheckCRL is FuzzCheckOCSP for a CRL distribution point.
func FuzzCheckCRL(f *testing.F) {
	p := newPKI(f)
	p.revoked[big.NewInt(0x1234).String()] = ocsp.KeyCompromise
	for _, mode := range []string{"wrongkey", "otherca", "renamed", "stale", "onlyca"} {
		f.Add(p.crl(mode))
	}
	f.Add(readTestdata(f, "openssl-plain.crl"))
	f.Add(readTestdata(f, "openssl-idp_user.crl"))
	f.Add([]byte("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n"))
	leaf := p.leafSerial(fuzzSerial, nil, []string{"fuzz"})
	f.Fuzz(func(t *testing.T, body []byte) {
		p.setFuzzBody(body)
		checkGarbage(t, p, leaf, []Method{CRL})
	})
}

func checkGarbage(t *testing.T, p *testPKI, leaf *x509.Certificate, m []Method) {
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now, Methods: m, FailureTTL: -1}
	a, err := c.Lookup(context.Background(), leaf, p.ca.cert)
	if a.Status != unknown || err == nil {
		t.Fatalf("status %v, error %v from an answer that is not validly signed and fresh", a.Status, err)
	}
}

// FuzzParseIssuingDP: the issuingDistributionPoint parser never panics and
// never returns a contradictory scope.
func FuzzParseIssuingDP(f *testing.F) {
	for _, name := range []string{"idp_user", "idp_ca", "idp_reasons", "idp_indirect", "idp_attr", "idp_relative"} {
		rl, err := x509.ParseRevocationList(readTestdata(f, "openssl-"+name+".crl"))
		if err != nil {
			f.Fatal(err)
		}
		for _, ext := range rl.Extensions {
			if ext.Id.Equal(oidIssuingDP) {
				f.Add(ext.Value)
			}
		}
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		s, err := parseIssuingDP(der)
		if err != nil {
			return
		}
		if s.onlyUser && s.onlyCA {
			t.Fatal("scope both user-only and CA-only")
		}
		if !s.dpNamed && s.uris != nil {
			t.Fatal("URIs without a distribution point name")
		}
	})
}

// FuzzParseCertIDs: the CertID parser never panics; what it returns is
// complete.
func FuzzParseCertIDs(f *testing.F) {
	p := newPKI(f)
	for _, mode := range []string{"direct", "delegated", "otherissuer"} {
		f.Add(p.makeOCSP(fuzzSerial, mode))
	}
	f.Add(ocsp.TryLaterErrorResponse)
	f.Fuzz(func(t *testing.T, der []byte) {
		ids, err := parseCertIDs(der)
		if err != nil {
			return
		}
		for _, id := range ids {
			if id.serial == nil || id.hash == nil {
				t.Fatalf("incomplete CertID %+v", id)
			}
		}
	})
}
