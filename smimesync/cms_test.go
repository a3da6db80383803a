package smimesync_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/cmssign"
	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/internal/testpki"
	"github.com/smimesync/go-smimesync/smimesync"
)

// testPKI is a small CA and user certificates, made once per test binary.
type testPKI struct {
	caKey   crypto.Signer
	ca      *x509.Certificate
	userKey *rsa.PrivateKey
	user    *x509.Certificate // signing and encryption, with a subjectKeyIdentifier
	enc     *x509.Certificate // encryption only, same key
	badAKI  *x509.Certificate // critical authority key identifier: Go refuses it
	many    []*x509.Certificate
}

var (
	pkiOnce sync.Once
	pki     *testPKI
	pkiErr  error
)

func loadPKI(tb testing.TB) *testPKI {
	tb.Helper()
	pkiOnce.Do(func() { pki, pkiErr = newTestPKI() })
	if pkiErr != nil {
		tb.Fatal(pkiErr)
	}
	return pki
}

func newTestPKI() (*testPKI, error) {
	p := &testPKI{userKey: testpki.RSAKey(7)} // a key no testCA certificate uses
	now := testclock.Now().Truncate(time.Second)
	ca, err := testpki.New("", testpki.Clock(func() time.Time { return now }), testpki.SerialNumber(1),
		testpki.Subject(pkix.Name{CommonName: "smimesync Test CA", Organization: []string{"smimesync"}}),
		testpki.Validity(now.Add(-time.Hour), now.Add(24*time.Hour)))
	if err != nil {
		return nil, err
	}
	p.ca, p.caKey = ca.Cert, ca.Key
	leaf := func(serial int64, cn, email string, ku x509.KeyUsage, extra []pkix.Extension) (*x509.Certificate, error) {
		opts := []testpki.Option{testpki.SerialNumber(serial), testpki.CommonName(cn), testpki.Email(email),
			testpki.Key(p.userKey), testpki.KeyUsage(ku),
			testpki.SubjectKeyID([]byte{0x5a, 0x5a, byte(serial >> 8), byte(serial)})}
		for _, e := range extra {
			opts = append(opts, testpki.Extension(e))
		}
		c, err := ca.Issue(opts...)
		if err != nil {
			return nil, err
		}
		if extra != nil {
			// Go refuses to parse what it was asked to write: keep
			// just the DER.
			return &x509.Certificate{Raw: c.DER}, nil
		}
		if x := c.X509(); x != nil {
			return x, nil
		}
		return nil, fmt.Errorf("certificate %d does not parse", serial)
	}
	if p.user, err = leaf(10, "Alice Example", "Alice@Example.org", x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, nil); err != nil {
		return nil, err
	}
	if p.enc, err = leaf(11, "Alice Example (encryption)", "alice@example.org", x509.KeyUsageKeyEncipherment, nil); err != nil {
		return nil, err
	}
	aki, err := asn1.Marshal(struct {
		ID []byte `asn1:"optional,tag:0"`
	}{p.ca.SubjectKeyId})
	if err != nil {
		return nil, err
	}
	if p.badAKI, err = leaf(12, "Critical AKI", "aki@example.org", x509.KeyUsageDigitalSignature,
		[]pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 35}, Critical: true, Value: aki}}); err != nil {
		return nil, err
	}
	for i := range 20 {
		c, err := leaf(int64(100+i), fmt.Sprintf("User %d", i), fmt.Sprintf("user%d@example.org", i), x509.KeyUsageDigitalSignature, nil)
		if err != nil {
			return nil, err
		}
		p.many = append(p.many, c)
	}
	return p, nil
}

