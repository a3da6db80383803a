package smimesync

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/smimesync/go-smimesync/internal/certparse"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// MaxValueSize is the largest userCertificate or userSMIMECertificate value
// the parsers accept: 1 MiB. Active Directory declares rangeUpper 32768 for
// userSMIMECertificate but does not enforce it, and a SignedData carrying a
// long chain can exceed it; no real certificate or blob comes near 1 MiB, so
// anything larger is refused (ReasonUnparseable, wrapping ErrValueTooLarge)
// before any parsing work is done.
const MaxValueSize = 1 << 20

// ErrValueTooLarge is wrapped by the ParseError for a value longer than
// MaxValueSize.
var ErrValueTooLarge = errors.New("value too large")

// Object identifiers the parsers look for.
var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 37}
	// encodedSmtpUTF8Mailbox is the content octets of the OID
	// 1.3.6.1.5.5.7.8.9 (id-on-SmtpUTF8Mailbox).
	encodedSmtpUTF8Mailbox = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x09}
	oidEmailAddress        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	oidPublicKeyX25519     = asn1.ObjectIdentifier{1, 3, 101, 110}
	oidPublicKeyX448       = asn1.ObjectIdentifier{1, 3, 101, 111}
	oidPublicKeyEd25519    = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidPublicKeyEd448      = asn1.ObjectIdentifier{1, 3, 101, 113}
	oidPublicKeyRSAESOAEP  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidPublicKeyRSAPSS     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidPublicKeyDSA        = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
	// NIST post-quantum arcs: ML-DSA (FIPS 204) is 2.16.840.1.101.3.4.3.17-19,
	// SLH-DSA (FIPS 205) 2.16.840.1.101.3.4.3.20-31, ML-KEM (FIPS 203)
	// 2.16.840.1.101.3.4.4.1-3.
	oidNISTSigAlgs = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3}
	oidNISTKEMAlgs = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 4}
)

// ParseCertificate parses one userCertificate value: a DER X.509
// certificate, or a PEM "CERTIFICATE" block (leading white space allowed).
// It does not keep a reference to value. Every field of the returned
// Certificate is filled in.
//
// On failure the error is a *ParseError with Reason ReasonUnparseable, the
// SHA-256 of value as Fingerprint, and the cause (often crypto/x509's error)
// as Err. Values longer than MaxValueSize are refused.
func ParseCertificate(value []byte) (*Certificate, error) {
	fail := func(err error) (*Certificate, error) {
		return nil, &ParseError{Reason: ReasonUnparseable, Fingerprint: sha256.Sum256(value), Err: err}
	}
	if len(value) > MaxValueSize {
		return fail(fmt.Errorf("%w: %d bytes, the limit is %d", ErrValueTooLarge, len(value), MaxValueSize))
	}
	if len(value) == 0 {
		return fail(errors.New("empty value"))
	}
	var der []byte
	if trimmed := bytes.TrimLeft(value, " \t\r\n"); bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		block, _ := pem.Decode(trimmed)
		if block == nil {
			return fail(errors.New("malformed PEM"))
		}
		if block.Type != "CERTIFICATE" {
			return fail(fmt.Errorf("PEM block of type %q, want CERTIFICATE", block.Type))
		}
		der = block.Bytes // pem.Decode allocates: no alias of value
	} else {
		der = bytes.Clone(value)
	}
	c, err := parseCertificateDER(der)
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// parseCertificateDER parses DER bytes that the caller owns (the Certificate
// keeps them as Raw) and returns crypto/x509's error unchanged. A
// certificate crypto/x509 refuses only for its elliptic curve is parsed
// all the same, KeyUnsupported (see certparse.Parse).
func parseCertificateDER(der []byte) (*Certificate, error) {
	x, unsupported, err := certparse.Parse(der)
	if err != nil {
		return nil, err
	}
	return newCertificate(x, unsupported), nil
}

// newCertificate derives smimesync's view of a parsed certificate.
// unsupported describes its key when crypto/x509 does not implement it.
func newCertificate(x *x509.Certificate, unsupported *certparse.UnsupportedKey) *Certificate {
	key := publicKeyInfo(x, unsupported)
	canEncrypt, canSign := smimeUsage(x, key)
	return &Certificate{
		Raw:            x.Raw,
		X509:           x,
		Serial:         x.SerialNumber,
		Emails:         certificateEmails(x),
		NotBefore:      x.NotBefore,
		NotAfter:       x.NotAfter,
		CanEncrypt:     canEncrypt,
		CanSign:        canSign,
		IsCA:           x.BasicConstraintsValid && x.IsCA,
		KeyType:        key.name,
		KeyBits:        key.bits,
		KeyCurve:       key.curve,
		KeyUnsupported: unsupported != nil,
	}
}

