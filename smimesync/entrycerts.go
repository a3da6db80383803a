package smimesync

import (
	"crypto/sha256"
	"iter"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// CertificateRef is one certificate of a directory entry and where it
// stands: the attribute and value that hold it.
type CertificateRef struct {
	// Attribute is cloud.AttrUserCertificate or
	// cloud.AttrUserSMIMECertificate.
	Attribute string
	// Index is the value's position in the attribute.
	Index int
	// Value is the fingerprint of the whole value: the certificate's own
	// for a userCertificate value, the blob's for a userSMIMECertificate
	// value (Certificate.SHA256 returns the certificate's).
	Value Fingerprint
	// Certificate is the parsed certificate; nil when the error that comes
	// with the reference says why there is none.
	Certificate *Certificate
}

// Certificates yields every certificate an entry carries, for audit
// tools: each userCertificate value, then every certificate of each
// userSMIMECertificate value (blobs unwrapped, CA certificates included),
// in the entry's order. It judges nothing: run a [Policy] for that. A value
// that cannot be parsed, and a certificate of a blob that Go's parser
// refuses, yield a reference without a Certificate and the error (a
// [*ParseError] or [*CertificateError]); the iteration goes on.
func Certificates(e *directory.Entry) iter.Seq2[CertificateRef, error] {
	return func(yield func(CertificateRef, error) bool) {
		for i, raw := range e.UserCertificate {
			ref := CertificateRef{Attribute: cloud.AttrUserCertificate, Index: i, Value: sha256.Sum256(raw)}
			c, err := ParseCertificate(raw)
			ref.Certificate = c
			if !yield(ref, err) {
				return
			}
		}
		for i, raw := range e.UserSMIMECertificate {
			ref := CertificateRef{Attribute: cloud.AttrUserSMIMECertificate, Index: i, Value: sha256.Sum256(raw)}
			b, err := ParseSMIMECertificate(raw)
			if err != nil {
				if !yield(ref, err) {
					return
				}
				continue
			}
			for _, c := range b.Certificates {
				ref.Certificate = c
				if !yield(ref, nil) {
					return
				}
			}
			for _, err := range b.Rejected {
				ref.Certificate = nil
				if !yield(ref, err) {
					return
				}
			}
		}
	}
}