// writeFiles writes the PKI as PEM files into a new temporary directory.
func (p *testPKI) writeFiles(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	certPEM := func(certs ...*x509.Certificate) []byte {
		var b []byte
		for _, c := range certs {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		return b
	}
	key, err := x509.MarshalPKCS8PrivateKey(p.userKey)
	if err != nil {
		tb.Fatal(err)
	}
	files := map[string][]byte{
		"ca.pem":   certPEM(p.ca),
		"user.pem": certPEM(p.user),
		"user.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}),
		"enc.pem":  certPEM(p.enc),
		"bad.pem":  certPEM(p.badAKI),
		"many.pem": certPEM(p.many...),
		"msg.txt":  []byte("Content-Type: text/plain\r\n\r\nsmimesync test message\r\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// opensslBlob runs openssl in dir to write out.p7 and returns it.
func opensslBlob(tb testing.TB, dir string, args ...string) []byte {
	tb.Helper()
	runOpenSSL(tb, dir, append(args, "-out", "out.p7")...)
	b, err := os.ReadFile(filepath.Join(dir, "out.p7"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var (
	signArgs   = []string{"cms", "-sign", "-in", "msg.txt", "-signer", "user.pem", "-inkey", "user.key", "-certfile", "ca.pem", "-outform", "DER", "-nodetach"}
	streamArgs = []string{"cms", "-sign", "-stream", "-in", "msg.txt", "-signer", "user.pem", "-inkey", "user.key", "-certfile", "ca.pem", "-outform", "DER", "-nodetach"}
)

func fingerprints(certs []*smimesync.Certificate) []smimesync.Fingerprint {
	var out []smimesync.Fingerprint
	for _, c := range certs {
		out = append(out, c.SHA256())
	}
	return out
}

func fp(der []byte) smimesync.Fingerprint { return sha256.Sum256(der) }

// wantParseError checks that err is a *ParseError with the reason and the
// value's fingerprint.
func wantParseError(t *testing.T, value []byte, b *smimesync.Blob, err error, reason smimesync.Reason) *smimesync.ParseError {
	t.Helper()
	var pe *smimesync.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("ParseSMIMECertificate = %v, %v; want a *ParseError (%s)", b, err, reason)
	}
	if pe.Reason != reason {
		t.Errorf("Reason = %s (%v), want %s", pe.Reason, err, reason)
	}
	if pe.Fingerprint != fp(value) {
		t.Errorf("Fingerprint = %s, want the value's SHA-256", pe.Fingerprint)
	}
	if b != nil {
		t.Errorf("Blob = %+v, want nil with an error", b)
	}
	return pe
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pemCertificate(t testing.TB, name string) []byte {
	t.Helper()
	block, _ := pem.Decode(readTestdata(t, name))
	if block == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	return block.Bytes
}

func TestParseSMIMECertificateRFC9216(t *testing.T) {
	alice := pemCertificate(t, "rfc9216/certs/lamps-alice.crt")
	carlos := pemCertificate(t, "rfc9216/certs/lamps-carlos.crt")
	t.Run("signedByAliceRSA", func(t *testing.T) {
		b, err := smimesync.ParseSMIMECertificate(readTestdata(t, "rfc9216/cms-der/signedByAliceRSA.p7m"))
		if err != nil {
			t.Fatal(err)
		}
		if b.BER || !b.Content || !b.Verified || b.VerifyError != nil {
			t.Errorf("BER/Content/Verified/VerifyError = %v/%v/%v/%v, want false/true/true/nil", b.BER, b.Content, b.Verified, b.VerifyError)
		}
		if got := fingerprints(b.Certificates); !slices.Equal(got, []smimesync.Fingerprint{fp(alice)}) || len(b.Rejected) != 0 {
			t.Errorf("certificates = %v (rejected %v), want Alice's only", got, b.Rejected)
		}
		if len(b.Signers) != 1 || b.Signers[0].Certificate != b.Certificates[0] {
			t.Fatalf("Signers = %+v, want one, linked to Alice's certificate", b.Signers)
		}
		s := b.Signers[0]
		if s.Issuer != "CN=Sample LAMPS RSA Certification Authority,OU=LAMPS WG,O=IETF" || s.Serial != b.Certificates[0].Serial.String() {
			t.Errorf("signer = %q serial %s", s.Issuer, s.Serial)
		}
	})
	t.Run("signedByAliceRSAPSS", func(t *testing.T) {
		// The value parses. pkcs7 v0.2.3 knows no RSASSA-PSS
		// (1.2.840.113549.1.1.10) signature algorithm, so the
		// signature cannot be checked: ErrCannotVerify, not invalid.
		b, err := smimesync.ParseSMIMECertificate(readTestdata(t, "rfc9216/cms-der/signedByAliceRSAPSS.p7m"))
		if err != nil {
			t.Fatal(err)
		}
		if got := fingerprints(b.Certificates); !slices.Equal(got, []smimesync.Fingerprint{fp(alice)}) {
			t.Errorf("certificates = %v, want Alice's", got)
		}
		if len(b.Signers) != 1 || b.Signers[0].Certificate == nil {
			t.Errorf("Signers = %+v, want one linked to Alice", b.Signers)
		}
		if b.Verified || !errors.Is(b.VerifyError, smimesync.ErrCannotVerify) || errors.Is(b.VerifyError, smimesync.ErrSignatureInvalid) ||
			!strings.Contains(b.VerifyError.Error(), "1.2.840.113549.1.1.10") {
			t.Errorf("Verified/VerifyError = %v/%v, want false and ErrCannotVerify naming RSASSA-PSS", b.Verified, b.VerifyError)
		}
	})
	t.Run("signedByCarlosEd25519", func(t *testing.T) {
		// pkcs7 v0.2.3 has no Ed25519 signatures either.
		b, err := smimesync.ParseSMIMECertificate(readTestdata(t, "rfc9216/cms-der/signedByCarlosEd25519.p7m"))
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Certificates) != 1 || b.Certificates[0].SHA256() != fp(carlos) || b.Certificates[0].KeyType != "Ed25519" {
			t.Errorf("certificates = %v, want Carlos's Ed25519 one", fingerprints(b.Certificates))
		}
		if len(b.Signers) != 1 || b.Signers[0].Certificate != b.Certificates[0] {
			t.Errorf("Signers = %+v, want one linked to Carlos", b.Signers)
		}
		if b.Verified || !errors.Is(b.VerifyError, smimesync.ErrCannotVerify) || !strings.Contains(b.VerifyError.Error(), "1.3.101.112") {
			t.Errorf("Verified/VerifyError = %v/%v, want ErrCannotVerify naming Ed25519", b.Verified, b.VerifyError)
		}
	})
	t.Run("signedByCarlosDetached", func(t *testing.T) {
		b, err := smimesync.ParseSMIMECertificate(readTestdata(t, "rfc9216/cms-der/signedByCarlosDetached.p7m"))
		if err != nil {
			t.Fatal(err)
		}
		if b.Content {
			t.Errorf("Content = true for detached content")
		}
		if b.Verified || !errors.Is(b.VerifyError, smimesync.ErrDetachedContent) || !errors.Is(b.VerifyError, smimesync.ErrCannotVerify) ||
			!strings.Contains(b.VerifyError.Error(), "detached content not available") {
			t.Errorf("Verified/VerifyError = %v/%v, want detached content not available", b.Verified, b.VerifyError)
		}
		// SignerInfo v3: identified by subjectKeyIdentifier.
		if len(b.Signers) != 1 {
			t.Fatalf("Signers = %+v, want one", b.Signers)
		}
		s := b.Signers[0]
		if len(s.SubjectKeyID) == 0 || s.Issuer != "" || s.Certificate == nil || s.Certificate.SHA256() != fp(carlos) {
			t.Errorf("signer = %+v, want Carlos by subjectKeyIdentifier", s)
		}
	})
	t.Run("signedByAliceAndCarlosNoCerts", func(t *testing.T) {
		v := readTestdata(t, "rfc9216/cms-der/signedByAliceAndCarlosNoCerts.p7m")
		b, err := smimesync.ParseSMIMECertificate(v)
		wantParseError(t, v, b, err, smimesync.ReasonNoCertificates)
	})
	for _, name := range []string{"encryptedForBobAndDana", "encryptedForBobRSAOaep", "encryptedKekri"} {
		t.Run(name, func(t *testing.T) {
			v := readTestdata(t, "rfc9216/cms-der/"+name+".p7m")
			b, err := smimesync.ParseSMIMECertificate(v)
			wantParseError(t, v, b, err, smimesync.ReasonWrongContentType)
			if !strings.Contains(err.Error(), "1.2.840.113549.1.7.3") {
				t.Errorf("err = %v, want it to name EnvelopedData's OID", err)
			}
		})
	}
	for _, name := range []string{"authEnvelopedForBobChaCha20Poly1305", "authEnvelopedForDanaX25519HKDF"} {
		t.Run(name, func(t *testing.T) {
			v := readTestdata(t, "rfc9216/cms-der/"+name+".p7m")
			b, err := smimesync.ParseSMIMECertificate(v)
			wantParseError(t, v, b, err, smimesync.ReasonWrongContentType)
			if !strings.Contains(err.Error(), "1.2.840.113549.1.9.16.1.23") {
				t.Errorf("err = %v, want it to name AuthEnvelopedData's OID", err)
			}
		})
	}
}

func TestParseSMIMECertificateSecuritySettings(t *testing.T) {
	// Outlook's security-settings format: little-endian tag-length-value.
	for _, v := range [][]byte{
		{0x01, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00},
		{0x06, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x08, 0x00, 0x20, 0x00, 0x00, 0x00},
		{0xff},
	} {
		b, err := smimesync.ParseSMIMECertificate(v)
		wantParseError(t, v, b, err, smimesync.ReasonSecuritySettings)
		if !errors.Is(err, smimesync.ErrSecuritySettings) {
			t.Errorf("err = %v, want it to wrap ErrSecuritySettings", err)
		}
	}
}

func TestParseSMIMECertificateMalformed(t *testing.T) {
	alice := readTestdata(t, "rfc9216/cms-der/signedByAliceRSA.p7m")
	tests := []struct {
		name  string
		value []byte
		is    error
	}{
		{"empty", nil, nil},
		{"a lone SEQUENCE header", []byte{0x30}, nil},
		{"empty SEQUENCE", []byte{0x30, 0x00}, nil},
		{"trailing byte", append(bytes.Clone(alice), 0), nil},
		{"too large", append([]byte{0x30}, make([]byte, smimesync.MaxValueSize)...), smimesync.ErrValueTooLarge},
		{"data content type", mustHex(t, "300f06092a864886f70d010701a0020400"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := smimesync.ParseSMIMECertificate(tt.value)
			reason := smimesync.ReasonUnparseable
			if tt.name == "data content type" {
				reason = smimesync.ReasonWrongContentType
			}
			wantParseError(t, tt.value, b, err, reason)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.is)
			}
		})
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	var b []byte
	for i := 0; i+1 < len(s); i += 2 {
		var c byte
		if _, err := fmt.Sscanf(s[i:i+2], "%02x", &c); err != nil {
			t.Fatal(err)
		}
		b = append(b, c)
	}
	return b
}

func TestParseSMIMECertificateOpenSSL(t *testing.T) {
	p := loadPKI(t)
	dir := p.writeFiles(t)
	der := opensslBlob(t, dir, signArgs...)
	ber := opensslBlob(t, dir, streamArgs...)
	wantCerts := []smimesync.Fingerprint{fp(p.user.Raw), fp(p.ca.Raw)}

	checkSigned := func(t *testing.T, b *smimesync.Blob) {
		t.Helper()
		if !b.Content || !b.Verified || b.VerifyError != nil {
			t.Errorf("Content/Verified/VerifyError = %v/%v/%v, want true/true/nil", b.Content, b.Verified, b.VerifyError)
		}
		got := fingerprints(b.Certificates)
		slices.SortFunc(got, func(a, b smimesync.Fingerprint) int { return bytes.Compare(a[:], b[:]) })
		want := slices.Clone(wantCerts)
		slices.SortFunc(want, func(a, b smimesync.Fingerprint) int { return bytes.Compare(a[:], b[:]) })
		if !slices.Equal(got, want) || len(b.Rejected) != 0 {
			t.Errorf("certificates = %v, rejected %v; want the user's and the CA's", got, b.Rejected)
		}
		if len(b.Signers) != 1 || b.Signers[0].Certificate == nil || b.Signers[0].Certificate.SHA256() != fp(p.user.Raw) {
			t.Fatalf("Signers = %+v, want one linked to the user", b.Signers)
		}
		if c := b.Signers[0].Certificate; !slices.Equal(c.Emails, []string{"alice@example.org"}) || !c.CanEncrypt || !c.CanSign {
			t.Errorf("signer certificate Emails/CanEncrypt/CanSign = %q/%v/%v", c.Emails, c.CanEncrypt, c.CanSign)
		}
	}

	t.Run("DER", func(t *testing.T) {
		if der[0] != 0x30 || der[1] == 0x80 {
			t.Fatalf("openssl wrote % x…, want definite-length DER", der[:2])
		}
		b, err := smimesync.ParseSMIMECertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if b.BER || !bytes.Equal(b.Raw, der) || b.SHA256 != fp(der) {
			t.Errorf("BER/Raw/SHA256 wrong for a DER value")
		}
		checkSigned(t, b)
		// openssl adds smimeCapabilities by default; what it put there,
		// by its own account:
		want := opensslCapabilities(t, dir, der)
		if got := b.Signers[0].Capabilities; !slices.EqualFunc(got, want, asn1.ObjectIdentifier.Equal) {
			t.Errorf("Capabilities = %v, openssl says %v", got, want)
		}
		if b.Signers[0].EncryptionKeyPreference != nil {
			t.Errorf("EncryptionKeyPreference = %+v, want nil", b.Signers[0].EncryptionKeyPreference)
		}
	})
	t.Run("BER stream", func(t *testing.T) {
		if ber[1] != 0x80 {
			t.Fatalf("openssl -stream wrote % x…, want an indefinite length", ber[:2])
		}
		b, err := smimesync.ParseSMIMECertificate(ber)
		if err != nil {
			t.Fatal(err)
		}
		if !b.BER || !bytes.Equal(b.Raw, ber) || b.SHA256 != fp(ber) {
			t.Errorf("BER/Raw/SHA256 = %v/…/%s; want true, the value as given and its SHA-256", b.BER, b.SHA256)
		}
		checkSigned(t, b)
		bd, err := smimesync.ParseSMIMECertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(fingerprints(b.Certificates), fingerprints(bd.Certificates)) {
			t.Errorf("BER and DER blobs carry different certificates")
		}
		if !slices.EqualFunc(b.Signers[0].Capabilities, bd.Signers[0].Capabilities, asn1.ObjectIdentifier.Equal) {
			t.Errorf("BER and DER capabilities differ")
		}
	})
	t.Run("signer by subjectKeyIdentifier", func(t *testing.T) {
		b, err := smimesync.ParseSMIMECertificate(opensslBlob(t, dir, append(slices.Clone(signArgs), "-keyid")...))
		if err != nil {
			t.Fatal(err)
		}
		checkSigned(t, b)
		if s := b.Signers[0]; !bytes.Equal(s.SubjectKeyID, p.user.SubjectKeyId) || s.Issuer != "" {
			t.Errorf("signer = %+v, want it identified by the user's key identifier", s)
		}
	})
	t.Run("detached", func(t *testing.T) {
		args := slices.DeleteFunc(slices.Clone(signArgs), func(s string) bool { return s == "-nodetach" })
		b, err := smimesync.ParseSMIMECertificate(opensslBlob(t, dir, args...))
		if err != nil {
			t.Fatal(err)
		}
		if b.Content || b.Verified || !errors.Is(b.VerifyError, smimesync.ErrDetachedContent) {
			t.Errorf("Content/Verified/VerifyError = %v/%v/%v, want detached", b.Content, b.Verified, b.VerifyError)
		}
		if len(b.Certificates) != 2 || len(b.Signers) != 1 {
			t.Errorf("%d certificates, %d signers; want 2 and 1", len(b.Certificates), len(b.Signers))
		}
	})
	t.Run("certificates only", func(t *testing.T) {
		v := opensslBlob(t, dir, "crl2pkcs7", "-nocrl", "-certfile", "user.pem", "-certfile", "ca.pem", "-outform", "DER")
		b, err := smimesync.ParseSMIMECertificate(v)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(fingerprints(b.Certificates), wantCerts) {
			t.Errorf("certificates = %v, want user then CA", fingerprints(b.Certificates))
		}
		if b.Content || len(b.Signers) != 0 || b.Verified || b.VerifyError != nil {
			t.Errorf("Content/Signers/Verified/VerifyError = %v/%d/%v/%v, want a bag with nothing signed", b.Content, len(b.Signers), b.Verified, b.VerifyError)
		}
	})
	t.Run("EnvelopedData", func(t *testing.T) {
		v := opensslBlob(t, dir, "cms", "-encrypt", "-in", "msg.txt", "-outform", "DER", "-aes256", "-recip", "user.pem")
		b, err := smimesync.ParseSMIMECertificate(v)
		wantParseError(t, v, b, err, smimesync.ReasonWrongContentType)
	})
	t.Run("twenty certificates", func(t *testing.T) {
		v := opensslBlob(t, dir, "crl2pkcs7", "-nocrl", "-certfile", "many.pem", "-outform", "DER")
		b, err := smimesync.ParseSMIMECertificate(v)
		if err != nil {
			t.Fatal(err)
		}
		var want []smimesync.Fingerprint
		for _, c := range p.many {
			want = append(want, fp(c.Raw))
		}
		if got := fingerprints(b.Certificates); !slices.Equal(got, want) {
			t.Errorf("%d certificates, want the 20 in order", len(got))
		}
		for i, c := range b.Certificates {
			if want := fmt.Sprintf("user%d@example.org", i); !slices.Equal(c.Emails, []string{want}) {
				t.Errorf("certificate %d Emails = %q, want %q", i, c.Emails, want)
			}
		}
	})
	t.Run("critical AKI next to a good certificate", func(t *testing.T) {
		if _, err := x509.ParseCertificate(p.badAKI.Raw); err == nil {
			t.Fatal("crypto/x509 accepts the critical-AKI certificate; the test needs one it refuses")
		}
		v := opensslBlob(t, dir, "crl2pkcs7", "-nocrl", "-certfile", "bad.pem", "-certfile", "user.pem", "-outform", "DER")
		b, err := smimesync.ParseSMIMECertificate(v)
		if err != nil {
			t.Fatal(err)
		}
		checkRejectedAKI(t, b, p)
		if got := fingerprints(b.Certificates); !slices.Equal(got, []smimesync.Fingerprint{fp(p.user.Raw)}) {
			t.Errorf("certificates = %v, want the user's", got)
		}
	})
	t.Run("signed, carrying a certificate Go refuses", func(t *testing.T) {
		// pkcs7 alone would fail on the whole set; the good signer
		// still verifies.
		v := opensslBlob(t, dir, append(slices.Clone(signArgs), "-certfile", "bad.pem")...)
		b, err := smimesync.ParseSMIMECertificate(v)
		if err != nil {
			t.Fatal(err)
		}
		checkRejectedAKI(t, b, p)
		if !b.Verified || b.VerifyError != nil {
			t.Errorf("Verified/VerifyError = %v/%v, want the user's signature verified", b.Verified, b.VerifyError)
		}
	})
	t.Run("signed by a certificate Go refuses", func(t *testing.T) {
		// The blob is kept (the user's certificate parses), but its
		// signature cannot be checked.
		v := opensslBlob(t, dir, "cms", "-sign", "-in", "msg.txt", "-signer", "bad.pem", "-inkey", "user.key", "-certfile", "user.pem", "-outform", "DER", "-nodetach")
		b, err := smimesync.ParseSMIMECertificate(v)
		if err != nil {
			t.Fatal(err)
		}
		checkRejectedAKI(t, b, p)
		if len(b.Signers) != 1 || b.Signers[0].Certificate != nil || b.Signers[0].Serial != "12" {
			t.Errorf("Signers = %+v, want one naming the refused certificate, unlinked", b.Signers)
		}
		if b.Verified || !errors.Is(b.VerifyError, smimesync.ErrCannotVerify) || !strings.Contains(b.VerifyError.Error(), "rejected") {
			t.Errorf("Verified/VerifyError = %v/%v, want ErrCannotVerify saying the certificate was rejected", b.Verified, b.VerifyError)
		}
	})
	t.Run("only a certificate Go refuses", func(t *testing.T) {
		v := opensslBlob(t, dir, "crl2pkcs7", "-nocrl", "-certfile", "bad.pem", "-outform", "DER")
		b, err := smimesync.ParseSMIMECertificate(v)
		pe := wantParseError(t, v, b, err, smimesync.ReasonUnparseable)
		var ce *smimesync.CertificateError
		if !errors.As(pe, &ce) || ce.Fingerprint != fp(p.badAKI.Raw) {
			t.Errorf("err = %v, want the certificate's own error inside", err)
		}
	})
	t.Run("tampered signature", func(t *testing.T) {
		v := bytes.Clone(der)
		v[len(v)-1] ^= 0x01 // the last byte of the RSA signature
		b, err := smimesync.ParseSMIMECertificate(v)
		if err != nil {
			t.Fatal(err)
		}
		if b.Verified || !errors.Is(b.VerifyError, smimesync.ErrSignatureInvalid) || errors.Is(b.VerifyError, smimesync.ErrCannotVerify) {
			t.Errorf("Verified/VerifyError = %v/%v, want ErrSignatureInvalid", b.Verified, b.VerifyError)
		}
	})
	t.Run("tampered content", func(t *testing.T) {
		for _, v := range [][]byte{der, ber} {
			v = bytes.Replace(v, []byte("smimesync test message"), []byte("smimesync test massage"), 1)
			b, err := smimesync.ParseSMIMECertificate(v)
			if err != nil {
				t.Fatal(err)
			}
			if b.Verified || !errors.Is(b.VerifyError, smimesync.ErrSignatureInvalid) {
				t.Errorf("Verified/VerifyError = %v/%v, want ErrSignatureInvalid (digest mismatch)", b.Verified, b.VerifyError)
			}
		}
	})
	t.Run("every truncation fails cleanly", func(t *testing.T) {
		for _, v := range [][]byte{der, ber} {
			for n := range len(v) {
				b, err := smimesync.ParseSMIMECertificate(v[:n])
				var pe *smimesync.ParseError
				if !errors.As(err, &pe) || b != nil {
					t.Fatalf("prefix of %d/%d bytes: %v, %v; want a *ParseError", n, len(v), b, err)
				}
				if pe.Fingerprint != fp(v[:n]) {
					t.Fatalf("prefix of %d bytes: wrong fingerprint", n)
				}
			}
		}
	})
}

func checkRejectedAKI(t *testing.T, b *smimesync.Blob, p *testPKI) {
	t.Helper()
	if len(b.Rejected) != 1 {
		t.Fatalf("Rejected = %v, want the critical-AKI certificate", b.Rejected)
	}
	var ce *smimesync.CertificateError
	if !errors.As(b.Rejected[0], &ce) || ce.Fingerprint != fp(p.badAKI.Raw) || !strings.Contains(ce.Error(), "authority key identifier") {
		t.Errorf("Rejected[0] = %v, want a CertificateError for the critical-AKI certificate", b.Rejected[0])
	}
	for _, c := range b.Certificates {
		if c.SHA256() == fp(p.badAKI.Raw) {
			t.Errorf("the refused certificate is also in Certificates")
		}
	}
}

// opensslCapabilities reads the smimeCapabilities attribute as
// `openssl cms -cmsout -print` shows it.
func opensslCapabilities(t *testing.T, dir string, der []byte) []asn1.ObjectIdentifier {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "caps.p7"), der, 0o600); err != nil {
		t.Fatal(err)
	}
	out := string(runOpenSSL(t, dir, "cms", "-cmsout", "-print", "-inform", "DER", "-in", "caps.p7"))
	start := strings.Index(out, "S/MIME Capabilities")
	if start < 0 {
		t.Fatalf("openssl shows no S/MIME Capabilities:\n%s", out)
	}
	section := out[start:]
	if end := strings.Index(section, "signatureAlgorithm"); end >= 0 {
		section = section[:end]
	}
	names := map[string]asn1.ObjectIdentifier{
		"aes-256-cbc":  {2, 16, 840, 1, 101, 3, 4, 1, 42},
		"aes-192-cbc":  {2, 16, 840, 1, 101, 3, 4, 1, 22},
		"aes-128-cbc":  {2, 16, 840, 1, 101, 3, 4, 1, 2},
		"des-ede3-cbc": {1, 2, 840, 113549, 3, 7},
		"rc2-cbc":      {1, 2, 840, 113549, 3, 2},
		"des-cbc":      {1, 3, 14, 3, 2, 7},
	}
	var caps []asn1.ObjectIdentifier
	for _, line := range strings.Split(section, "\n") {
		if i := strings.Index(line, "OBJECT            :"); i >= 0 && strings.Contains(line, "d=2") {
			name := strings.TrimSpace(line[i+len("OBJECT            :"):])
			oid, ok := names[name]
			if !ok {
				t.Fatalf("openssl capability %q not in the test's table", name)
			}
			caps = append(caps, oid)
		}
	}
	if len(caps) == 0 {
		t.Fatalf("no capabilities read from:\n%s", section)
	}
	return caps
}

var (
	oidEncrypKeyPref = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 11}
	oidMicrosoftEnc  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 16, 4}
)

// signWithAttributes builds a SignedData signed at the test clock's time:
// the user signs, the encryption certificate rides along.
func signWithAttributes(t *testing.T, p *testPKI, attrs ...cmssign.Attribute) []byte {
	t.Helper()
	v, err := cmssign.SignedData{
		Content:      []byte("published certificates"),
		Signers:      []cmssign.Signer{{Cert: p.user, Key: p.userKey, SigningTime: testclock.Now(), Attributes: attrs}},
		Certificates: []*x509.Certificate{p.enc},
	}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseSMIMECertificateEncryptionKeyPreference(t *testing.T) {
	p := loadPKI(t)
	serial, err := asn1.Marshal(p.enc.SerialNumber)
	if err != nil {
		t.Fatal(err)
	}
	issuerAndSerial := append(bytes.Clone(p.enc.RawIssuer), serial...)
	implicit := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: issuerAndSerial}
	sequence := asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: issuerAndSerial}
	seqDER, err := asn1.Marshal(sequence)
	if err != nil {
		t.Fatal(err)
	}
	explicit := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: seqDER}
	// A Microsoft attribute naming the user's own certificate, to show
	// which one wins.
	userSerial, _ := asn1.Marshal(p.user.SerialNumber)
	msUser := asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: append(bytes.Clone(p.user.RawIssuer), userSerial...)}

	tests := []struct {
		name       string
		attrs      []cmssign.Attribute
		wantSource string
		wantCert   *x509.Certificate
	}{
		{"encrypKeyPref", []cmssign.Attribute{{Type: oidEncrypKeyPref, Value: implicit}}, "encrypKeyPref", p.enc},
		{"encrypKeyPref, explicit tagging", []cmssign.Attribute{{Type: oidEncrypKeyPref, Value: explicit}}, "encrypKeyPref", p.enc},
		{"Microsoft", []cmssign.Attribute{{Type: oidMicrosoftEnc, Value: sequence}}, "microsoft", p.enc},
		{"both: encrypKeyPref wins", []cmssign.Attribute{{Type: oidMicrosoftEnc, Value: msUser}, {Type: oidEncrypKeyPref, Value: implicit}}, "encrypKeyPref", p.enc},
		{"malformed encrypKeyPref, Microsoft used", []cmssign.Attribute{{Type: oidEncrypKeyPref, Value: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: []byte{0x05, 0x00}}}, {Type: oidMicrosoftEnc, Value: msUser}}, "microsoft", p.user},
		{"neither", nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := smimesync.ParseSMIMECertificate(signWithAttributes(t, p, tt.attrs...))
			if err != nil {
				t.Fatal(err)
			}
			if !b.Verified || b.VerifyError != nil {
				t.Errorf("Verified/VerifyError = %v/%v, want the signature to verify", b.Verified, b.VerifyError)
			}
			if len(b.Signers) != 1 {
				t.Fatalf("Signers = %+v, want one", b.Signers)
			}
			pref := b.Signers[0].EncryptionKeyPreference
			if tt.wantCert == nil {
				if pref != nil {
					t.Errorf("EncryptionKeyPreference = %+v, want nil", pref)
				}
				return
			}
			want := &smimesync.IssuerSerial{Issuer: "CN=smimesync Test CA,O=smimesync", Serial: tt.wantCert.SerialNumber.String(), Source: tt.wantSource}
			if pref == nil || *pref != *want {
				t.Fatalf("EncryptionKeyPreference = %+v, want %+v", pref, want)
			}
			var matched []smimesync.Fingerprint
			for _, c := range b.Certificates {
				if pref.Matches(c) {
					matched = append(matched, c.SHA256())
				}
			}
			if !slices.Equal(matched, []smimesync.Fingerprint{fp(tt.wantCert.Raw)}) {
				t.Errorf("Matches picks %v, want only %s", matched, fp(tt.wantCert.Raw))
			}
		})
	}
}