// certificateEmails lists the addresses a certificate covers, lower-cased,
// without duplicates: SAN rfc822Name values, SAN SmtpUTF8Mailbox otherName
// values, then the subject's emailAddress attributes. A certificate holds
// a handful of addresses at most, so duplicates are found by a linear
// search, which allocates nothing.
func certificateEmails(x *x509.Certificate) []string {
	var emails []string
	add := func(s string) {
		s = strings.ToLower(s) // no copy when s is already lower-case ASCII
		if s == "" || slices.Contains(emails, s) {
			return
		}
		emails = append(emails, s)
	}
	for _, e := range x.EmailAddresses {
		add(e)
	}
	smtpUTF8Mailboxes(x, add)
	for _, atv := range x.Subject.Names {
		if atv.Type.Equal(oidEmailAddress) {
			if s, ok := atv.Value.(string); ok {
				add(s)
			}
		}
	}
	return emails
}

// smtpUTF8Mailboxes returns the SmtpUTF8Mailbox otherName values of the
// subject alternative name extension (RFC 9598):
//
//	otherName [0] IMPLICIT SEQUENCE {
//	    type-id 1.3.6.1.5.5.7.8.9,
//	    value   [0] EXPLICIT UTF8String }
//
// crypto/x509 skips otherName entries, so the extension is walked here.
// Malformed entries are skipped; x509 has already checked the SEQUENCE.
func smtpUTF8Mailboxes(x *x509.Certificate, add func(string)) {
	for _, ext := range x.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		input := cryptobyte.String(ext.Value)
		var names cryptobyte.String
		if !input.ReadASN1(&names, cbasn1.SEQUENCE) {
			continue
		}
		for !names.Empty() {
			var name cryptobyte.String
			var tag cbasn1.Tag
			if !names.ReadAnyASN1(&name, &tag) {
				break
			}
			if tag != cbasn1.Tag(0).Constructed().ContextSpecific() {
				continue
			}
			var typeID, value, mailbox cryptobyte.String
			if !name.ReadASN1(&typeID, cbasn1.OBJECT_IDENTIFIER) || !bytes.Equal(typeID, encodedSmtpUTF8Mailbox) {
				continue // compared encoded: decoding every type-id allocates
			}
			if !name.ReadASN1(&value, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
				!value.ReadASN1(&mailbox, cbasn1.UTF8String) || !utf8.Valid(mailbox) {
				continue
			}
			add(string(mailbox))
		}
	}
}

// keyInfo describes a subject public key: its reported name and size, and
// what the algorithm can do for S/MIME.
type keyInfo struct {
	name string
	bits int
	// curve names an EC key's curve.
	curve string
	// transport: the key encrypts a content-encryption key itself (RSA,
	// ML-KEM encapsulation), allowed by keyEncipherment.
	transport bool
	// agree: the key agrees a key (ECDH, X25519), allowed by keyAgreement.
	agree bool
	// sign: the key signs, allowed by digitalSignature.
	sign bool
}

