// Package testpki is the module's one test PKI: certificate authorities
// (roots and intermediates) and the certificates they issue, for the
// tests, the example binary's demo, the benchmark's synthetic directory
// and the test servers of directory/ldapsource/ldaptest.
//
// A certificate is described by functional options ([Email],
// [Validity], [KeyUsage], [ExtKeyUsage], [Serial], [SubjectKeyID],
// [OCSPServer], ...) over defaults that make an ordinary S/MIME
// certificate:
//
//	ca := testpki.MustNew(t, "Contoso Mail CA")
//	alice := ca.MustIssue(t, testpki.Email("alice@contoso.com"))
//	expired := ca.MustIssue(t, testpki.Email("alice@contoso.com"),
//		testpki.Validity(now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0)))
//
// # Time
//
// Validity defaults are drawn from a clock: the test clock
// (internal/testclock, shifted by SMIMESYNC_TEST_CLOCK_SHIFT) unless
// [Clock] names another. Give the code under test the same clock. A CA
// passes its clock on to the certificates and intermediates it issues.
// Certificates that Go's TLS stack checks (a test server's) take
// [Clock](time.Now); a CA that signs both those and S/MIME certificates
// takes [BothClocks].
//
// # Keys
//
// Each certificate gets a fresh ECDSA P-256 key unless [Key] gives one
// or [FreshKey] asks for another type. [RSAKey] hands out a few cached
// RSA keys, and [DeterministicKey] derives a key from a seed (for data
// that must come out the same in every run).
//
// The package never reads the date on its own beyond that clock, and
// nothing in it is safe for production keys.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/internal/testclock"
)

// TB is the part of testing.TB the Must functions use: they report a
// failure with Fatalf.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Cert is an issued certificate and its key.
type Cert struct {
	// DER is the certificate as issued.
	DER []byte
	// Key is the subject's private key.
	Key crypto.Signer

	parse func() *x509.Certificate
}

func newCert(der []byte, key crypto.Signer) *Cert {
	c := &Cert{DER: der, Key: key}
	c.parse = sync.OnceValue(func() *x509.Certificate {
		p, err := x509.ParseCertificate(der)
		if err != nil {
			return nil
		}
		return p
	})
	return c
}

// X509 returns the certificate parsed (once, on first use): nil when Go
// refuses what it was asked to write, such as a critical authority key
// identifier (see [Extension]).
func (c *Cert) X509() *x509.Certificate { return c.parse() }

// PEM returns the certificate as a PEM CERTIFICATE block.
func (c *Cert) PEM() []byte { return PEM(c.DER) }

// KeyPEM returns the key as a PEM PRIVATE KEY block (PKCS #8).
func (c *Cert) KeyPEM() ([]byte, error) { return KeyPEM(c.Key) }

// CA is a certificate authority: a root made by [New] or an intermediate
// made by [CA.Intermediate]. Its methods are safe for concurrent use. A
// CA written as a literal with Cert and Key only (to issue from a CA
// certificate made some other way) issues on the test clock.
type CA struct {
	// Cert is the CA's certificate.
	Cert *x509.Certificate
	// DER is Cert's encoding.
	DER []byte
	// Key is the CA's private key.
	Key crypto.Signer

	now func() time.Time
}

// PEM returns the CA certificate as a PEM CERTIFICATE block.
func (ca *CA) PEM() []byte { return PEM(ca.DER) }

// Now returns the time of the CA's clock (see [Clock]).
func (ca *CA) Now() time.Time {
	if ca.now == nil {
		return testclock.Now()
	}
	return ca.now()
}

// An Option describes a certificate to make: a CA's own ([New],
// [CA.Intermediate]) or one it issues ([CA.Issue], [SelfSigned]).
type Option func(*spec)

type spec struct {
	tmpl              x509.Certificate
	now               func() time.Time
	notBeforeSet      bool
	notAfterSet       bool
	keyUsageSet       bool
	ekuSet            bool
	key               crypto.Signer
	keyType           KeyType
	edits             []func(*x509.Certificate)
	subjectSet        bool
	basicConstraints  bool
	basicConstraintCA bool
}

// Clock draws the default validity from now instead of the test clock.
// Given to a CA, it is passed on to what the CA issues.
func Clock(now func() time.Time) Option { return func(s *spec) { s.now = now } }

// Validity sets notBefore and notAfter.
func Validity(notBefore, notAfter time.Time) Option {
	return func(s *spec) {
		s.tmpl.NotBefore, s.tmpl.NotAfter = notBefore, notAfter
		s.notBeforeSet, s.notAfterSet = true, true
	}
}

// NotBefore sets notBefore, leaving notAfter to its default.
func NotBefore(t time.Time) Option {
	return func(s *spec) { s.tmpl.NotBefore, s.notBeforeSet = t, true }
}

// NotAfter sets notAfter, leaving notBefore to its default.
func NotAfter(t time.Time) Option {
	return func(s *spec) { s.tmpl.NotAfter, s.notAfterSet = t, true }
}

