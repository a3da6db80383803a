package smimesync

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
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
	// X509 is Go's parse of Raw.
	X509 *x509.Certificate
	// SHA256 is the fingerprint of Raw.
	SHA256 Fingerprint
	// Subject and Issuer are RFC 2253 strings.
	Subject, Issuer string
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
}
