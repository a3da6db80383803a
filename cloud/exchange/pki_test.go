package exchange_test

import (
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testpki"
)

// pki issues S/MIME certificates for tests: one CA, one user key shared by
// every certificate (issuing is what matters here, not the keys). The CA
// is valid from 2024 to 2050, around the fixed clock (policyNow) of the
// end-to-end tests and their golden LDIF files.
type pki struct {
	ca      *testpki.CA
	userKey crypto.Signer
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	userKey, err := testpki.NewKey(testpki.ECDSA)
	if err != nil {
		t.Fatal(err)
	}
	ca := testpki.MustNew(t, "Contoso Test Mail CA", testpki.SerialNumber(1),
		testpki.Validity(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC)))
	return &pki{ca: ca, userKey: userKey}
}

// issue returns the DER of an S/MIME certificate for email.
func (p *pki) issue(t testing.TB, email string, serial int64, notBefore, notAfter time.Time) []byte {
	t.Helper()
	return p.ca.MustIssue(t, testpki.Email(email), testpki.SerialNumber(serial), testpki.Key(p.userKey),
		testpki.Validity(notBefore, notAfter), testpki.KeyUsage(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement)).DER
}
