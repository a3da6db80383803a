package smimesync

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
)

// Object identifiers of CMS content types and signed attributes.
var (
	oidData                 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidEnvelopedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidDigestedData         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 5}
	oidEncryptedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidAuthData             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 2}
	oidCompressedData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 9}
	oidAuthEnvelopedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23}
	oidSMIMECapabilities    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15}
	oidEncrypKeyPref        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 11}
	oidMicrosoftEncryptCert = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 16, 4}
	oidSigningTime          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
)

// Errors a Blob's VerifyError wraps. Every VerifyError wraps exactly one of
// ErrSignatureInvalid and ErrCannotVerify.
var (
	// ErrSignatureInvalid: a signature was checked and is wrong (the
	// content's digest does not match the signed messageDigest, or the
	// signer's key rejects the signature).
	ErrSignatureInvalid = errors.New("signature is invalid")
	// ErrCannotVerify: a signature could not be checked (detached content,
	// signer certificate missing or refused by Go's parser, an algorithm
	// the verifier does not support, a malformed SignerInfo).
	ErrCannotVerify = errors.New("signature cannot be verified")
	// ErrDetachedContent is wrapped (with ErrCannotVerify) when the
	// SignedData signs content it does not carry.
	ErrDetachedContent = errors.New("detached content not available")
)

// contentTypeNames names the content types a userSMIMECertificate value may
// wrongly hold, for error messages.
var contentTypeNames = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{oidData, "data"},
	{oidSignedData, "signedData"},
	{oidEnvelopedData, "envelopedData"},
	{oidDigestedData, "digestedData"},
	{oidEncryptedData, "encryptedData"},
	{oidAuthData, "authData"},
	{oidCompressedData, "compressedData"},
	{oidAuthEnvelopedData, "authEnvelopedData"},
}

func contentTypeName(oid asn1.ObjectIdentifier) string {
	for _, c := range contentTypeNames {
		if c.oid.Equal(oid) {
			return c.name
		}
	}
	return "unknown content type"
}