func TestParseSMIMECertificateTwoSigners(t *testing.T) {
	p := loadPKI(t)
	sd := cmssign.SignedData{Content: []byte("two signers")}
	for _, c := range []*x509.Certificate{p.user, p.enc} {
		sd.Signers = append(sd.Signers, cmssign.Signer{Cert: c, Key: p.userKey, SigningTime: testclock.Now()})
	}
	v, err := sd.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := smimesync.ParseSMIMECertificate(v)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Verified || len(b.Signers) != 2 {
		t.Fatalf("Verified/Signers = %v/%d (%v), want both signatures verified", b.Verified, len(b.Signers), b.VerifyError)
	}
	for i, want := range []*x509.Certificate{p.user, p.enc} {
		if c := b.Signers[i].Certificate; c == nil || c.SHA256() != fp(want.Raw) {
			t.Errorf("signer %d not linked to %s", i, want.Subject)
		}
	}
}

func TestParseSMIMECertificateMalformedSignerInfo(t *testing.T) {
	v := bytes.Clone(readTestdata(t, "rfc9216/cms-der/signedByAliceRSA.p7m"))
	// Offset 1080 (openssl asn1parse) is the SignerInfo's sid, an
	// IssuerAndSerialNumber SEQUENCE; a SET there is no SignerIdentifier.
	if v[1080] != 0x30 {
		t.Fatalf("byte 1080 = 0x%02x, want the sid's SEQUENCE", v[1080])
	}
	v[1080] = 0x31
	b, err := smimesync.ParseSMIMECertificate(v)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Certificates) != 1 || len(b.Signers) != 0 {
		t.Errorf("%d certificates, %d signers; want Alice's certificate kept and the signer left out", len(b.Certificates), len(b.Signers))
	}
	if b.Verified || !errors.Is(b.VerifyError, smimesync.ErrCannotVerify) || !strings.Contains(b.VerifyError.Error(), "SignerInfo 0 is malformed") {
		t.Errorf("Verified/VerifyError = %v/%v, want ErrCannotVerify naming the malformed SignerInfo", b.Verified, b.VerifyError)
	}
}

