package revocation_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/smimesync/go-smimesync/smimesync/revocation"
)

// A CA publishes a CRL over HTTP; the Checker reads it and finds Bob's
// certificate on it.
func ExampleChecker() {
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Example Issuing CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	ca := mustCert(x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey))

	crl := mustBytes(x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: big.NewInt(1002), RevocationTime: now.Add(-time.Minute), ReasonCode: 1},
		},
	}, ca, caKey))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(crl)
	}))
	defer srv.Close()

	issue := func(serial int64, name string) *x509.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return mustCert(x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			CRLDistributionPoints: []string{srv.URL + "/example.crl"},
		}, ca, key.Public(), caKey))
	}

	// The zero value (OCSP then CRL, soft-fail) refuses loopback and
	// private addresses; this example's CA publishes on loopback.
	c := &revocation.Checker{AllowHosts: []string{"127.0.0.1"}}
	for _, cert := range []*x509.Certificate{issue(1001, "Alice"), issue(1002, "Bob")} {
		a, err := c.Lookup(context.Background(), cert, ca)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(cert.Subject.CommonName, a.Status, "by", a.Method, "reason", a.Reason)
	}
	// Output:
	// Alice good by crl reason 0
	// Bob revoked by crl reason 1
}

// Without the issuer, nothing can be verified: the status is unknown and the
// error says why.
func ExampleChecker_Check_noIssuer() {
	c := &revocation.Checker{HardFail: true}
	cert := &x509.Certificate{Raw: []byte{0x30, 0x00}, SerialNumber: big.NewInt(7)}
	st, err := c.Check(context.Background(), cert, nil)
	fmt.Println(st)
	fmt.Println(err)
	// Output:
	// unknown
	// revocation: certificate e4f60d0aa6d7f3d3b6a6494b1c861b99f649c6f9ec51abaf201b20f297327c95 (serial 7): status unknown: revocation: issuer certificate unknown, revocation cannot be checked
}

func mustCert(der []byte, err error) *x509.Certificate {
	if err != nil {
		log.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		log.Fatal(err)
	}
	return cert
}

func mustBytes(b []byte, err error) []byte {
	if err != nil {
		log.Fatal(err)
	}
	return b
}
