// Package cmssign builds CMS SignedData values (RFC 5652) with a signing
// time chosen by the caller, for the tests, the example binary's demo and
// the benchmark's synthetic directory.
//
// github.com/smallstep/pkcs7, which the module uses to verify signatures,
// always stamps the signingTime attribute with time.Now(), and its
// ExtraSignedAttributes cannot replace it (the attribute would appear
// twice). A blob made for a certificate that is valid on a test clock
// other than the real one must carry that clock's time, or verification
// finds its signing time outside the signer's validity. This package writes
// the few fields it needs with encoding/asn1 and signs with crypto.
//
// Only what those callers need is supported: SHA-256 digests, RSA
// (PKCS #1 v1.5) and ECDSA signer keys, signers identified by issuer and
// serial number, id-data content.
package cmssign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Object identifiers this package writes.
var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidECDSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	// OIDSigningTime is the signingTime signed attribute (RFC 5652 11.3).
	OIDSigningTime = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
)

// Attribute is one extra signed attribute; Value is encoded with
// asn1.Marshal (an asn1.RawValue is written as it is).
type Attribute struct {
	Type  asn1.ObjectIdentifier
	Value any
}

// Signer is one signature of a SignedData.
type Signer struct {
	// Cert is the signer's certificate; it is put in the certificate set.
	Cert *x509.Certificate
	// Key is its private key: *rsa.PrivateKey or *ecdsa.PrivateKey (or a
	// crypto.Signer whose public key is one of those).
	Key crypto.Signer
	// SigningTime goes into the signingTime attribute, in UTC, to the
	// second. The zero time leaves the attribute out.
	SigningTime time.Time
	// Attributes are more signed attributes (smimeCapabilities,
	// encrypKeyPref, …).
	Attributes []Attribute
}

// SignedData describes the value to build.
type SignedData struct {
	// Content is signed and, unless Detached, carried as eContent.
	Content []byte
	// Detached leaves the content out of the value.
	Detached bool
	// Signers sign Content; their certificates are put in the
	// certificate set first.
	Signers []Signer
	// Certificates are added to the certificate set after the signers'
	// (a CA, an encryption certificate).
	Certificates []*x509.Certificate
}

// Sign is the common case: content signed by cert's holder at signingTime,
// with cert and chain in the certificate set.
func Sign(content []byte, cert *x509.Certificate, key crypto.Signer, chain []*x509.Certificate, signingTime time.Time) ([]byte, error) {
	return SignedData{Content: content, Signers: []Signer{{Cert: cert, Key: key, SigningTime: signingTime}}, Certificates: chain}.Encode()
}

// Encode returns the DER ContentInfo holding the SignedData.
func (sd SignedData) Encode() ([]byte, error) {
	if len(sd.Signers) == 0 {
		return nil, errors.New("cmssign: no signer")
	}
	digest := sha256.Sum256(sd.Content)
	sha256Alg, err := algorithm(oidSHA256, true)
	if err != nil {
		return nil, err
	}
	var certs [][]byte
	addCert := func(c *x509.Certificate) {
		if !slices.ContainsFunc(certs, func(b []byte) bool { return bytes.Equal(b, c.Raw) }) {
			certs = append(certs, c.Raw)
		}
	}
	var infos [][]byte
	for i, s := range sd.Signers {
		if s.Cert == nil || s.Key == nil {
			return nil, fmt.Errorf("cmssign: signer %d has no certificate or key", i)
		}
		addCert(s.Cert)
		info, err := s.signerInfo(digest[:], sha256Alg)
		if err != nil {
			return nil, fmt.Errorf("cmssign: signer %d (%s): %w", i, s.Cert.Subject, err)
		}
		infos = append(infos, info)
	}
	for _, c := range sd.Certificates {
		addCert(c)
	}

	encap := [][]byte{mustMarshal(oidData)}
	if !sd.Detached {
		octets := mustMarshal(sd.Content)
		encap = append(encap, tlv(0xa0, octets))
	}
	version := mustMarshal(1)
	body := tlv(0x30,
		version,
		tlv(0x31, sha256Alg),
		tlv(0x30, encap...),
		tlv(0xa0, certs...),
		tlv(0x31, sortedSet(infos)...),
	)
	return tlv(0x30, mustMarshal(oidSignedData), tlv(0xa0, body)), nil
}

func (s Signer) signerInfo(digest, digestAlg []byte) ([]byte, error) {
	attrs := []Attribute{{oidContentType, oidData}}
	if !s.SigningTime.IsZero() {
		attrs = append(attrs, Attribute{OIDSigningTime, s.SigningTime.UTC().Truncate(time.Second)})
	}
	attrs = append(attrs, Attribute{oidMessageDigest, digest})
	attrs = append(attrs, s.Attributes...)
	encoded := make([][]byte, len(attrs))
	for i, a := range attrs {
		v, err := asn1.Marshal(a.Value)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.Type, err)
		}
		encoded[i] = tlv(0x30, mustMarshal(a.Type), tlv(0x31, v))
	}
	encoded = sortedSet(encoded)
	// The signature covers the attributes with a SET OF tag (RFC 5652
	// 5.4); the SignerInfo carries them [0] IMPLICIT.
	h := sha256.Sum256(tlv(0x31, encoded...))
	var sigAlg []byte
	var err error
	switch s.Key.Public().(type) {
	case *rsa.PublicKey:
		sigAlg, err = algorithm(oidRSAEncryption, true)
	case *ecdsa.PublicKey:
		sigAlg, err = algorithm(oidECDSASHA256, false)
	default:
		return nil, fmt.Errorf("unsupported key type %T", s.Key.Public())
	}
	if err != nil {
		return nil, err
	}
	sig, err := s.Key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	serial, err := asn1.Marshal(s.Cert.SerialNumber)
	if err != nil {
		return nil, err
	}
	return tlv(0x30,
		mustMarshal(1),
		tlv(0x30, s.Cert.RawIssuer, serial),
		digestAlg,
		tlv(0xa0, encoded...),
		sigAlg,
		mustMarshal(sig),
	), nil
}

// algorithm encodes an AlgorithmIdentifier, with NULL parameters or none.
func algorithm(oid asn1.ObjectIdentifier, nullParams bool) ([]byte, error) {
	o, err := asn1.Marshal(oid)
	if err != nil {
		return nil, err
	}
	if nullParams {
		return tlv(0x30, o, []byte{0x05, 0x00}), nil
	}
	return tlv(0x30, o), nil
}

// sortedSet orders the encodings of a DER SET OF.
func sortedSet(elems [][]byte) [][]byte {
	out := slices.Clone(elems)
	slices.SortFunc(out, bytes.Compare)
	return out
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// tlv encodes one DER element with a single-octet identifier.
func tlv(tag byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := []byte{tag}
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	default:
		var l []byte
		for m := n; m > 0; m >>= 8 {
			l = append([]byte{byte(m)}, l...)
		}
		out = append(out, 0x80|byte(len(l)))
		out = append(out, l...)
	}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
