package smimesync_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// brainpoolPKI is made by openssl at run time: an RSA CA and a
// brainpoolP384r1 CA, and brainpool users under them. crypto/x509 refuses
// every brainpool certificate as a whole ("x509: unsupported elliptic
// curve").
type brainpoolPKI struct {
	dir string
	// rsaCA is the RSA CA (crypto/x509 parses it).
	rsaCA []byte
	// bp256, bp384: brainpoolP256r1 and brainpoolP384r1 users issued by
	// rsaCA; bpCA: a brainpoolP384r1 CA; bpUnderBP: a brainpoolP256r1
	// user it issued. All DER.
	bp256, bp384, bpCA, bpUnderBP []byte
}

const brainpoolExtensions = `[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = emailProtection
subjectAltName = email:bea@example.org,otherName:1.3.6.1.5.5.7.8.9;UTF8:bea.utf8@example.org
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`

func newBrainpoolPKI(t *testing.T) *brainpoolPKI {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ext.cnf"), []byte(brainpoolExtensions), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) { runOpenSSL(t, dir, args...) }
	der := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no PEM", name)
		}
		return blk.Bytes
	}
	// issue makes name.key on curve and name.pem issued by ca (self-signed
	// when ca is "").
	issue := func(name, curve, subject, ca, section, serial string) {
		run("ecparam", "-name", curve, "-genkey", "-noout", "-out", name+".key")
		run("req", "-new", "-key", name+".key", "-subj", subject, "-out", name+".csr")
		args := []string{"x509", "-req", "-in", name + ".csr", "-days", "30", "-set_serial", serial,
			"-extfile", "ext.cnf", "-extensions", section, "-out", name + ".pem"}
		if ca == "" {
			args = append(args, "-signkey", name+".key")
		} else {
			args = append(args, "-CA", ca+".pem", "-CAkey", ca+".key")
		}
		run(args...)
	}
	run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rsaca.key", "-out", "rsaca.pem",
		"-subj", "/CN=Brainpool Test RSA CA", "-days", "30", "-set_serial", "1",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	issue("bp256", "brainpoolP256r1", "/CN=Bea Brainpool/emailAddress=Bea@Example.ORG", "rsaca", "leaf", "0x1234")
	issue("bp384", "brainpoolP384r1", "/CN=Bea Brainpool 384", "rsaca", "leaf", "0x1235")
	issue("bpca", "brainpoolP384r1", "/CN=Brainpool Test Brainpool CA", "", "ca", "2")
	issue("bpleaf", "brainpoolP256r1", "/CN=Bea Under Brainpool", "bpca", "leaf", "0x1236")
	return &brainpoolPKI{dir: dir, rsaCA: der("rsaca.pem"), bp256: der("bp256.pem"), bp384: der("bp384.pem"),
		bpCA: der("bpca.pem"), bpUnderBP: der("bpleaf.pem")}
}

// opensslDates reads notBefore and notAfter as openssl prints them: an
// oracle independent of the code under test.
func opensslDates(t *testing.T, dir string, der []byte) (notBefore, notAfter time.Time) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "dates.der"), der, 0o600); err != nil {
		t.Fatal(err)
	}
	out := runOpenSSL(t, dir, "x509", "-inform", "DER", "-in", "dates.der", "-noout", "-startdate", "-enddate")
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		d, err := time.Parse("Jan _2 15:04:05 2006 MST", v)
		if err != nil {
			t.Fatalf("openssl date %q: %v", line, err)
		}
		switch k {
		case "notBefore":
			notBefore = d
		case "notAfter":
			notAfter = d
		}
	}
	return notBefore, notAfter
}

