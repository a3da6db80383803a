package ldaptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smimesync/go-smimesync/internal/cmssign"
	"github.com/smimesync/go-smimesync/internal/testclock"
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

	leafKey *ecdsa.PrivateKey
	serial  atomic.Int64
}

// NewCA makes a CA named name, with an ECDSA P-256 key, valid for ten
// years on both clocks: from an hour before the earlier of the real clock
// and the test clock (internal/testclock) to ten years after the later.
// The CA signs the servers' TLS certificates, which Go checks against the
// real clock, and the users' S/MIME certificates, which the code under
// test judges on the test clock.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now, test := time.Now(), testclock.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"smimesync tests"}},
		NotBefore:             minTime(now, test).Add(-time.Hour),
		NotAfter:              maxTime(now, test).AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: cert, Key: key, leafKey: leafKey,
		PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	ca.serial.Store(now.UnixNano())
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	// The real clock, not the test clock: the server's TLS certificate is
	// checked by Go's TLS client (and OpenSSL/GnuTLS) against time.Now.
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
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
		{filepath.Join(dir, "server.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644},
		{filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600},
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
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(serial),
		Subject:        pkix.Name{CommonName: fmt.Sprintf("%s #%d", mail, serial)},
		NotBefore:      notBefore,
		NotAfter:       notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: []string{mail},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &ca.leafKey.PublicKey, ca.Key)
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

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