// ParseSMIMECertificate parses one userSMIMECertificate value: a CMS
// ContentInfo holding a SignedData, in DER or BER (indefinite lengths,
// constructed OCTET STRINGs), signed or certificates-only. It does not keep a
// reference to value.
//
// Each certificate of the SignedData is parsed on its own with
// ParseCertificate's rules; one that Go's parser refuses lands in
// Blob.Rejected as a *CertificateError and the others are kept. Signers are
// described (a malformed SignerInfo is left out, and VerifyError says so)
// and linked to their certificate, their smimeCapabilities,
// encrypKeyPref and Microsoft encryption-certificate attributes extracted,
// and their signatures checked (without chain validation) with
// github.com/smallstep/pkcs7. A signature that cannot be checked or does not
// verify does not make the value fail: Blob.Verified is false and
// Blob.VerifyError says why.
//
// A signer whose signingTime attribute lies outside its certificate's
// validity (pkcs7 alone refuses to check such a signature) still has its
// signature checked, digest and key: Blob.Verified says whether it is
// right, and Signer.SigningTime and Signer.SigningTimeOutsideValidity
// report the signing time separately. Such a blob is neither a bad
// signature nor "cannot verify".
//
// Errors are *ParseError values carrying the SHA-256 of value:
//   - ReasonSecuritySettings (wrapping ErrSecuritySettings) when the first
//     byte is not 0x30: Outlook's security-settings blob, not CMS;
//   - ReasonWrongContentType for any content type but SignedData
//     (EnvelopedData, AuthEnvelopedData, …), naming the OID;
//   - ReasonNoCertificates for a SignedData that carries no certificate;
//   - ReasonUnparseable for malformed BER/DER, a value longer than
//     MaxValueSize (wrapping ErrValueTooLarge), or a SignedData none of
//     whose certificates can be parsed (the per-certificate errors joined).
func ParseSMIMECertificate(value []byte) (*Blob, error) {
	fp := Fingerprint(sha256.Sum256(value))
	fail := func(reason Reason, err error) (*Blob, error) {
		return nil, &ParseError{Reason: reason, Fingerprint: fp, Err: err}
	}
	if len(value) == 0 {
		return fail(ReasonUnparseable, errors.New("empty value"))
	}
	if value[0] != 0x30 {
		return fail(ReasonSecuritySettings, fmt.Errorf("%w: first byte 0x%02x", ErrSecuritySettings, value[0]))
	}
	if len(value) > MaxValueSize {
		return fail(ReasonUnparseable, fmt.Errorf("%w: %d bytes, the limit is %d", ErrValueTooLarge, len(value), MaxValueSize))
	}
	raw := bytes.Clone(value)
	der, changed, err := berToDER(raw)
	if err != nil {
		return fail(ReasonUnparseable, err)
	}
	sd, reason, err := parseContentInfo(der)
	if err != nil {
		return fail(reason, err)
	}
	blob := &Blob{Raw: raw, SHA256: fp, BER: changed, Content: sd.content}

	if len(sd.certs) == 0 {
		return fail(ReasonNoCertificates, errors.New("the SignedData carries no certificates"))
	}
	for i, rv := range sd.certs {
		if rv.Class != asn1.ClassUniversal || rv.Tag != asn1.TagSequence {
			blob.Rejected = append(blob.Rejected, &CertificateError{
				Index: i, Fingerprint: sha256.Sum256(rv.FullBytes),
				Err: fmt.Errorf("certificate set entry [%d] is not an X.509 certificate (attribute or other certificate format)", rv.Tag),
			})
			continue
		}
		c, err := parseCertificateDER(rv.FullBytes)
		if err != nil {
			blob.Rejected = append(blob.Rejected, &CertificateError{Index: i, Fingerprint: sha256.Sum256(rv.FullBytes), Err: err})
			continue
		}
		blob.Certificates = append(blob.Certificates, c)
	}
	if len(blob.Certificates) == 0 {
		return fail(ReasonUnparseable, fmt.Errorf("none of the %d certificates can be parsed: %w", len(blob.Rejected), errors.Join(blob.Rejected...)))
	}

	signers := make([]signerInfo, 0, len(sd.signerInfos))
	var signerErr error
	for i, rv := range sd.signerInfos {
		si, err := parseSignerInfo(rv, blob.Certificates)
		if err != nil {
			if signerErr == nil {
				signerErr = fmt.Errorf("%w: SignerInfo %d is malformed: %w", ErrCannotVerify, i, err)
			}
			continue
		}
		signers = append(signers, si)
		blob.Signers = append(blob.Signers, si.Signer)
	}
	if len(sd.signerInfos) > 0 {
		blob.VerifyError = signerErr
		if blob.VerifyError == nil {
			blob.VerifyError = verifySignedData(sd, blob.Certificates, signers)
		}
		blob.Verified = blob.VerifyError == nil
	}
	return blob, nil
}

// signedData holds the parts of a SignedData the parser and the verifier
// need, as slices of the normalised DER.
type signedData struct {
	version, digestAlgorithms, encapContentInfo []byte
	// content is true when encapContentInfo carries eContent.
	content bool
	// certs are the entries of the certificates field, in order.
	certs []asn1.RawValue
	// signerInfos are the SignerInfo elements, in order.
	signerInfos []asn1.RawValue
}

// readElement reads one DER element from b.
func readElement(b []byte, what string) (asn1.RawValue, []byte, error) {
	var rv asn1.RawValue
	rest, err := asn1.Unmarshal(b, &rv)
	if err != nil {
		return rv, nil, fmt.Errorf("%s: %w", what, err)
	}
	return rv, rest, nil
}

// readTagged reads one element and checks its class, tag and form.
func readTagged(b []byte, class, tag int, compound bool, what string) (asn1.RawValue, []byte, error) {
	rv, rest, err := readElement(b, what)
	if err != nil {
		return rv, nil, err
	}
	if rv.Class != class || rv.Tag != tag || rv.IsCompound != compound {
		return rv, nil, fmt.Errorf("%s: unexpected identifier 0x%02x", what, rv.FullBytes[0])
	}
	return rv, rest, nil
}

