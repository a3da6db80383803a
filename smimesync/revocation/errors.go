package revocation

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"

	"github.com/smimesync/go-smimesync/smimesync"
)

// Errors a [Checker] reports. Check and Lookup return them inside an
// [*Error], and the per-source ones inside a [*SourceError]; test with
// errors.Is.
var (
	// ErrNoCertificate: Check was called with a nil certificate, or one
	// without a serial number.
	ErrNoCertificate = errors.New("revocation: no certificate")
	// ErrNoIssuer: the issuer certificate is not known. Without it no OCSP
	// request can be built and no answer's signature can be verified. The
	// status is Unknown even with HardFail.
	ErrNoIssuer = errors.New("revocation: issuer certificate unknown, revocation cannot be checked")
	// ErrWrongIssuer: the certificate passed as issuer did not sign the
	// certificate. The status is Unknown even with HardFail.
	ErrWrongIssuer = errors.New("revocation: the given issuer did not sign the certificate")
	// ErrNoSource: the certificate names no OCSP responder and no CRL
	// distribution point this checker can use (only http and https URLs
	// are, and only for the methods in Checker.Methods). The status is
	// Unknown even with HardFail.
	ErrNoSource = errors.New("revocation: certificate names no usable OCSP responder or CRL distribution point")
	// ErrUnreachable: the request failed: connection refused, timeout,
	// TLS failure, or an HTTP status other than 200. The transport error is
	// wrapped too (errors.Is(err, context.DeadlineExceeded) holds for a
	// timeout).
	ErrUnreachable = errors.New("revocation: server unreachable")
	// ErrTooLarge: the answer is longer than MaxCRLSize or MaxOCSPSize.
	ErrTooLarge = errors.New("revocation: answer larger than the limit")
	// ErrMalformed: the answer could not be parsed, or is about another
	// certificate.
	ErrMalformed = errors.New("revocation: malformed answer")
	// ErrBadSignature: the answer is not signed by the issuer, nor (for
	// OCSP) by a responder certificate the issuer delegated with
	// id-kp-OCSPSigning.
	ErrBadSignature = errors.New("revocation: answer not signed by the issuer or its delegated responder")
	// ErrStale: the answer's NextUpdate has passed, or its ThisUpdate lies
	// in the future.
	ErrStale = errors.New("revocation: answer is not fresh")
	// ErrRefused: the OCSP responder answered with an error status
	// (malformedRequest, internalError, tryLater, sigRequired,
	// unauthorized); the ocsp.ResponseError is wrapped too.
	ErrRefused = errors.New("revocation: OCSP responder refused the request")
	// ErrStatusUnknown: the OCSP responder answered "unknown": it does not
	// know the certificate.
	ErrStatusUnknown = errors.New("revocation: OCSP responder does not know the certificate")
	// ErrUnsupportedCRL: the CRL cannot tell this certificate's status: it
	// is a delta or indirect CRL, covers only some reasons or another kind
	// of certificate, belongs to another distribution point, or carries a
	// critical extension this checker does not understand.
	ErrUnsupportedCRL = errors.New("revocation: CRL cannot be used for this certificate")
	// ErrRefusedDestination: the URL was not fetched: it is not http or
	// https, carries user information (user:password@), or its host is,
	// or resolved to, a loopback, link-local, private (RFC 1918, ULA),
	// CGNAT, unspecified, multicast, broadcast or reserved address, or a
	// localhost name, that Checker.AllowHosts does not list. A
	// [*DestinationError] names the host and address.
	ErrRefusedDestination = errors.New("revocation: refusing to contact destination")
	// ErrRedirect: the server redirected to another host (or port), or
	// more than three times; the redirect was not followed.
	ErrRedirect = errors.New("revocation: redirect refused")
	// ErrHTTPStatus: the server answered with an HTTP status other than
	// 200. It comes together with ErrUnreachable.
	ErrHTTPStatus = errors.New("revocation: HTTP status other than 200 OK")
	// ErrBudgetExhausted: the entry's or the pass's time budget
	// (Checker.EntryBudget, Checker.PassBudget) was spent, so the source
	// was not asked; only cached answers were used. The status is Unknown
	// even with HardFail.
	ErrBudgetExhausted = errors.New("revocation: time budget exhausted, source not asked")
	// ErrBadAllowHost: an entry of Checker.AllowHosts is not a host name,
	// an IP address or a CIDR prefix. [Checker.Validate] reports it; a
	// Checker ignores such an entry (it allows nothing).
	ErrBadAllowHost = errors.New("revocation: bad AllowHosts entry")
)

