package certparse_test

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/smimesync/go-smimesync/internal/certparse"
)

func readDER(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ecPublicKeyOID is the encoded id-ecPublicKey OID (1.2.840.10045.2.1).
var ecPublicKeyOID = []byte{0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01}

func TestParseBrainpool(t *testing.T) {
	der := readDER(t, "brainpoolP256r1-user.der")
	orig := bytes.Clone(der)
	if _, err := x509.ParseCertificate(der); err == nil {
		t.Fatal("precondition: crypto/x509 accepts the brainpool certificate")
	}
	cert, key, err := certparse.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(der, orig) {
		t.Fatal("Parse modified its input")
	}
	if key == nil || key.Curve != "brainpoolP256r1" || key.Bits != 256 || key.String() != "ECDSA brainpoolP256r1" {
		t.Fatalf("key = %+v", key)
	}
	if cert.PublicKey != nil || cert.PublicKeyAlgorithm != x509.UnknownPublicKeyAlgorithm {
		t.Errorf("PublicKey %v, algorithm %v: want none", cert.PublicKey, cert.PublicKeyAlgorithm)
	}
	// Every raw field holds the certificate's own bytes, the key's real
	// algorithm among them.
	if !bytes.Equal(cert.Raw, der) || !bytes.Contains(der, cert.RawTBSCertificate) ||
		!bytes.Contains(cert.RawSubjectPublicKeyInfo, ecPublicKeyOID) {
		t.Error("raw fields are not the certificate's bytes")
	}
	if len(cert.EmailAddresses) != 1 || cert.EmailAddresses[0] != "bea@example.org" || len(cert.SubjectKeyId) == 0 ||
		cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement ||
		len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageEmailProtection {
		t.Errorf("extensions not parsed: %q %x %v %v", cert.EmailAddresses, cert.SubjectKeyId, cert.KeyUsage, cert.ExtKeyUsage)
	}
	ca, _, err := certparse.Parse(readDER(t, "p256-ca.der"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		t.Errorf("the CA's signature on the certificate: %v", err)
	}
}

func TestParseSupportedKey(t *testing.T) {
	der := readDER(t, "p256-ca.der")
	cert, key, err := certparse.Parse(der)
	if err != nil || key != nil || cert.PublicKey == nil {
		t.Fatalf("cert %v, key %v, err %v: want crypto/x509's parse", cert, key, err)
	}
}

func TestParseUnknownCurve(t *testing.T) {
	der := readDER(t, "brainpoolP256r1-user.der")
	// brainpoolP256r1 is 1.3.36.3.3.2.8.1.1.7; make it …1.1.126.
	curve := []byte{0x06, 0x09, 0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07}
	i := bytes.Index(der, curve)
	if i < 0 {
		t.Fatal("curve OID not found")
	}
	der[i+len(curve)-1] = 0x7e
	_, key, err := certparse.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	if key.Curve != "1.3.36.3.3.2.8.1.1.126" || key.Bits != 0 {
		t.Errorf("key = %+v, want the curve by OID, size unknown", key)
	}
}

func TestParseOtherErrorsUnchanged(t *testing.T) {
	der := readDER(t, "brainpoolP256r1-user.der")
	for name, b := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("not a certificate"),
		"truncated": der[:len(der)-1],
	} {
		_, xerr := x509.ParseCertificate(b)
		_, key, err := certparse.Parse(b)
		if err == nil || key != nil || err.Error() != xerr.Error() {
			t.Errorf("%s: error %v, key %v; want crypto/x509's %v", name, err, key, xerr)
		}
	}
}