// parseContentInfo checks that der is a ContentInfo holding a SignedData
// and splits the SignedData. The Reason says how to report an error.
func parseContentInfo(der []byte) (*signedData, Reason, error) {
	ci, _, err := readTagged(der, asn1.ClassUniversal, asn1.TagSequence, true, "ContentInfo")
	if err != nil {
		return nil, ReasonUnparseable, err
	}
	var contentType asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(ci.Bytes, &contentType)
	if err != nil {
		return nil, ReasonUnparseable, fmt.Errorf("ContentInfo contentType: %w", err)
	}
	if !contentType.Equal(oidSignedData) {
		return nil, ReasonWrongContentType, fmt.Errorf("content type %s (%s), want signedData (%s)", contentType, contentTypeName(contentType), oidSignedData)
	}
	wrapper, rest, err := readTagged(rest, asn1.ClassContextSpecific, 0, true, "ContentInfo content")
	if err != nil {
		return nil, ReasonUnparseable, err
	}
	if len(rest) > 0 {
		return nil, ReasonUnparseable, errors.New("ContentInfo: unexpected data after the content")
	}
	body, rest, err := readTagged(wrapper.Bytes, asn1.ClassUniversal, asn1.TagSequence, true, "SignedData")
	if err != nil {
		return nil, ReasonUnparseable, err
	}
	if len(rest) > 0 {
		return nil, ReasonUnparseable, errors.New("ContentInfo content: unexpected data after the SignedData")
	}
	sd, err := splitSignedData(body.Bytes)
	if err != nil {
		return nil, ReasonUnparseable, err
	}
	return sd, "", nil
}

// splitSignedData walks the SignedData fields (RFC 5652 5.1):
//
//	SignedData ::= SEQUENCE {
//	    version CMSVersion,
//	    digestAlgorithms SET OF DigestAlgorithmIdentifier,
//	    encapContentInfo EncapsulatedContentInfo,
//	    certificates [0] IMPLICIT CertificateSet OPTIONAL,
//	    crls [1] IMPLICIT RevocationInfoChoices OPTIONAL,
//	    signerInfos SET OF SignerInfo }
func splitSignedData(b []byte) (*signedData, error) {
	sd := &signedData{}
	version, b, err := readTagged(b, asn1.ClassUniversal, asn1.TagInteger, false, "SignedData version")
	if err != nil {
		return nil, err
	}
	sd.version = version.FullBytes
	algs, b, err := readTagged(b, asn1.ClassUniversal, asn1.TagSet, true, "SignedData digestAlgorithms")
	if err != nil {
		return nil, err
	}
	sd.digestAlgorithms = algs.FullBytes
	encap, b, err := readTagged(b, asn1.ClassUniversal, asn1.TagSequence, true, "SignedData encapContentInfo")
	if err != nil {
		return nil, err
	}
	sd.encapContentInfo = encap.FullBytes
	var eContentType asn1.ObjectIdentifier
	eContent, err := asn1.Unmarshal(encap.Bytes, &eContentType)
	if err != nil {
		return nil, fmt.Errorf("SignedData eContentType: %w", err)
	}
	if len(eContent) > 0 {
		wrapper, rest, err := readTagged(eContent, asn1.ClassContextSpecific, 0, true, "SignedData eContent")
		if err != nil {
			return nil, err
		}
		if len(rest) > 0 {
			return nil, errors.New("SignedData encapContentInfo: unexpected data after eContent")
		}
		sd.content = len(wrapper.Bytes) > 0
	}

	seenCerts, seenCRLs := false, false
	for {
		if len(b) == 0 {
			return nil, errors.New("SignedData: signerInfos missing")
		}
		rv, rest, err := readElement(b, "SignedData field")
		if err != nil {
			return nil, err
		}
		b = rest
		switch {
		case rv.Class == asn1.ClassContextSpecific && rv.Tag == 0 && rv.IsCompound && !seenCerts && !seenCRLs:
			seenCerts = true
			if sd.certs, err = splitCertificateSet(rv.Bytes); err != nil {
				return nil, err
			}
		case rv.Class == asn1.ClassContextSpecific && rv.Tag == 1 && rv.IsCompound && !seenCRLs:
			seenCRLs = true // revocation information is not used
		case rv.Class == asn1.ClassUniversal && rv.Tag == asn1.TagSet && rv.IsCompound:
			if len(b) > 0 {
				return nil, errors.New("SignedData: unexpected data after signerInfos")
			}
			infos := rv.Bytes
			for len(infos) > 0 {
				si, rest, err := readTagged(infos, asn1.ClassUniversal, asn1.TagSequence, true, "SignerInfo")
				if err != nil {
					return nil, err
				}
				sd.signerInfos = append(sd.signerInfos, si)
				infos = rest
			}
			return sd, nil
		default:
			return nil, fmt.Errorf("SignedData: unexpected field with identifier 0x%02x", rv.FullBytes[0])
		}
	}
}