// TestBrainpoolCertificate: a certificate crypto/x509 refuses only for its
// brainpool key is parsed, its key named, and everything else read as
// for any other certificate.
func TestBrainpoolCertificate(t *testing.T) {
	pki := newBrainpoolPKI(t)
	ca, err := x509.ParseCertificate(pki.rsaCA)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		der     []byte
		curve   string
		bits    int
		serial  int64
		emails  []string
		subject string // a prefix of Subject()
	}{
		{"brainpoolP256r1", pki.bp256, "brainpoolP256r1", 256, 0x1234,
			[]string{"bea@example.org", "bea.utf8@example.org"}, "CN=Bea Brainpool,1.2.840.113549.1.9.1=#"},
		{"brainpoolP384r1", pki.bp384, "brainpoolP384r1", 384, 0x1235,
			[]string{"bea@example.org", "bea.utf8@example.org"}, "CN=Bea Brainpool 384"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := x509.ParseCertificate(tt.der); err == nil || !strings.Contains(err.Error(), "unsupported elliptic curve") {
				t.Fatalf("precondition: crypto/x509 says %v, want unsupported elliptic curve", err)
			}
			c, err := smimesync.ParseCertificate(tt.der)
			if err != nil {
				t.Fatalf("ParseCertificate: %v", err)
			}
			if !c.KeyUnsupported || c.KeyType != "ECDSA" || c.KeyBits != tt.bits || c.KeyCurve != tt.curve || c.Key() != "ECDSA "+tt.curve {
				t.Errorf("key = %q (%s %d %s, unsupported %v), want ECDSA %s", c.Key(), c.KeyType, c.KeyBits, c.KeyCurve, c.KeyUnsupported, tt.curve)
			}
			if c.X509 == nil || c.X509.PublicKey != nil || c.X509.PublicKeyAlgorithm != x509.UnknownPublicKeyAlgorithm {
				t.Fatalf("X509 = %v, want x509's parse without a key", c.X509)
			}
			if !slices.Equal(c.Emails, tt.emails) {
				t.Errorf("Emails = %q, want %q", c.Emails, tt.emails)
			}
			if !c.CanEncrypt || !c.CanSign || c.IsCA {
				t.Errorf("CanEncrypt/CanSign/IsCA = %v/%v/%v, want true/true/false", c.CanEncrypt, c.CanSign, c.IsCA)
			}
			if !strings.HasPrefix(c.Subject(), tt.subject) || c.Issuer() != "CN=Brainpool Test RSA CA" || c.Serial.Cmp(big.NewInt(tt.serial)) != 0 {
				t.Errorf("subject %q issuer %q serial %v", c.Subject(), c.Issuer(), c.Serial)
			}
			nb, na := opensslDates(t, pki.dir, tt.der)
			if !c.NotBefore.Equal(nb) || !c.NotAfter.Equal(na) {
				t.Errorf("validity %v..%v, openssl says %v..%v", c.NotBefore, c.NotAfter, nb, na)
			}
			// The issuer's signature over the certificate's own bytes.
			if err := c.X509.CheckSignatureFrom(ca); err != nil {
				t.Errorf("the RSA CA's signature does not verify: %v", err)
			}
		})
	}
}

// TestBrainpoolPolicy: the policy judges a brainpool certificate like any
// other (its clock taken from the certificate, never today's date), and
// notes what cannot be checked.
func TestBrainpoolPolicy(t *testing.T) {
	pki := newBrainpoolPKI(t)
	c, err := smimesync.ParseCertificate(pki.bp256)
	if err != nil {
		t.Fatal(err)
	}
	during := c.NotBefore.Add(time.Hour)
	after := c.NotAfter.Add(time.Hour)
	rsaRoots := x509.NewCertPool()
	rsaCA, err := x509.ParseCertificate(pki.rsaCA)
	if err != nil {
		t.Fatal(err)
	}
	rsaRoots.AddCert(rsaCA)
	bpCA, err := smimesync.ParseCertificate(pki.bpCA)
	if err != nil {
		t.Fatal(err)
	}
	bpRoots := x509.NewCertPool()
	bpRoots.AddCert(bpCA.X509)

	for _, tt := range []struct {
		name   string
		cert   []byte
		mail   string
		now    time.Time
		roots  *x509.CertPool
		reason smimesync.Reason // "" means kept
	}{
		{"kept", pki.bp256, "bea@example.org", during, nil, ""},
		{"kept, address from the SmtpUTF8Mailbox", pki.bp384, "bea.utf8@example.org", during, nil, ""},
		{"kept, chain to the RSA root verified", pki.bp256, "bea@example.org", during, rsaRoots, ""},
		{"expired", pki.bp256, "bea@example.org", after, nil, smimesync.ReasonExpired},
		{"not yet valid", pki.bp256, "bea@example.org", c.NotBefore.Add(-time.Hour), nil, smimesync.ReasonNotYetValid},
		{"someone else's", pki.bp256, "eve@example.org", during, nil, smimesync.ReasonNoMatchingAddress},
		{"chain to the RSA root, other CA", pki.bpUnderBP, "bea@example.org", during, rsaRoots, smimesync.ReasonUntrustedChain},
		{"brainpool root: its signature cannot be checked", pki.bpUnderBP, "bea@example.org", during, bpRoots, smimesync.ReasonUntrustedChain},
		{"brainpool root, no chain validation", pki.bpUnderBP, "bea@example.org", during, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &smimesync.Policy{Now: func() time.Time { return tt.now }, Roots: tt.roots}
			e := &directory.Entry{DN: "cn=bea", Mail: tt.mail, UserCertificate: [][]byte{tt.cert}}
			d := p.Evaluate(context.Background(), e).UserCertificate[0]
			if tt.reason == "" {
				if !d.Keep {
					t.Fatalf("dropped (%v, notes %q), want kept", d.Reasons, d.Notes)
				}
			} else if d.Keep || !slices.Contains(d.Reasons, tt.reason) {
				t.Fatalf("keep %v reasons %v (notes %q), want dropped for %s", d.Keep, d.Reasons, d.Notes, tt.reason)
			}
			if slices.Contains(d.Reasons, smimesync.ReasonUnparseable) || d.Certificate == nil {
				t.Fatalf("unparseable: %v", d.Err)
			}
			if !slices.ContainsFunc(d.Notes, func(n string) bool {
				return strings.HasPrefix(n, smimesync.NoteKeyUnsupported+": ECDSA brainpoolP")
			}) {
				t.Errorf("notes %q lack the %s note", d.Notes, smimesync.NoteKeyUnsupported)
			}
		})
	}
}