// codeOf maps one cause to its [smimesync.RevocationCode].
func codeOf(err error) smimesync.RevocationCode {
	var ne net.Error
	switch {
	case errors.Is(err, ErrBudgetExhausted):
		return smimesync.RevocationBudgetExhausted
	case errors.Is(err, ErrRefusedDestination):
		return smimesync.RevocationRefusedDestination
	case errors.Is(err, ErrRedirect):
		return smimesync.RevocationRefusedRedirect
	case errors.Is(err, ErrNoIssuer), errors.Is(err, ErrWrongIssuer):
		return smimesync.RevocationNoIssuer
	case errors.Is(err, ErrNoSource):
		return smimesync.RevocationNoSource
	case errors.Is(err, ErrHTTPStatus):
		return smimesync.RevocationHTTPStatus
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.As(err, &ne) && ne.Timeout():
		return smimesync.RevocationTimeout
	case errors.Is(err, ErrUnreachable):
		return smimesync.RevocationUnreachable
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrMalformed), errors.Is(err, ErrBadSignature),
		errors.Is(err, ErrStale), errors.Is(err, ErrRefused), errors.Is(err, ErrStatusUnknown),
		errors.Is(err, ErrUnsupportedCRL):
		return smimesync.RevocationBadResponse
	}
	return smimesync.RevocationError
}

// SourceError is the failure of one source: one OCSP responder or one CRL
// distribution point.
type SourceError struct {
	// Method is OCSP or CRL.
	Method Method
	// URL is the responder's or distribution point's URL.
	URL string
	// Err is the cause; it wraps one of the package's sentinel errors.
	Err error
}

// Error returns "ocsp http://…: cause".
func (e *SourceError) Error() string {
	return string(e.Method) + " " + e.URL + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *SourceError) Unwrap() error { return e.Err }

// Error is what Check and Lookup return when they have no definitive
// answer. It names the certificate and collects one error per source tried
// (each a [*SourceError]), or the single reason no source was tried.
type Error struct {
	// Certificate is the SHA-256 fingerprint of the certificate.
	Certificate smimesync.Fingerprint
	// Subject is the certificate's subject (RFC 2253).
	Subject string
	// Serial is the certificate's serial number.
	Serial *big.Int
	// HardFail is true when the status returned with this error is
	// RevocationRevoked because Checker.HardFail is set.
	HardFail bool
	// Errs holds the causes, in the order the sources were tried.
	Errs []error
}

// Error returns a message naming the certificate and every cause.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "revocation: certificate %s", e.Certificate)
	if e.Subject != "" || e.Serial != nil {
		b.WriteString(" (")
		if e.Subject != "" {
			b.WriteString(e.Subject)
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "serial %x)", e.Serial)
	}
	if e.HardFail {
		b.WriteString(": treated as revoked (hard-fail)")
	} else {
		b.WriteString(": status unknown")
	}
	for i, err := range e.Errs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap returns the causes, so errors.Is and errors.As see each of them.
func (e *Error) Unwrap() []error { return e.Errs }

// RevocationCodes implements [smimesync.RevocationCoder]: the distinct
// codes of the causes, in the order the sources were tried. The policy
// notes these, not Error's text, which names hosts and dial errors.
func (e *Error) RevocationCodes() []smimesync.RevocationCode {
	var codes []smimesync.RevocationCode
	for _, err := range e.Errs {
		if c := codeOf(err); !slices.Contains(codes, c) {
			codes = append(codes, c)
		}
	}
	return codes
}