func TestParseSMIMECertificateDoesNotKeepInput(t *testing.T) {
	v := bytes.Clone(readTestdata(t, "rfc9216/cms-der/signedByAliceRSA.p7m"))
	want := bytes.Clone(v)
	b, err := smimesync.ParseSMIMECertificate(v)
	if err != nil {
		t.Fatal(err)
	}
	clear(v)
	if !bytes.Equal(b.Raw, want) || b.Certificates[0].SHA256() != sha256.Sum256(b.Certificates[0].Raw) {
		t.Errorf("the Blob changed when the caller reused its buffer")
	}
}

func ExampleParseSMIMECertificate() {
	value, err := os.ReadFile("testdata/rfc9216/cms-der/signedByAliceRSA.p7m")
	if err != nil {
		fmt.Println(err)
		return
	}
	blob, err := smimesync.ParseSMIMECertificate(value)
	var pe *smimesync.ParseError
	if errors.As(err, &pe) {
		fmt.Println("dropped:", pe.Reason)
		return
	}
	for _, c := range blob.Certificates {
		fmt.Println(c.Emails, "sign:", c.CanSign, "encrypt:", c.CanEncrypt)
	}
	fmt.Println("signers:", len(blob.Signers), "verified:", blob.Verified)

	// An EnvelopedData is not a certificate container.
	value, _ = os.ReadFile("testdata/rfc9216/cms-der/encryptedForBobRSAOaep.p7m")
	_, err = smimesync.ParseSMIMECertificate(value)
	if errors.As(err, &pe) {
		fmt.Println("dropped:", pe.Reason)
	}
	// Output:
	// [alice@smime.example] sign: true encrypt: false
	// signers: 1 verified: true
	// dropped: wrong-content-type
}