// TestBrainpoolBlob: a userSMIMECertificate signed with a brainpool key
// keeps its certificates; the signature is noted as not checkable, which
// RequireValidSignature does not count against it.
func TestBrainpoolBlob(t *testing.T) {
	pki := newBrainpoolPKI(t)
	if err := os.WriteFile(filepath.Join(pki.dir, "msg.txt"), []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	blobDER := runOpenSSL(t, pki.dir, "cms", "-sign", "-in", "msg.txt", "-signer", "bp256.pem", "-inkey", "bp256.key",
		"-certfile", "rsaca.pem", "-outform", "DER", "-nodetach")
	b, err := smimesync.ParseSMIMECertificate(blobDER)
	if err != nil {
		t.Fatalf("ParseSMIMECertificate: %v", err)
	}
	if len(b.Certificates) != 2 || len(b.Rejected) != 0 {
		t.Fatalf("%d certificates, rejected %v; want both", len(b.Certificates), b.Rejected)
	}
	if b.Verified || !errors.Is(b.VerifyError, smimesync.ErrCannotVerify) || !strings.Contains(b.VerifyError.Error(), "ECDSA brainpoolP256r1") {
		t.Fatalf("Verified %v, VerifyError %v: want ErrCannotVerify naming the key", b.Verified, b.VerifyError)
	}
	if len(b.Signers) != 1 || b.Signers[0].Certificate == nil || !b.Signers[0].Certificate.KeyUnsupported {
		t.Fatalf("signer not linked to the brainpool certificate: %+v", b.Signers)
	}
	c, _ := smimesync.ParseCertificate(pki.bp256)
	p := &smimesync.Policy{Now: func() time.Time { return c.NotBefore.Add(time.Hour) }, RequireValidSignature: true}
	e := &directory.Entry{DN: "cn=bea", Mail: "bea@example.org", UserSMIMECertificate: [][]byte{blobDER}}
	d := p.Evaluate(context.Background(), e).UserSMIMECertificate[0]
	if !d.Keep || d.Certificate == nil || !d.Certificate.KeyUnsupported {
		t.Fatalf("keep %v reasons %v notes %q: want the blob kept for its brainpool certificate", d.Keep, d.Reasons, d.Notes)
	}
	if !slices.ContainsFunc(d.Notes, func(n string) bool { return strings.HasPrefix(n, "signature not verified: ") }) {
		t.Errorf("notes %q: want the signature noted as not verified", d.Notes)
	}

	// An RSA signer's blob that also carries a brainpool certificate:
	// the signature is checked, the brainpool certificate kept.
	other := runOpenSSL(t, pki.dir, "cms", "-sign", "-in", "msg.txt", "-signer", "rsaca.pem", "-inkey", "rsaca.key",
		"-certfile", "bp256.pem", "-outform", "DER", "-nodetach")
	b, err = smimesync.ParseSMIMECertificate(other)
	if err != nil {
		t.Fatalf("ParseSMIMECertificate: %v", err)
	}
	if !b.Verified || len(b.Certificates) != 2 || len(b.Rejected) != 0 {
		t.Fatalf("Verified %v (%v), %d certificates, rejected %v: want verified, both kept", b.Verified, b.VerifyError, len(b.Certificates), b.Rejected)
	}
}

// TestBrainpoolBroken: a brainpool certificate whose structure is broken
// is still unparseable.
func TestBrainpoolBroken(t *testing.T) {
	pki := newBrainpoolPKI(t)
	c, err := smimesync.ParseCertificate(pki.bp256)
	if err != nil {
		t.Fatal(err)
	}
	spki := c.X509.RawSubjectPublicKeyInfo
	at := bytes.Index(pki.bp256, spki)
	badPoint := slices.Clone(pki.bp256)
	badPoint[at+len(spki)-65] = 0x05 // the point's format byte (65 bytes: 04 X Y)
	if spki[len(spki)-65] != 0x04 {
		t.Fatalf("precondition: point format byte 0x%02x, want 0x04", spki[len(spki)-65])
	}
	badExtension := slices.Clone(pki.bp256)
	// Turn the SAN's first rfc822Name into a malformed element: a tag
	// with a length running past the extension.
	san := c.X509.Extensions[slices.IndexFunc(c.X509.Extensions, func(e pkix.Extension) bool { return e.Id.String() == "2.5.29.17" })].Value
	sanAt := bytes.Index(badExtension, san)
	badExtension[sanAt+3] = 0x7f
	for _, tt := range []struct {
		name  string
		value []byte
		want  string
	}{
		{"truncated", pki.bp256[:len(pki.bp256)-10], "malformed"},
		{"trailing data", append(slices.Clone(pki.bp256), 0), "trailing data"},
		{"point not a point", badPoint, "invalid brainpoolP256r1 public key"},
		{"malformed SAN", badExtension, "x509:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := smimesync.ParseCertificate(tt.value)
			var pe *smimesync.ParseError
			if !errors.As(err, &pe) || pe.Reason != smimesync.ReasonUnparseable || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want unparseable mentioning %q", err, tt.want)
			}
		})
	}
}