// publicKeyInfo classifies the certificate's key. crypto/x509 decodes RSA,
// ECDSA, Ed25519 (and DSA) keys; for the rest (X25519, X448, Ed448, ML-KEM,
// ML-DSA, …) it reports PublicKeyAlgorithm Unknown, so the algorithm OID is
// read from RawSubjectPublicKeyInfo. An algorithm this table does not know
// is reported by OID with every capability, so that the key usage extension
// alone decides. An EC key on a curve crypto/x509 does not implement
// (unsupported, not nil) is an EC key all the same.
func publicKeyInfo(x *x509.Certificate, unsupported *certparse.UnsupportedKey) keyInfo {
	if unsupported != nil {
		return keyInfo{name: "ECDSA", bits: unsupported.Bits, curve: unsupported.Curve, agree: true, sign: true}
	}
	switch k := x.PublicKey.(type) {
	case *rsa.PublicKey:
		return keyInfo{name: "RSA", bits: k.N.BitLen(), transport: true, sign: true}
	case *ecdsa.PublicKey:
		info := keyInfo{name: "ECDSA", agree: true, sign: true}
		if k.Curve != nil {
			p := k.Curve.Params()
			info.bits, info.curve = p.BitSize, p.Name
		}
		return info
	case ed25519.PublicKey:
		return keyInfo{name: "Ed25519", bits: 8 * ed25519.PublicKeySize, sign: true}
	}
	oid, ok := spkiAlgorithm(x.RawSubjectPublicKeyInfo)
	if !ok {
		return keyInfo{name: "unknown"}
	}
	switch {
	case oid.Equal(oidPublicKeyX25519):
		return keyInfo{name: "X25519", bits: 256, agree: true}
	case oid.Equal(oidPublicKeyEd25519):
		return keyInfo{name: "Ed25519", bits: 256, sign: true}
	case oid.Equal(oidPublicKeyX448):
		return keyInfo{name: oid.String(), agree: true}
	case oid.Equal(oidPublicKeyEd448), oid.Equal(oidPublicKeyDSA), oid.Equal(oidPublicKeyRSAPSS):
		return keyInfo{name: oid.String(), sign: true}
	case oid.Equal(oidPublicKeyRSAESOAEP):
		return keyInfo{name: oid.String(), transport: true}
	case len(oid) == len(oidNISTSigAlgs)+1 && oid[:len(oidNISTSigAlgs)].Equal(oidNISTSigAlgs) && oid[len(oidNISTSigAlgs)] >= 17 && oid[len(oidNISTSigAlgs)] <= 31:
		return keyInfo{name: oid.String(), sign: true} // ML-DSA, SLH-DSA
	case len(oid) == len(oidNISTKEMAlgs)+1 && oid[:len(oidNISTKEMAlgs)].Equal(oidNISTKEMAlgs):
		return keyInfo{name: oid.String(), transport: true} // ML-KEM encapsulates
	}
	return keyInfo{name: oid.String(), transport: true, agree: true, sign: true}
}

// spkiAlgorithm reads the algorithm OID of a SubjectPublicKeyInfo.
func spkiAlgorithm(spki []byte) (asn1.ObjectIdentifier, bool) {
	input := cryptobyte.String(spki)
	var info, alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !input.ReadASN1(&info, cbasn1.SEQUENCE) ||
		!info.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&oid) {
		return nil, false
	}
	return oid, true
}

// smimeUsage decides whether a certificate may encrypt mail to its holder
// and sign mail, from its key type, key usage and extended key usage.
//
// These are the choices, all here:
//   - Without a key usage extension, every usage the key type supports is
//     allowed (RFC 5280 4.2.1.3).
//   - Encryption: keyEncipherment for key-transport keys (RSA, ML-KEM),
//     keyAgreement for key-agreement keys (EC, X25519). dataEncipherment
//     does not count (S/MIME never encrypts content with the public key),
//     and encipherOnly / decipherOnly are ignored: they restrict how the
//     agreed key is used, not whether mail can be encrypted to the holder.
//   - Signing: digitalSignature is required, as FACTS.md ("signing needs
//     digitalSignature") and the CanSign doc say. RFC 8550 4.4.2 would also
//     accept nonRepudiation alone; allowNonRepudiationOnly switches to that.
//   - An extended key usage extension, when present (even empty), must list
//     emailProtection or anyExtendedKeyUsage, or nothing is allowed.
func smimeUsage(x *x509.Certificate, key keyInfo) (canEncrypt, canSign bool) {
	if hasExtension(x, oidExtKeyUsage) && !ekuAllowsEmail(x) {
		return false, false
	}
	if !hasExtension(x, oidKeyUsage) {
		return key.transport || key.agree, key.sign
	}
	ku := x.KeyUsage
	canEncrypt = (key.transport && ku&x509.KeyUsageKeyEncipherment != 0) ||
		(key.agree && ku&x509.KeyUsageKeyAgreement != 0)
	signBits := x509.KeyUsageDigitalSignature
	if allowNonRepudiationOnly {
		signBits |= x509.KeyUsageContentCommitment
	}
	canSign = key.sign && ku&signBits != 0
	return canEncrypt, canSign
}

// allowNonRepudiationOnly makes nonRepudiation (contentCommitment) alone
// enough for CanSign, as RFC 8550 4.4.2 allows. Off: FACTS.md asks for
// digitalSignature.
const allowNonRepudiationOnly = false

func ekuAllowsEmail(x *x509.Certificate) bool {
	for _, u := range x.ExtKeyUsage {
		if u == x509.ExtKeyUsageEmailProtection || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func hasExtension(x *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, ext := range x.Extensions {
		if ext.Id.Equal(oid) {
			return true
		}
	}
	return false
}
