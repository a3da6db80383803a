package ldaptest

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smimesync/go-smimesync/internal/cmssign"
	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// CA is a throwaway certificate authority for tests: it signs the servers'
// TLS certificates and the users' S/MIME certificates.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Key is its private key.
	Key crypto.Signer
	// PEM is Cert in PEM form, as written to a CA file.
	PEM []byte

	pki     *testpki.CA
	leafKey crypto.Signer
	serial  atomic.Int64
}

// NewCA makes a CA named name, with an ECDSA P-256 key, valid for ten
// years on both clocks: from an hour before the earlier of the real clock
// and the test clock (internal/testclock) to ten years after the later.
// The CA signs the servers' TLS certificates, which Go checks against the
// real clock, and the users' S/MIME certificates, which the code under
// test judges on the test clock.
func NewCA(name string) (*CA, error) {
	leafKey, err := testpki.NewKey(testpki.ECDSA)
	if err != nil {
		return nil, err
	}
	pki, err := testpki.New(name, testpki.SerialNumber(1), testpki.BothClocks(),
		testpki.Subject(pkix.Name{CommonName: name, Organization: []string{"smimesync tests"}}))
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: pki.Cert, Key: pki.Key, PEM: pki.PEM(), pki: pki, leafKey: leafKey}
	ca.serial.Store(time.Now().UnixNano())
	return ca, nil
}

var (
	userCAOnce sync.Once
	userCA     *CA
	userCAErr  error
)

// UserCA returns the process-wide CA that issues the users' test
// certificates (made on first use).
func UserCA() (*CA, error) {
	userCAOnce.Do(func() { userCA, userCAErr = NewCA("smimesync test S/MIME CA") })
	return userCA, userCAErr
}

// WriteServerTLS writes ca.pem, server.pem and server.key (mode 0600) into
// dir, for a server reachable as localhost and 127.0.0.1, and returns the
// CA file's path.
func (ca *CA) WriteServerTLS(dir string) (caFile string, err error) {
	// The real clock, not the test clock: the server's TLS certificate is
	// checked by Go's TLS client (and OpenSSL/GnuTLS) against time.Now.
	now := time.Now()
	srv, err := ca.pki.Issue(testpki.Clock(time.Now), testpki.SerialNumber(ca.serial.Add(1)),
		testpki.CommonName("localhost"), testpki.Validity(now.Add(-time.Hour), now.AddDate(2, 0, 0)),
		testpki.KeyUsage(x509.KeyUsageDigitalSignature), testpki.ExtKeyUsage(x509.ExtKeyUsageServerAuth),
		testpki.DNSName("localhost"), testpki.IPAddress(net.IPv4(127, 0, 0, 1)))
	if err != nil {
		return "", err
	}
	keyPEM, err := srv.KeyPEM()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	caFile = filepath.Join(dir, "ca.pem")
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{caFile, ca.PEM, 0o644},
		{filepath.Join(dir, "server.pem"), srv.PEM(), 0o644},
		{filepath.Join(dir, "server.key"), keyPEM, 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(f.name, f.data, f.mode); err != nil {
			return "", err
		}
	}
	return caFile, nil
}

// IssueSMIME returns a DER S/MIME certificate for mail (emailProtection,
// digitalSignature, the address in the SAN), valid from notBefore to
// notAfter. All certificates of one CA share one key pair: tests compare
// bytes, not keys, and signing stays cheap for 20,000 certificates.
func (ca *CA) IssueSMIME(mail string, notBefore, notAfter time.Time) ([]byte, error) {
	serial := ca.serial.Add(1)
	c, err := ca.pki.Issue(testpki.SerialNumber(serial), testpki.Key(ca.leafKey),
		testpki.CommonName(fmt.Sprintf("%s #%d", mail, serial)), testpki.Validity(notBefore, notAfter),
		testpki.KeyUsage(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement), testpki.Email(mail))
	if err != nil {
		return nil, err
	}
	return c.DER, nil
}

// SMIMEBlob returns a userSMIMECertificate value: a CMS SignedData holding
// der and the CA certificate, signed with der's key at the test clock's
// time (internal/testclock), as Outlook publishes it. The signed content
// is empty and detached.
func (ca *CA) SMIMEBlob(der []byte) ([]byte, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return cmssign.SignedData{
		Detached:     true,
		Signers:      []cmssign.Signer{{Cert: cert, Key: ca.leafKey, SigningTime: testclock.Now()}},
		Certificates: []*x509.Certificate{ca.Cert},
	}.Encode()
}

// UserCerts returns n fresh certificates for mail from [UserCA], valid from
// an hour before the test clock's now (internal/testclock) for a year: give
// the code under test testclock.Now as its clock.
func UserCerts(mail string, n int) ([][]byte, error) {
	ca, err := UserCA()
	if err != nil {
		return nil, err
	}
	now := testclock.Now()
	out := make([][]byte, n)
	for i := range out {
		if out[i], err = ca.IssueSMIME(mail, now.Add(-time.Hour), now.AddDate(1, 0, 0)); err != nil {
			return nil, err
		}
	}
	return out, nil
}
