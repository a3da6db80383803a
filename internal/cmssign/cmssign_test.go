package cmssign_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/smimesync/go-smimesync/internal/cmssign"
	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// cert makes a self-issued certificate for key, valid around now, with
// no extended key usage.
func cert(t *testing.T, key crypto.Signer, now time.Time) *x509.Certificate {
	t.Helper()
	return testpki.MustSelfSigned(t, testpki.Key(key), testpki.SerialNumber(7), testpki.CommonName("signer"),
		testpki.Validity(now.Add(-time.Hour), now.Add(24*time.Hour)), testpki.KeyUsage(x509.KeyUsageDigitalSignature),
		testpki.Email("a@example.com"), testpki.ExtKeyUsage()).X509()
}

// TestSigningTime checks that the value carries exactly the signing time
// asked for (read back with pkcs7, the verifier the module uses), and
// that pkcs7 verifies the signature of RSA and ECDSA signers: pkcs7 itself
// would have written time.Now().
func TestSigningTime(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := testclock.Now()
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		at   time.Time
	}{
		{"RSA at the test clock", rsaKey, now},
		{"ECDSA at the test clock", ecKey, now},
		{"RSA ten years ago", rsaKey, time.Now().AddDate(-10, 0, 0)},
		{"ECDSA in 2061 (GeneralizedTime)", ecKey, time.Date(2061, 3, 4, 5, 6, 7, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cert(t, tc.key, tc.at)
			der, err := cmssign.Sign([]byte("capabilities"), c, tc.key, nil, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			p7, err := pkcs7.Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			var got time.Time
			if err := p7.UnmarshalSignedAttribute(cmssign.OIDSigningTime, &got); err != nil {
				t.Fatal(err)
			}
			if want := tc.at.UTC().Truncate(time.Second); !got.Equal(want) {
				t.Errorf("signingTime = %s, want %s", got, want)
			}
			if string(p7.Content) != "capabilities" {
				t.Errorf("content = %q", p7.Content)
			}
			// The certificate is valid an hour around tc.at only, so
			// this verifies only if the signing time is tc.at.
			if err := p7.Verify(); err != nil {
				t.Errorf("pkcs7 Verify: %v", err)
			}
			p7.Content = []byte("tampered")
			if err := p7.Verify(); err == nil {
				t.Error("pkcs7 verified tampered content")
			}
		})
	}
}

func TestNoSigningTimeAndExtraAttributes(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := cert(t, key, time.Now())
	oid := asn1.ObjectIdentifier{1, 2, 3, 4}
	der, err := cmssign.SignedData{
		Content: []byte("x"),
		Signers: []cmssign.Signer{{Cert: c, Key: key, Attributes: []cmssign.Attribute{{Type: oid, Value: "hello"}}}},
	}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	var st time.Time
	if err := p7.UnmarshalSignedAttribute(cmssign.OIDSigningTime, &st); err == nil {
		t.Errorf("signingTime %s present, want none", st)
	}
	var s string
	if err := p7.UnmarshalSignedAttribute(oid, &s); err != nil || s != "hello" {
		t.Errorf("extra attribute = %q, %v", s, err)
	}
	if err := p7.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// TestOpenSSLVerifies has OpenSSL check a value, when it is installed:
// the encoding is CMS as other implementations read it.
func TestOpenSSLVerifies(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c := cert(t, key, testclock.Now())
	der, err := cmssign.Sign([]byte("hello"), c, key, nil, testclock.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "v.p7")
	if err := os.WriteFile(in, der, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "cms", "-verify", "-noverify", "-inform", "DER", "-in", in).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
}
