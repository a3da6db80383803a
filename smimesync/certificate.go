package smimesync

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"time"
)

// Fingerprint is the SHA-256 digest of a certificate's DER encoding (or of a
// userSMIMECertificate value's bytes).
type Fingerprint [32]byte

// String returns the fingerprint as lowercase hex.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// MarshalText implements encoding.TextMarshaler (lowercase hex).
func (f Fingerprint) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: 64 hex digits.
func (f *Fingerprint) UnmarshalText(b []byte) error {
	if len(b) != 2*len(f) {
		return fmt.Errorf("smimesync: fingerprint %q is not 64 hex digits", b)
	}
	if _, err := hex.Decode(f[:], b); err != nil {
		return fmt.Errorf("smimesync: fingerprint %q: %w", b, err)
	}
	return nil
}

// ParseFingerprint parses 64 hex digits.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	err := f.UnmarshalText([]byte(s))
	return f, err
}

// Certificate is an X.509 certificate as smimesync sees it: identity, the
// addresses it covers, validity, and what it can do for S/MIME.
type Certificate struct {
	// Raw is the DER encoding.
	Raw []byte
	// X509 is Go's parse of Raw; never nil. For a certificate whose key
	// crypto/x509 does not implement (KeyUnsupported), it is crypto/x509's
	// parse of everything but the key: PublicKey is nil and
	// PublicKeyAlgorithm is x509.UnknownPublicKeyAlgorithm.
	X509 *x509.Certificate
	// Serial is the serial number.
	Serial *big.Int
	// Emails lists the addresses the certificate covers, lower-cased, in
	// this order and without duplicates: SAN rfc822Name values, SAN
	// SmtpUTF8Mailbox otherName values (1.3.6.1.5.5.7.8.9), then the
	// subject's emailAddress attributes.
	Emails []string
	// NotBefore and NotAfter bound the validity period.
	NotBefore, NotAfter time.Time
	// CanEncrypt is true when the key can be used to encrypt mail to its
	// holder: an RSA key with keyEncipherment, or an EC / X25519 key with
	// keyAgreement, and an extended key usage (when present) that includes
	// emailProtection or anyExtendedKeyUsage. A certificate with no key
	// usage extension at all counts as allowing every usage its key type
	// supports.
	CanEncrypt bool
	// CanSign is true when the key may sign mail: digitalSignature (or
	// nonRepudiation alongside it), with the same extended key usage rule.
	CanSign bool
	// IsCA is true for a CA certificate (basicConstraints cA).
	IsCA bool
	// KeyType is "RSA", "ECDSA", "Ed25519", "X25519" or the public key
	// algorithm's OID for others; KeyBits is its size in bits (the curve
	// size for EC keys), 0 when unknown.
	KeyType string
	KeyBits int
	// KeyCurve names the curve of an EC key: "P-256", "brainpoolP256r1",
	// or the curve's OID in dotted form when this package does not know
	// its name. It is empty for other keys.
	KeyCurve string
	// KeyUnsupported is true for a key crypto/x509 does not implement: an
	// EC key on a named curve other than P-224, P-256, P-384 and P-521,
	// such as brainpoolP256r1 or brainpoolP384r1. Everything else about
	// the certificate is parsed and judged as for any other, and its
	// issuer's signature on it can be checked; what needs the key itself
	// cannot: signatures it made (a blob's SignerInfo) and certificates it
	// issued. The key is checked only for its encoding, not for being a
	// point on the curve.
	KeyUnsupported bool
}

// SHA256 returns the fingerprint of Raw. It is computed on each call: the
// policy identifies a value by the fingerprint of the value itself
// (Decision.SHA256), which for a userCertificate value is this one.
func (c *Certificate) SHA256() Fingerprint { return sha256.Sum256(c.Raw) }

// Subject returns the subject name as an RFC 2253 string (crypto/x509's
// pkix.Name.String). It is computed on each call.
func (c *Certificate) Subject() string { return c.X509.Subject.String() }

// Issuer returns the issuer name as an RFC 2253 string (crypto/x509's
// pkix.Name.String). It is computed on each call.
func (c *Certificate) Issuer() string { return c.X509.Issuer.String() }

// Key describes the public key for people: "RSA 2048", "ECDSA 256",
// "Ed25519 256", and, for a curve crypto/x509 does not implement, the
// curve's name: "ECDSA brainpoolP256r1".
func (c *Certificate) Key() string {
	switch {
	case c.KeyUnsupported && c.KeyCurve != "":
		return c.KeyType + " " + c.KeyCurve
	case c.KeyBits > 0:
		return c.KeyType + " " + strconv.Itoa(c.KeyBits)
	}
	return c.KeyType
}
