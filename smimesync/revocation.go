package smimesync

import (
	"context"
	"crypto/x509"
)

// RevocationStatus is a [RevocationChecker]'s answer.
type RevocationStatus int

const (
	// RevocationUnknown: the checker could not tell (no responder, no CRL
	// distribution point, or a soft failure).
	RevocationUnknown RevocationStatus = iota
	// RevocationGood: the certificate is not revoked.
	RevocationGood
	// RevocationRevoked: the certificate is revoked.
	RevocationRevoked
)

// String returns "unknown", "good" or "revoked".
func (s RevocationStatus) String() string {
	switch s {
	case RevocationGood:
		return "good"
	case RevocationRevoked:
		return "revoked"
	}
	return "unknown"
}

// A RevocationChecker tells whether a certificate is revoked. The policy
// drops a certificate only on [RevocationRevoked]; an error is reported and
// the certificate is kept (a checker that wants hard-fail returns
// RevocationRevoked instead). issuer is the certificate's issuer when the
// policy knows it (from the same blob, or the configured roots and
// intermediates), nil otherwise. Implementations must be safe for
// concurrent use; the revocation sub-package has one for OCSP and CRLs.
type RevocationChecker interface {
	Check(ctx context.Context, cert, issuer *x509.Certificate) (RevocationStatus, error)
}
