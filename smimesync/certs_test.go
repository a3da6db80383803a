package smimesync_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/smimesync/go-smimesync/internal/cmssign"
	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// This file makes the certificates the policy and Syncer tests need, with
// Go's crypto, at test time.

// testNow is the clock of the policy and Syncer tests: the test clock
// (internal/testclock, shifted by SMIMESYNC_TEST_CLOCK_SHIFT) read once,
// so that every test of the package sees one instant. Certificates are
// valid around it, blobs are signed at it, and Policy.Now and Syncer.Now
// return it.
var testNow = testclock.Now().UTC().Truncate(time.Second)

type testCA struct {
	cert   *x509.Certificate
	key    crypto.Signer
	serial int64
	mu     sync.Mutex
}

// rsaKeys returns the test PKI's cached RSA keys (internal/testpki):
// generating one per certificate would make the tests slow for nothing.
func rsaKeys() []*rsa.PrivateKey {
	return []*rsa.PrivateKey{testpki.RSAKey(0), testpki.RSAKey(1), testpki.RSAKey(2), testpki.RSAKey(3)}
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	ca := testpki.MustNew(t, name, testpki.Clock(func() time.Time { return testNow }), testpki.SerialNumber(1),
		testpki.Validity(testNow.Add(-10*365*24*time.Hour), testNow.Add(10*365*24*time.Hour)))
	return &testCA{cert: ca.Cert, key: ca.Key, serial: 100}
}

// leaf describes a certificate to issue. Zero fields get defaults: valid a
// year around testNow, digitalSignature|keyEncipherment, emailProtection.
type leaf struct {
	email               string
	notBefore, notAfter time.Time
	usage               x509.KeyUsage
	eku                 []x509.ExtKeyUsage
	isCA                bool
	key                 int // which cached RSA key
}

func (ca *testCA) issue(t testing.TB, l leaf) []byte {
	t.Helper()
	der, _ := ca.issueKey(t, l)
	return der
}

func (ca *testCA) issueKey(t testing.TB, l leaf) ([]byte, *rsa.PrivateKey) {
	t.Helper()
	if l.notBefore.IsZero() {
		l.notBefore = testNow.Add(-180 * 24 * time.Hour)
	}
	if l.notAfter.IsZero() {
		l.notAfter = testNow.Add(180 * 24 * time.Hour)
	}
	if l.usage == 0 {
		l.usage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	if l.eku == nil {
		l.eku = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
	}
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()
	key := rsaKeys()[l.key%4]
	opts := []testpki.Option{testpki.SerialNumber(serial), testpki.CommonName(l.email), testpki.Key(key),
		testpki.Validity(l.notBefore, l.notAfter), testpki.KeyUsage(l.usage), testpki.ExtKeyUsage(l.eku...),
		testpki.BasicConstraints(l.isCA)}
	if l.email != "" {
		opts = append(opts, testpki.Email(l.email))
	}
	// ca may wrap a certificate made elsewhere (a re-encoded name): issue
	// with its certificate and key as they are.
	issuer := &testpki.CA{Cert: ca.cert, Key: ca.key}
	return issuer.MustIssue(t, opts...).DER, key
}

// signedBlob makes a userSMIMECertificate value: a CMS SignedData signed by
// the holder of certDER at testNow, carrying it and the CA.
func (ca *testCA) signedBlob(t testing.TB, certDER []byte, key crypto.Signer) []byte {
	t.Helper()
	return ca.signedBlobAt(t, certDER, key, testNow)
}

// signedBlobAt is signedBlob with the signingTime attribute set to at.
func (ca *testCA) signedBlobAt(t testing.TB, certDER []byte, key crypto.Signer, at time.Time) []byte {
	t.Helper()
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		t.Fatal(err)
	}
	der, err := cmssign.Sign([]byte("capabilities"), cert, key, []*x509.Certificate{ca.cert}, at)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// certsOnly makes a degenerate (certificates-only) SignedData.
func certsOnly(t testing.TB, certs ...[]byte) []byte {
	t.Helper()
	var all []byte
	for _, c := range certs {
		all = append(all, c...)
	}
	der, err := pkcs7.DegenerateCertificate(all)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