// splitCertificateSet splits a CertificateSet into its entries.
func splitCertificateSet(b []byte) ([]asn1.RawValue, error) {
	var certs []asn1.RawValue
	for len(b) > 0 {
		rv, rest, err := readElement(b, fmt.Sprintf("certificate set entry %d", len(certs)))
		if err != nil {
			return nil, err
		}
		certs = append(certs, rv)
		b = rest
	}
	return certs, nil
}

// signerInfo is a parsed SignerInfo: the public description and the parts
// the verifier re-assembles.
type signerInfo struct {
	Signer
	// version is the CMSVersion element; afterSID the encoded fields that
	// follow the signer identifier (digestAlgorithm to the end).
	version, afterSID []byte
}

// parseSignerInfo reads a SignerInfo (RFC 5652 5.3) and links it to its
// certificate among certs:
//
//	SignerInfo ::= SEQUENCE {
//	    version CMSVersion,
//	    sid SignerIdentifier,   -- issuerAndSerialNumber or [0] subjectKeyIdentifier
//	    digestAlgorithm DigestAlgorithmIdentifier,
//	    signedAttrs [0] IMPLICIT SignedAttributes OPTIONAL,
//	    signatureAlgorithm SignatureAlgorithmIdentifier,
//	    signature SignatureValue,
//	    unsignedAttrs [1] IMPLICIT UnsignedAttributes OPTIONAL }
func parseSignerInfo(rv asn1.RawValue, certs []*Certificate) (signerInfo, error) {
	var si signerInfo
	version, b, err := readTagged(rv.Bytes, asn1.ClassUniversal, asn1.TagInteger, false, "version")
	if err != nil {
		return si, err
	}
	si.version = version.FullBytes
	sid, b, err := readElement(b, "sid")
	if err != nil {
		return si, err
	}
	si.afterSID = b
	switch {
	case sid.Class == asn1.ClassUniversal && sid.Tag == asn1.TagSequence && sid.IsCompound:
		issuer, serial, err := parseIssuerSerial(sid.Bytes)
		if err != nil {
			return si, fmt.Errorf("sid: %w", err)
		}
		si.Issuer, si.Serial = issuerString(issuer), formatSerial(serial)
		for _, c := range certs {
			if c.Serial.Cmp(serial) == 0 && (bytes.Equal(c.X509.RawIssuer, issuer) || c.Issuer() == si.Issuer) {
				si.Certificate = c
				break
			}
		}
	case sid.Class == asn1.ClassContextSpecific && sid.Tag == 0 && !sid.IsCompound:
		si.SubjectKeyID = bytes.Clone(sid.Bytes)
		for _, c := range certs {
			if len(sid.Bytes) > 0 && bytes.Equal(c.X509.SubjectKeyId, sid.Bytes) {
				si.Certificate = c
				break
			}
		}
	default:
		return si, fmt.Errorf("sid: unexpected identifier 0x%02x", sid.FullBytes[0])
	}

	_, b, err = readTagged(b, asn1.ClassUniversal, asn1.TagSequence, true, "digestAlgorithm")
	if err != nil {
		return si, err
	}
	next, _, err := readElement(b, "signedAttrs or signatureAlgorithm")
	if err != nil {
		return si, err
	}
	if next.Class == asn1.ClassContextSpecific && next.Tag == 0 && next.IsCompound {
		if err := parseSignedAttributes(next.Bytes, &si.Signer); err != nil {
			return si, fmt.Errorf("signedAttrs: %w", err)
		}
	}
	return si, nil
}

