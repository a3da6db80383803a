// Package certparse parses X.509 certificates with crypto/x509, and also
// those that crypto/x509 refuses only because their elliptic-curve key is
// on a curve it does not implement: brainpoolP256r1, brainpoolP384r1 and
// the like, which German and Austrian PKIs and health directories issue.
//
// crypto/x509 rejects such a certificate as a whole ("x509: unsupported
// elliptic curve"), although everything but the key — names, validity,
// extensions, the issuer's signature over it — is ordinary X.509. Parse
// gives crypto/x509's own parse of all of that, with no public key: no key
// is made up, and nothing needing the key (a signature the key made, a
// certificate it issued) can be checked with the result.
package certparse

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// UnsupportedKey describes an elliptic-curve key that crypto/x509 does not
// implement.
type UnsupportedKey struct {
	// Curve is the curve's name ("brainpoolP256r1"), or its OID in dotted
	// form for a curve this package does not know.
	Curve string
	// Bits is the curve's size, 0 for a curve this package does not know.
	Bits int
}

// String returns "ECDSA brainpoolP256r1".
func (k *UnsupportedKey) String() string { return "ECDSA " + k.Curve }

// crypto/x509's message for a named curve it does not implement; it has
// no sentinel error (x509/parser.go, parsePublicKey).
const unsupportedCurve = "x509: unsupported elliptic curve"

var (
	// encodedPublicKeyEC is the content of the OID 1.2.840.10045.2.1
	// (id-ecPublicKey).
	encodedPublicKeyEC = []byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01}

	// curves are the named curves whose public keys are checked for the
	// point length; others are accepted by OID without that check.
	curves = []struct {
		oid  asn1.ObjectIdentifier
		name string
		bits int
	}{
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 1}, "brainpoolP160r1", 160},
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 3}, "brainpoolP192r1", 192},
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 5}, "brainpoolP224r1", 224},
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 7}, "brainpoolP256r1", 256},
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 9}, "brainpoolP320r1", 320},
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 11}, "brainpoolP384r1", 384},
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 13}, "brainpoolP512r1", 512},
		{asn1.ObjectIdentifier{1, 3, 132, 0, 10}, "secp256k1", 256},
	}
)

// Parse parses one DER certificate. It is crypto/x509's ParseCertificate,
// except for a certificate that crypto/x509 refuses only for its named
// elliptic curve: for it, key is not nil, and cert is crypto/x509's parse
// of everything else, with PublicKey nil and PublicKeyAlgorithm
// x509.UnknownPublicKeyAlgorithm. Its Raw, RawTBSCertificate,
// RawSubjectPublicKeyInfo and the rest are the certificate's own bytes, so
// its issuer's signature on it can be checked (CheckSignatureFrom,
// Verify) when the issuer's key is one crypto/x509 implements.
//
// Such a key is checked only for its encoding (an uncompressed or
// compressed point of the curve's size), not for being on the curve.
// Any other error is crypto/x509's, unchanged. Parse does not keep or
// modify der in the common case; for an unsupported key it parses a copy.
func Parse(der []byte) (cert *x509.Certificate, key *UnsupportedKey, err error) {
	cert, err = x509.ParseCertificate(der)
	if err == nil || err.Error() != unsupportedCurve {
		return cert, nil, err
	}
	off, key, kerr := locateECAlgorithm(der)
	if kerr != nil {
		return nil, nil, kerr
	}
	// Parse a copy in which the key's algorithm OID is changed in its last
	// byte (same length, so every other byte keeps its place): crypto/x509
	// then treats the key as an algorithm it does not know, parses
	// everything else and leaves PublicKey nil. The byte is put back
	// afterwards, so that every slice of the result (Raw,
	// RawTBSCertificate, RawSubjectPublicKeyInfo, extension values) holds
	// the certificate's own bytes.
	cp := append([]byte(nil), der...)
	orig := cp[off]
	cp[off] ^= 0x7e // 0x01 (ecPublicKey) becomes 0x7f: 1.2.840.10045.2.127
	cert, err = x509.ParseCertificate(cp)
	cp[off] = orig
	if err != nil {
		return nil, nil, err
	}
	if cert.PublicKeyAlgorithm != x509.UnknownPublicKeyAlgorithm || cert.PublicKey != nil {
		return nil, nil, fmt.Errorf("certparse: internal error: masked key algorithm parsed as %v", cert.PublicKeyAlgorithm)
	}
	return cert, key, nil
}

// locateECAlgorithm finds the id-ecPublicKey OID of der's
// SubjectPublicKeyInfo and returns the offset of its last byte in der, and
// the named curve. It fails unless the key is an EC key on a named curve
// with a well-formed public key.
func locateECAlgorithm(der []byte) (int, *UnsupportedKey, error) {
	malformed := func(what string) (int, *UnsupportedKey, error) {
		return 0, nil, fmt.Errorf("x509: malformed %s", what)
	}
	in := cryptobyte.String(der)
	var cert, tbs, spki, alg cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return malformed("certificate")
	}
	if !tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!tbs.SkipASN1(cbasn1.INTEGER) || // serialNumber
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // signature
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // issuer
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // validity
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // subject
		!tbs.ReadASN1(&spki, cbasn1.SEQUENCE) ||
		!spki.ReadASN1(&alg, cbasn1.SEQUENCE) {
		return malformed("tbs certificate")
	}
	var algOID cryptobyte.String
	if !alg.ReadASN1(&algOID, cbasn1.OBJECT_IDENTIFIER) || len(algOID) == 0 {
		return malformed("public key algorithm identifier")
	}
	if !bytes.Equal(algOID, encodedPublicKeyEC) {
		return 0, nil, errors.New(unsupportedCurve) // not the case this package handles
	}
	// algOID is a slice of der: its last byte is at this offset (cap
	// counts from a slice's start to the end of the shared array).
	off := cap(der) - cap(algOID) + len(algOID) - 1
	var curveOID asn1.ObjectIdentifier
	if !alg.ReadASN1ObjectIdentifier(&curveOID) || !alg.Empty() {
		return 0, nil, errors.New("x509: invalid ECDSA parameters")
	}
	var point asn1.BitString
	if !spki.ReadASN1BitString(&point) || point.BitLength%8 != 0 || !spki.Empty() {
		return malformed("subjectPublicKey")
	}
	key := &UnsupportedKey{Curve: curveOID.String()}
	for _, c := range curves {
		if c.oid.Equal(curveOID) {
			key.Curve, key.Bits = c.name, c.bits
			break
		}
	}
	if key.Bits > 0 {
		n := (key.Bits + 7) / 8
		b := point.Bytes
		ok := len(b) > 0 && (b[0] == 4 && len(b) == 1+2*n || (b[0] == 2 || b[0] == 3) && len(b) == 1+n)
		if !ok {
			return 0, nil, fmt.Errorf("x509: invalid %s public key: %d bytes", key.Curve, len(b))
		}
	}
	return off, key, nil
}