// TestBrainpoolRevocation: the revocation checker is asked about a
// brainpool certificate whose managed CA's signature on it verifies (the
// CA's key is RSA), and not about one whose brainpool CA's signature
// cannot be checked.
func TestBrainpoolRevocation(t *testing.T) {
	pki := newBrainpoolPKI(t)
	rsaCA, err := x509.ParseCertificate(pki.rsaCA)
	if err != nil {
		t.Fatal(err)
	}
	bpCA, err := smimesync.ParseCertificate(pki.bpCA)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		cert      []byte
		ca        *x509.Certificate
		wantAsked bool
	}{
		{"RSA CA", pki.bp256, rsaCA, true},
		{"brainpool CA", pki.bpUnderBP, bpCA.X509, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := smimesync.ParseCertificate(tt.cert)
			if err != nil {
				t.Fatal(err)
			}
			rc := &recordingChecker{}
			p := &smimesync.Policy{Now: func() time.Time { return c.NotBefore.Add(time.Hour) },
				ManagedCAs: []*x509.Certificate{tt.ca}, DropUnmanaged: true, Revocation: rc}
			e := &directory.Entry{DN: "cn=bea", Mail: "bea@example.org", UserCertificate: [][]byte{tt.cert}}
			d := p.Evaluate(context.Background(), e).UserCertificate[0]
			if !d.Keep {
				t.Fatalf("dropped: %v %q", d.Reasons, d.Notes)
			}
			if tt.wantAsked {
				if len(rc.calls) != 1 || rc.calls[0][1] != tt.ca || rc.calls[0][0].SerialNumber.Cmp(c.Serial) != 0 {
					t.Fatalf("checker calls %v, want one about serial %v with the managed CA", rc.calls, c.Serial)
				}
				return
			}
			if len(rc.calls) != 0 {
				t.Fatalf("checker asked %v; the CA's signature cannot be checked", rc.calls)
			}
			if !slices.ContainsFunc(d.Notes, func(n string) bool { return strings.HasPrefix(n, "revocation: not-checked") }) {
				t.Errorf("notes %q: want revocation not-checked", d.Notes)
			}
		})
	}
}
