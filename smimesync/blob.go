package smimesync

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"time"
)

// Blob is a parsed userSMIMECertificate value: a CMS SignedData, DER or BER,
// certificates-only or signed.
type Blob struct {
	// Raw is the value exactly as stored in the directory.
	Raw []byte
	// SHA256 is the fingerprint of Raw.
	SHA256 Fingerprint
	// BER is true when Raw was not DER (indefinite lengths, constructed
	// strings) and was normalised before parsing.
	BER bool
	// Certificates holds every certificate of the SignedData's certificate
	// set that Go's parser accepts, in the order they appear.
	Certificates []*Certificate
	// Rejected holds one error per certificate of the set that could not be
	// parsed (each a *CertificateError); it does not stop the others.
	Rejected []error
	// Signers describes each SignerInfo. Empty for a certificates-only blob.
	Signers []Signer
	// Content is true when the SignedData encapsulates content (it is
	// signed data rather than a degenerate certificates-only bag).
	Content bool
	// Verified is true when every signature was checked and is valid.
	// VerifyError says why not when signers exist and Verified is false.
	//
	// A signing time outside the signer certificate's validity does not
	// change either: the signature is checked all the same, and
	// Signer.SigningTimeOutsideValidity reports the finding (Policy turns
	// it into a note, never a reason to drop).
	Verified    bool
	VerifyError error
}

// Signer is one SignerInfo of a SignedData.
type Signer struct {
	// Issuer and Serial identify the signer's certificate (empty when the
	// signer is identified by subjectKeyIdentifier; SubjectKeyID is set
	// instead).
	Issuer       string
	Serial       string
	SubjectKeyID []byte
	// Certificate is the signer's certificate when the blob carries it.
	Certificate *Certificate
	// Capabilities lists the smimeCapabilities (1.2.840.113549.1.9.15)
	// algorithm OIDs, in the signer's order of preference.
	Capabilities []asn1.ObjectIdentifier
	// EncryptionKeyPreference names the certificate the signer prefers
	// for encryption, from encrypKeyPref (1.2.840.113549.1.9.16.2.11) or,
	// when that is absent, Microsoft's 1.3.6.1.4.1.311.16.4; nil when
	// neither is present.
	EncryptionKeyPreference *IssuerSerial
	// SigningTime is the signingTime signed attribute (RFC 5652 11.3), as
	// the signer claims it; zero when the attribute is absent or cannot be
	// decoded.
	SigningTime time.Time
}

// SigningTimeOutsideValidity reports whether the signer claims to have
// signed before its certificate's notBefore or after its notAfter. It is
// false when the signer has no signing time or no certificate in the blob.
//
// Outlook signs a user's userSMIMECertificate when it publishes it and
// the value stays in the directory for the certificate's life and beyond,
// so this is not a sign of forgery: the blob was made with a certificate
// that was not valid at the time it claims. It is not a bad signature
// (Blob.Verified says whether the signature is right) and not "cannot
// verify"; Policy notes it as NoteSigningTimeOutsideValidity.
func (s *Signer) SigningTimeOutsideValidity() bool {
	if s.Certificate == nil || s.SigningTime.IsZero() {
		return false
	}
	return s.SigningTime.Before(s.Certificate.NotBefore) || s.SigningTime.After(s.Certificate.NotAfter)
}

// IssuerSerial identifies a certificate by its issuer and serial number.
type IssuerSerial struct {
	Issuer string
	Serial string
	// Source is "encrypKeyPref" or "microsoft" (1.3.6.1.4.1.311.16.4).
	Source string
}

// ParseError is the error for a certificate value or blob that cannot be
// used at all. Reason is one of the Reason constants.
type ParseError struct {
	// Reason classifies the failure.
	Reason Reason
	// Fingerprint is the SHA-256 of the input value.
	Fingerprint Fingerprint
	// Err is the underlying cause.
	Err error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("smimesync: value %s: %s: %v", e.Fingerprint.String()[:16], e.Reason, e.Err)
}

// Unwrap returns the underlying cause.
func (e *ParseError) Unwrap() error { return e.Err }

// CertificateError is one certificate inside a blob that Go's parser refused.
type CertificateError struct {
	// Index is the certificate's position in the SignedData's set.
	Index int
	// Fingerprint is the SHA-256 of the certificate's DER bytes.
	Fingerprint Fingerprint
	// Err is the parser's error.
	Err error
}

func (e *CertificateError) Error() string {
	return fmt.Sprintf("smimesync: certificate %d (%s): %v", e.Index, e.Fingerprint, e.Err)
}

// Unwrap returns the parser's error.
func (e *CertificateError) Unwrap() error { return e.Err }

// ErrSecuritySettings is wrapped by the ParseError for a userSMIMECertificate
// value that is Outlook's non-ASN.1 security-settings blob (a first byte
// other than 0x30).
var ErrSecuritySettings = errors.New("security-settings blob, not CMS")