// BothClocks makes a certificate valid on the real clock and on the test
// clock: from an hour before the earlier of the two to ten years after
// the later. For a CA that signs TLS server certificates (checked on the
// real clock) and S/MIME certificates (judged on the test clock).
func BothClocks() Option {
	return func(s *spec) {
		now, test := time.Now(), testclock.Now()
		Validity(minTime(now, test).Add(-time.Hour), maxTime(now, test).AddDate(10, 0, 0))(s)
	}
}

// Subject sets the subject name (default: CN the CA's name, or the first
// e-mail address of a leaf).
func Subject(name pkix.Name) Option {
	return func(s *spec) { s.tmpl.Subject, s.subjectSet = name, true }
}

// CommonName sets the subject to CN=cn.
func CommonName(cn string) Option { return Subject(pkix.Name{CommonName: cn}) }

// Email adds e-mail addresses to the subject alternative name.
func Email(addrs ...string) Option {
	return func(s *spec) { s.tmpl.EmailAddresses = append(s.tmpl.EmailAddresses, addrs...) }
}

// DNSName adds DNS names to the subject alternative name.
func DNSName(names ...string) Option {
	return func(s *spec) { s.tmpl.DNSNames = append(s.tmpl.DNSNames, names...) }
}

// IPAddress adds IP addresses to the subject alternative name.
func IPAddress(ips ...net.IP) Option {
	return func(s *spec) { s.tmpl.IPAddresses = append(s.tmpl.IPAddresses, ips...) }
}

// KeyUsage sets the key usage (default: a CA's certSign|cRLSign; a
// leaf's digitalSignature and keyEncipherment for RSA, keyAgreement for
// ECDSA, nothing more for Ed25519). Zero writes no key usage extension.
func KeyUsage(u x509.KeyUsage) Option {
	return func(s *spec) { s.tmpl.KeyUsage, s.keyUsageSet = u, true }
}

// ExtKeyUsage sets the extended key usages (default: a leaf's
// emailProtection, a CA's none). No argument writes none.
func ExtKeyUsage(ekus ...x509.ExtKeyUsage) Option {
	return func(s *spec) { s.tmpl.ExtKeyUsage, s.ekuSet = ekus, true }
}

// Serial sets the serial number (default: 16 random bytes).
func Serial(n *big.Int) Option { return func(s *spec) { s.tmpl.SerialNumber = n } }

// SerialNumber is [Serial] for a small number.
func SerialNumber(n int64) Option { return Serial(big.NewInt(n)) }

// SubjectKeyID sets the subject key identifier (default: none on a leaf;
// Go derives one for a CA).
func SubjectKeyID(id []byte) Option { return func(s *spec) { s.tmpl.SubjectKeyId = id } }

// AuthorityKeyID sets the authority key identifier (default: the
// issuer's subject key identifier).
func AuthorityKeyID(id []byte) Option { return func(s *spec) { s.tmpl.AuthorityKeyId = id } }

// OCSPServer adds OCSP responder URLs (authority information access).
func OCSPServer(urls ...string) Option {
	return func(s *spec) { s.tmpl.OCSPServer = append(s.tmpl.OCSPServer, urls...) }
}

// CRLDistributionPoints adds CRL distribution point URLs.
func CRLDistributionPoints(urls ...string) Option {
	return func(s *spec) { s.tmpl.CRLDistributionPoints = append(s.tmpl.CRLDistributionPoints, urls...) }
}

// BasicConstraints writes the basic constraints extension with cA set to
// isCA. A leaf has none by default; a CA always has it.
func BasicConstraints(isCA bool) Option {
	return func(s *spec) { s.basicConstraints, s.basicConstraintCA = true, isCA }
}

// Extension adds an extension as it is, even one Go refuses to parse
// back (then [Cert.X509] is nil).
func Extension(ext pkix.Extension) Option {
	return func(s *spec) { s.tmpl.ExtraExtensions = append(s.tmpl.ExtraExtensions, ext) }
}

// Key makes the certificate for key (default: a fresh ECDSA key).
func Key(key crypto.Signer) Option { return func(s *spec) { s.key = key } }

// FreshKey makes the certificate for a fresh key of type t.
func FreshKey(t KeyType) Option { return func(s *spec) { s.keyType, s.key = t, nil } }

// Template edits the certificate template last, after every other
// option and default: for fields no option covers.
func Template(edit func(*x509.Certificate)) Option {
	return func(s *spec) { s.edits = append(s.edits, edit) }
}

// New makes a self-signed root CA named name (CN=name unless [Subject]
// says otherwise): ECDSA P-256, certSign|cRLSign, valid from five years
// before its clock's now to ten years after.
func New(name string, opts ...Option) (*CA, error) {
	c, now, err := make1(name, true, nil, opts)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: c.X509(), DER: c.DER, Key: c.Key, now: now}, nil
}

// Intermediate makes a CA named name issued by ca, with ca's clock
// unless [Clock] says otherwise, and the same defaults as [New].
func (ca *CA) Intermediate(name string, opts ...Option) (*CA, error) {
	c, now, err := make1(name, true, ca, opts)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: c.X509(), DER: c.DER, Key: c.Key, now: now}, nil
}

