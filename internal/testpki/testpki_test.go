package testpki_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// TestChainVerifies: a leaf issued by an intermediate of a root verifies
// for e-mail protection at the test clock's now, and carries the
// defaults the package documents.
func TestChainVerifies(t *testing.T) {
	root := testpki.MustNew(t, "Test Root")
	sub := root.MustIntermediate(t, "Test Issuing CA", testpki.CRLDistributionPoints("http://127.0.0.1/ca.crl"))
	leaf := sub.MustIssue(t, testpki.Email("alice@example.com"), testpki.OCSPServer("http://127.0.0.1/ocsp"))
	c := leaf.X509()
	if c == nil {
		t.Fatal("the leaf does not parse")
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Cert)
	inter.AddCert(sub.Cert)
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: testclock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if c.Subject.CommonName != "alice@example.com" || c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement ||
		c.BasicConstraintsValid || len(c.OCSPServer) != 1 || !bytes.Equal(c.AuthorityKeyId, sub.Cert.SubjectKeyId) {
		t.Errorf("leaf: CN %q, usage %v, basic constraints %v, OCSP %q, AKI %x (CA SKI %x)",
			c.Subject.CommonName, c.KeyUsage, c.BasicConstraintsValid, c.OCSPServer, c.AuthorityKeyId, sub.Cert.SubjectKeyId)
	}
	if !sub.Cert.IsCA || len(sub.Cert.CRLDistributionPoints) != 1 {
		t.Errorf("intermediate: IsCA %v, CDP %q", sub.Cert.IsCA, sub.Cert.CRLDistributionPoints)
	}
	if c.SerialNumber.BitLen() < 100 {
		t.Errorf("default serial %x: want 16 random bytes", c.SerialNumber)
	}
	if b, _ := pem.Decode(leaf.PEM()); b == nil || !bytes.Equal(b.Bytes, leaf.DER) {
		t.Error("PEM does not hold the DER")
	}
}

// TestClockPassesOn: a CA's clock sets the default validity of what it
// issues; explicit validity wins.
func TestClockPassesOn(t *testing.T) {
	at := time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)
	ca := testpki.MustNew(t, "Clocked CA", testpki.Clock(func() time.Time { return at }))
	if !ca.Cert.NotBefore.Equal(at.AddDate(-5, 0, 0)) || !ca.Cert.NotAfter.Equal(at.AddDate(10, 0, 0)) {
		t.Errorf("CA valid %s to %s, want five years before %s to ten after", ca.Cert.NotBefore, ca.Cert.NotAfter, at)
	}
	c := ca.MustIssue(t).X509()
	if !c.NotBefore.Equal(at.Add(-time.Hour)) || !c.NotAfter.Equal(at.AddDate(1, 0, 0)) {
		t.Errorf("leaf valid %s to %s, want an hour before %s for a year", c.NotBefore, c.NotAfter, at)
	}
	end := at.AddDate(0, 0, 3)
	if c := ca.MustIssue(t, testpki.NotAfter(end)).X509(); !c.NotAfter.Equal(end) || !c.NotBefore.Equal(at.Add(-time.Hour)) {
		t.Errorf("NotAfter: valid %s to %s", c.NotBefore, c.NotAfter)
	}
}

// TestKeyTypes: each key type issues, with the usage that fits it.
func TestKeyTypes(t *testing.T) {
	ca := testpki.MustNew(t, "Ed CA", testpki.FreshKey(testpki.Ed25519))
	if _, ok := ca.Key.(ed25519.PrivateKey); !ok {
		t.Fatalf("CA key %T, want Ed25519", ca.Key)
	}
	for _, tc := range []struct {
		opt  testpki.Option
		want x509.KeyUsage
	}{
		{testpki.Key(testpki.RSAKey(0)), x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{testpki.FreshKey(testpki.ECDSA), x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement},
		{testpki.FreshKey(testpki.Ed25519), x509.KeyUsageDigitalSignature},
	} {
		c := ca.MustIssue(t, tc.opt).X509()
		if c.KeyUsage != tc.want {
			t.Errorf("%T key: usage %v, want %v", c.PublicKey, c.KeyUsage, tc.want)
		}
	}
	if testpki.RSAKey(3) != testpki.RSAKey(11) || testpki.RSAKey(3) == testpki.RSAKey(4) {
		t.Error("RSAKey: want a pool of eight")
	}
}

// TestDeterministicKey: a seed makes the same key twice, another seed
// another key, for each type.
func TestDeterministicKey(t *testing.T) {
	for _, kt := range []testpki.KeyType{testpki.ECDSA, testpki.Ed25519, testpki.RSA} {
		a, err := testpki.DeterministicKey(kt, [32]byte{1})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := testpki.DeterministicKey(kt, [32]byte{1})
		c, _ := testpki.DeterministicKey(kt, [32]byte{2})
		type eq interface {
			Equal(x crypto.PrivateKey) bool
		}
		if !a.(eq).Equal(b) || a.(eq).Equal(c) {
			t.Errorf("%s: same seed equal %v, other seed equal %v", kt, a.(eq).Equal(b), a.(eq).Equal(c))
		}
		if k, ok := a.(*rsa.PrivateKey); ok && k.N.BitLen() != 2048 {
			t.Errorf("RSA modulus of %d bits", k.N.BitLen())
		}
	}
}

// TestUnparseable: an extension Go refuses to read back still makes a
// certificate; X509 is nil.
func TestUnparseable(t *testing.T) {
	ca := testpki.MustNew(t, "CA")
	aki, _ := asn1.Marshal(struct {
		ID []byte `asn1:"optional,tag:0"`
	}{ca.Cert.SubjectKeyId})
	c := ca.MustIssue(t, testpki.Extension(pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 35}, Critical: true, Value: aki}))
	if len(c.DER) == 0 || c.X509() != nil {
		t.Errorf("DER %d bytes, parsed %v: want bytes and no parse", len(c.DER), c.X509() != nil)
	}
}

// TestBothClocks: a CA made with BothClocks is valid at the real and the
// test clock's now (the test means most when run shifted).
func TestBothClocks(t *testing.T) {
	ca := testpki.MustNew(t, "Both", testpki.BothClocks())
	for _, now := range []time.Time{time.Now(), testclock.Now()} {
		if now.Before(ca.Cert.NotBefore) || now.After(ca.Cert.NotAfter) {
			t.Errorf("%s outside %s to %s", now, ca.Cert.NotBefore, ca.Cert.NotAfter)
		}
	}
}
