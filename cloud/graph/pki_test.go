package graph_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// pki issues S/MIME certificates for tests from one CA, with one user key
// for all of them (what differs between certificates is the serial). The
// CA is valid around the test clock (internal/testclock).
type pki struct {
	ca     *testpki.CA
	userPK crypto.Signer
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	userKey, err := testpki.NewKey(testpki.ECDSA)
	if err != nil {
		t.Fatal(err)
	}
	now := testclock.Now()
	ca := testpki.MustNew(t, "", testpki.SerialNumber(1),
		testpki.Subject(pkix.Name{CommonName: "Fabrikam Mail CA", Organization: []string{"Fabrikam"}}),
		testpki.Validity(now.Add(-24*time.Hour), now.Add(10*365*24*time.Hour)))
	return &pki{ca: ca, userPK: userKey}
}

// issue returns the DER of an S/MIME certificate for email.
func (p *pki) issue(t testing.TB, email string, serial int64, notBefore, notAfter time.Time) []byte {
	t.Helper()
	return p.ca.MustIssue(t, testpki.Email(email), testpki.SerialNumber(serial), testpki.Key(p.userPK),
		testpki.Validity(notBefore, notAfter), testpki.KeyUsage(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement)).DER
}

// fakeCred is a credential for configuration tests that never sign in.
type fakeCred struct{}

func (fakeCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	// The real clock, not the test clock: azcore judges token expiry by it.
	return azcore.AccessToken{Token: "x", ExpiresOn: time.Now().Add(time.Hour)}, nil
}
