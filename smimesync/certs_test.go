package smimesync_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/smimesync/go-smimesync/internal/cmssign"
	"github.com/smimesync/go-smimesync/internal/testclock"
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

// rsaKeys caches a few RSA keys: generating one per certificate would make
// the tests slow for nothing.
var rsaKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 4)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             testNow.Add(-10 * 365 * 24 * time.Hour),
		NotAfter:              testNow.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, serial: 100}
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
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: l.email},
		NotBefore:             l.notBefore,
		NotAfter:              l.notAfter,
		KeyUsage:              l.usage,
		ExtKeyUsage:           l.eku,
		BasicConstraintsValid: true,
		IsCA:                  l.isCA,
	}
	if l.email != "" {
		tmpl.EmailAddresses = []string{l.email}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
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