// parseIssuerSerial reads the contents of an IssuerAndSerialNumber:
// issuer Name, serialNumber INTEGER, nothing else. It returns the issuer's
// encoding and the serial.
func parseIssuerSerial(b []byte) ([]byte, *big.Int, error) {
	name, rest, err := readTagged(b, asn1.ClassUniversal, asn1.TagSequence, true, "issuer")
	if err != nil {
		return nil, nil, err
	}
	serial, rest, err := readTagged(rest, asn1.ClassUniversal, asn1.TagInteger, false, "serialNumber")
	if err != nil {
		return nil, nil, err
	}
	if len(rest) > 0 {
		return nil, nil, errors.New("unexpected data after serialNumber")
	}
	if len(serial.Bytes) == 0 {
		return nil, nil, errors.New("empty serialNumber")
	}
	return name.FullBytes, integerValue(serial.Bytes), nil
}

// integerValue decodes a two's complement INTEGER body, accepting the
// non-minimal encodings old issuers produce.
func integerValue(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

// issuerString renders an encoded Name the way Certificate.Issuer does
// (pkix.Name.String); an undecodable name is shown as hex.
func issuerString(name []byte) string {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(name, &rdns); err != nil || len(rest) > 0 {
		return fmt.Sprintf("#%x", name)
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdns)
	return n.String()
}

// formatSerial renders a serial number for Signer.Serial and
// IssuerSerial.Serial: decimal, as big.Int's String (and so
// Certificate.Serial.String()) writes it. This is the one place to change
// if reports should show hex.
func formatSerial(n *big.Int) string {
	return n.String()
}

// Matches reports whether c is the certificate s names: same issuer (as
// Certificate.Issuer renders it) and same serial number.
func (s *IssuerSerial) Matches(c *Certificate) bool {
	return s != nil && c != nil && c.Serial != nil && s.Issuer == c.Issuer() && s.Serial == formatSerial(c.Serial)
}

// parseSignedAttributes reads the SET OF Attribute of a SignerInfo and
// fills in the attributes smimesync uses. An attribute whose value cannot be
// decoded is ignored (the others still count); only a SET that cannot be
// split into attributes is an error.
func parseSignedAttributes(b []byte, s *Signer) error {
	var encrypKeyPref, microsoft *IssuerSerial
	seenCaps := false
	for len(b) > 0 {
		attr, rest, err := readTagged(b, asn1.ClassUniversal, asn1.TagSequence, true, "attribute")
		if err != nil {
			return err
		}
		b = rest
		var attrType asn1.ObjectIdentifier
		values, err := asn1.Unmarshal(attr.Bytes, &attrType)
		if err != nil {
			continue
		}
		set, _, err := readTagged(values, asn1.ClassUniversal, asn1.TagSet, true, "attribute values")
		if err != nil {
			continue
		}
		value, _, err := readElement(set.Bytes, "attribute value")
		if err != nil {
			continue
		}
		switch {
		case attrType.Equal(oidSMIMECapabilities) && !seenCaps:
			if caps, err := parseCapabilities(value); err == nil {
				s.Capabilities, seenCaps = caps, true
			}
		case attrType.Equal(oidSigningTime) && s.SigningTime.IsZero():
			var t time.Time
			if rest, err := asn1.Unmarshal(value.FullBytes, &t); err == nil && len(rest) == 0 {
				s.SigningTime = t
			}
		case attrType.Equal(oidEncrypKeyPref) && encrypKeyPref == nil:
			encrypKeyPref = parseEncrypKeyPref(value)
		case attrType.Equal(oidMicrosoftEncryptCert) && microsoft == nil:
			if value.Class == asn1.ClassUniversal && value.Tag == asn1.TagSequence && value.IsCompound {
				if issuer, serial, err := parseIssuerSerial(value.Bytes); err == nil {
					microsoft = &IssuerSerial{Issuer: issuerString(issuer), Serial: formatSerial(serial), Source: "microsoft"}
				}
			}
		}
	}
	s.EncryptionKeyPreference = encrypKeyPref
	if s.EncryptionKeyPreference == nil {
		s.EncryptionKeyPreference = microsoft
	}
	return nil
}

// parseCapabilities reads SMIMECapabilities (RFC 8551 2.5.2):
// SEQUENCE OF SEQUENCE { capabilityID OBJECT IDENTIFIER, parameters ANY OPTIONAL }.
func parseCapabilities(v asn1.RawValue) ([]asn1.ObjectIdentifier, error) {
	if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagSequence || !v.IsCompound {
		return nil, errors.New("SMIMECapabilities is not a SEQUENCE")
	}
	var caps []asn1.ObjectIdentifier
	b := v.Bytes
	for len(b) > 0 {
		capability, rest, err := readTagged(b, asn1.ClassUniversal, asn1.TagSequence, true, "SMIMECapability")
		if err != nil {
			return nil, err
		}
		b = rest
		var id asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(capability.Bytes, &id); err != nil {
			return nil, fmt.Errorf("SMIMECapability: %w", err)
		}
		caps = append(caps, id)
	}
	return caps, nil
}

// parseEncrypKeyPref reads the issuerAndSerialNumber choice of
// SMIMEEncryptionKeyPreference (RFC 8551 2.5.3), defined in an IMPLICIT TAGS
// module: [0] holding the issuer Name and serialNumber directly. The [0]
// EXPLICIT form some encoders write ([0] around a whole
// IssuerAndSerialNumber SEQUENCE) is accepted too. The other choices
// (receipentKeyId, subjectAltKeyIdentifier) give nil.
func parseEncrypKeyPref(v asn1.RawValue) *IssuerSerial {
	if v.Class != asn1.ClassContextSpecific || v.Tag != 0 || !v.IsCompound {
		return nil
	}
	content := v.Bytes
	if inner, rest, err := readElement(content, "issuerAndSerialNumber"); err == nil && len(rest) == 0 &&
		inner.Class == asn1.ClassUniversal && inner.Tag == asn1.TagSequence {
		content = inner.Bytes // [0] EXPLICIT
	}
	issuer, serial, err := parseIssuerSerial(content)
	if err != nil {
		return nil
	}
	return &IssuerSerial{Issuer: issuerString(issuer), Serial: formatSerial(serial), Source: "encrypKeyPref"}
}

// verifySignedData checks every signature with github.com/smallstep/pkcs7
// and returns nil when all verify. pkcs7 parses the whole certificate set
// with crypto/x509 and finds signers by issuer and serial only, so it is
// given a rebuilt SignedData: the certificates Go accepted, no CRLs, and
// each signer identified by its certificate's issuer and serial. Neither
// the certificate set nor the signer identifier is covered by a signature,
// so this changes nothing that is verified.
func verifySignedData(sd *signedData, certs []*Certificate, signers []signerInfo) error {
	if !sd.content {
		return fmt.Errorf("%w: %w", ErrCannotVerify, ErrDetachedContent)
	}
	// pkcs7 parses the set with crypto/x509, which refuses a certificate
	// whose key it does not implement: such a certificate is left out.
	// Only the signers' certificates matter to the signatures.
	certSet := make([][]byte, 0, len(certs))
	for _, c := range certs {
		if !c.KeyUnsupported {
			certSet = append(certSet, c.Raw)
		}
	}
	infos := make([][]byte, len(signers))
	for i, si := range signers {
		if si.Certificate == nil {
			return fmt.Errorf("%w: signer %d (%s): its certificate is not in the blob or was rejected", ErrCannotVerify, i, si.describe())
		}
		if si.Certificate.KeyUnsupported {
			return fmt.Errorf("%w: signer %d (%s): its key, %s, is not implemented by crypto/x509", ErrCannotVerify, i, si.describe(), si.Certificate.Key())
		}
		serial, err := asn1.Marshal(si.Certificate.Serial)
		if err != nil {
			return fmt.Errorf("%w: signer %d: %w", ErrCannotVerify, i, err)
		}
		sid := derTLV(0x30, si.Certificate.X509.RawIssuer, serial)
		infos[i] = derTLV(0x30, si.version, sid, si.afterSID)
	}
	view := derTLV(0x30,
		encodedOIDSignedData,
		derTLV(0xa0, derTLV(0x30,
			sd.version, sd.digestAlgorithms, sd.encapContentInfo,
			derTLV(0xa0, certSet...),
			derTLV(0x31, infos...),
		)),
	)
	var p7 *pkcs7.PKCS7
	err := callPKCS7(func() (err error) {
		p7, err = pkcs7.Parse(view)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCannotVerify, err)
	}
	err = callPKCS7(p7.Verify)
	var early *pkcs7.SigningTimeNotValidError
	if errors.As(err, &early) {
		// pkcs7 stops at a signing time outside the signer's validity,
		// before the digest and signature. The signing time is reported
		// on its own (Signer.SigningTimeOutsideValidity); check the
		// signatures with the validity of pkcs7's private copies of the
		// certificates widened, so that it checks everything else.
		for _, c := range p7.Certificates {
			c.NotBefore, c.NotAfter = time.Time{}, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		}
		err = callPKCS7(p7.Verify)
	}
	if err != nil {
		return verifyFailure(err)
	}
	return nil
}

// describe names a signer for error messages.
func (s *Signer) describe() string {
	if s.SubjectKeyID != nil {
		return fmt.Sprintf("subjectKeyIdentifier %x", s.SubjectKeyID)
	}
	return fmt.Sprintf("issuer %q serial %s", s.Issuer, s.Serial)
}

// verifyFailure classifies an error from pkcs7's Verify. Only a content
// digest that does not match the signed messageDigest, or a signature the
// key rejects, means the signature is wrong (ErrSignatureInvalid).
// Everything else means it could not be checked (ErrCannotVerify): an
// algorithm pkcs7 or crypto/x509 does not support (RSASSA-PSS, Ed25519,
// SHA-1 signatures, which Go refuses as insecure), a missing messageDigest
// attribute. (A signing time outside the signer certificate's validity
// never gets here: verifySignedData checks the signature anyway.)
// crypto/x509 reports ECDSA and Ed25519 failures only by message ("…
// verification failure"), hence the string match.
func verifyFailure(err error) error {
	var mismatch *pkcs7.MessageDigestMismatchError
	if errors.As(err, &mismatch) || errors.Is(err, rsa.ErrVerification) ||
		strings.HasSuffix(err.Error(), "verification failure") {
		return fmt.Errorf("%w: %w", ErrSignatureInvalid, err)
	}
	return fmt.Errorf("%w: %w", ErrCannotVerify, err)
}

// callPKCS7 runs f, turning a panic inside pkcs7 into an error.
func callPKCS7(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pkcs7 panicked: %v", r)
		}
	}()
	return f()
}

// derTLV encodes one DER element with a single-octet identifier and the
// concatenation of parts as content.
func derTLV(tag byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, 1+derLengthSize(n)+n)
	out = append(out, tag)
	out = appendDERLength(out, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// encodedOIDSignedData is the DER encoding of oidSignedData.
var encodedOIDSignedData = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}