// Issue makes a certificate signed by ca: by default an S/MIME
// certificate (emailProtection) valid from an hour before ca's clock's
// now for a year, for a fresh ECDSA key.
func (ca *CA) Issue(opts ...Option) (*Cert, error) {
	c, _, err := make1("", false, ca, opts)
	return c, err
}

// SelfSigned makes a self-signed certificate with the defaults of
// [CA.Issue], on the test clock unless [Clock] says otherwise.
func SelfSigned(opts ...Option) (*Cert, error) {
	c, _, err := make1("", false, nil, opts)
	return c, err
}

// MustNew is [New] for tests: a failure ends the test.
func MustNew(tb TB, name string, opts ...Option) *CA {
	tb.Helper()
	ca, err := New(name, opts...)
	if err != nil {
		tb.Fatalf("testpki: CA %q: %v", name, err)
	}
	return ca
}

// MustIntermediate is [CA.Intermediate] for tests.
func (ca *CA) MustIntermediate(tb TB, name string, opts ...Option) *CA {
	tb.Helper()
	sub, err := ca.Intermediate(name, opts...)
	if err != nil {
		tb.Fatalf("testpki: intermediate CA %q: %v", name, err)
	}
	return sub
}

// MustIssue is [CA.Issue] for tests.
func (ca *CA) MustIssue(tb TB, opts ...Option) *Cert {
	tb.Helper()
	c, err := ca.Issue(opts...)
	if err != nil {
		tb.Fatalf("testpki: issuing by %s: %v", ca.Cert.Subject, err)
	}
	return c
}

// MustSelfSigned is [SelfSigned] for tests.
func MustSelfSigned(tb TB, opts ...Option) *Cert {
	tb.Helper()
	c, err := SelfSigned(opts...)
	if err != nil {
		tb.Fatalf("testpki: self-signed certificate: %v", err)
	}
	return c
}

// make1 makes one certificate: a CA's (isCA) or a leaf, signed by parent
// or by itself when parent is nil. It returns the clock it used.
func make1(name string, isCA bool, parent *CA, opts []Option) (*Cert, func() time.Time, error) {
	s := &spec{}
	if parent != nil {
		s.now = parent.now
	}
	for _, o := range opts {
		o(s)
	}
	if s.now == nil {
		s.now = testclock.Now
	}
	t := &s.tmpl
	var now time.Time
	if !s.notBeforeSet || !s.notAfterSet {
		now = s.now()
	}
	if isCA {
		if !s.subjectSet {
			t.Subject = pkix.Name{CommonName: name}
		}
		if !s.notBeforeSet {
			t.NotBefore = now.AddDate(-5, 0, 0)
		}
		if !s.notAfterSet {
			t.NotAfter = now.AddDate(10, 0, 0)
		}
		if !s.keyUsageSet {
			t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		}
		t.IsCA, t.BasicConstraintsValid = true, true
	} else {
		if !s.subjectSet {
			cn := "testpki certificate"
			if len(t.EmailAddresses) > 0 {
				cn = t.EmailAddresses[0]
			}
			t.Subject = pkix.Name{CommonName: cn}
		}
		if !s.notBeforeSet {
			t.NotBefore = now.Add(-time.Hour)
		}
		if !s.notAfterSet {
			t.NotAfter = now.AddDate(1, 0, 0)
		}
		if !s.ekuSet {
			t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
		}
		if s.basicConstraints {
			t.BasicConstraintsValid, t.IsCA = true, s.basicConstraintCA
		}
	}
	key := s.key
	if key == nil {
		var err error
		if key, err = NewKey(s.keyType); err != nil {
			return nil, nil, err
		}
	}
	if !isCA && !s.keyUsageSet {
		t.KeyUsage = x509.KeyUsageDigitalSignature
		switch key.(type) {
		case *rsa.PrivateKey:
			t.KeyUsage |= x509.KeyUsageKeyEncipherment
		case *ecdsa.PrivateKey:
			t.KeyUsage |= x509.KeyUsageKeyAgreement
		case ed25519.PrivateKey:
		}
	}
	if t.SerialNumber == nil {
		var sn [16]byte
		if _, err := rand.Read(sn[:]); err != nil {
			return nil, nil, err
		}
		sn[0] = sn[0]&0x7f | 0x01 // positive, 16 bytes
		t.SerialNumber = new(big.Int).SetBytes(sn[:])
	}
	for _, edit := range s.edits {
		edit(t)
	}
	issuer, signer := t, key
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, t, issuer, key.Public(), signer)
	if err != nil {
		return nil, nil, fmt.Errorf("testpki: %s: %w", t.Subject, err)
	}
	c := newCert(der, key)
	if isCA && c.X509() == nil {
		_, err := x509.ParseCertificate(der)
		return nil, nil, fmt.Errorf("testpki: CA %s: %w", t.Subject, err)
	}
	return c, s.now, nil
}

// PEM returns each DER certificate as a PEM CERTIFICATE block.
func PEM(ders ...[]byte) []byte {
	var out []byte
	for _, der := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}

// KeyPEM returns key as a PEM PRIVATE KEY block (PKCS #8).
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
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
