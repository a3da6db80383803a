package smimesync

import (
	"context"
	"crypto/x509"
	"errors"
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
// drops a certificate only on [RevocationRevoked]; an error is noted (by
// its [RevocationCode]s, see [RevocationCoder]) and the certificate is kept
// (a checker that wants hard-fail returns RevocationRevoked instead). The
// policy asks only about certificates whose issuer it has verified: one of
// Policy.ManagedCAs that signed the certificate, or the issuer on a chain
// verified to Policy.Roots; issuer is that certificate, never nil.
// Implementations must be safe for concurrent use; the revocation
// sub-package has one for OCSP and CRLs.
type RevocationChecker interface {
	Check(ctx context.Context, cert, issuer *x509.Certificate) (RevocationStatus, error)
}

// RevocationCode is a short, stable reason why a revocation check gave no
// definitive answer. The policy writes "revocation: <code>" into a
// [Decision]'s notes, never the checker's raw error: that error can name
// hosts, ports and dial failures of URLs a certificate chose, which a report
// reader must not learn from (a port scanner). The raw error goes to the
// checker's debug log. These constants are the one list of codes; the
// README lists them too.
type RevocationCode string

// The revocation codes.
const (
	// RevocationNotChecked: the certificate's issuer is neither one of
	// Policy.ManagedCAs (listed, and its signature on the certificate
	// verifies) nor on a chain verified to Policy.Roots, so its OCSP and
	// CRL URLs are not trusted and were not fetched.
	RevocationNotChecked RevocationCode = "not-checked"
	// RevocationNoIssuer: the checker was given no issuer, or one that did
	// not sign the certificate.
	RevocationNoIssuer RevocationCode = "no-issuer"
	// RevocationNoSource: the certificate names no usable OCSP responder
	// or CRL distribution point (only http and https URLs without user
	// information are used).
	RevocationNoSource RevocationCode = "no-source"
	// RevocationRefusedDestination: the URL's host is, or resolves to, a
	// loopback, link-local, private, CGNAT, unspecified, multicast or
	// broadcast address that the admin did not allow.
	RevocationRefusedDestination RevocationCode = "refused-destination"
	// RevocationRefusedRedirect: the server redirected to another host,
	// or redirected too often.
	RevocationRefusedRedirect RevocationCode = "refused-redirect"
	// RevocationUnreachable: the connection failed (refused, reset, TLS).
	RevocationUnreachable RevocationCode = "unreachable"
	// RevocationTimeout: the request took longer than its timeout, or the
	// caller's context ended.
	RevocationTimeout RevocationCode = "timeout"
	// RevocationHTTPStatus: the server answered with an HTTP status other
	// than 200.
	RevocationHTTPStatus RevocationCode = "http-status"
	// RevocationBadResponse: the answer was too large, malformed, badly
	// signed, stale, an OCSP error or "unknown", or a CRL that cannot
	// answer for the certificate.
	RevocationBadResponse RevocationCode = "bad-response"
	// RevocationBudgetExhausted: the time budget of the entry or of the
	// pass was spent; only cached answers were used.
	RevocationBudgetExhausted RevocationCode = "budget-exhausted"
	// RevocationError: any other failure, including every error of a
	// RevocationChecker whose errors do not carry a code.
	RevocationError RevocationCode = "error"
)

// RevocationCodes returns every code, in the order they are documented.
func RevocationCodes() []RevocationCode {
	return []RevocationCode{
		RevocationNotChecked, RevocationNoIssuer, RevocationNoSource, RevocationRefusedDestination,
		RevocationRefusedRedirect, RevocationUnreachable, RevocationTimeout, RevocationHTTPStatus,
		RevocationBadResponse, RevocationBudgetExhausted, RevocationError,
	}
}

// RevocationCoder is implemented by a RevocationChecker's errors that carry
// codes. RevocationCodes returns the distinct codes of the failure; the
// policy notes them instead of the error text.
type RevocationCoder interface {
	RevocationCodes() []RevocationCode
}

// RevocationCodesOf returns the codes of err: those of the first
// [RevocationCoder] in its tree, else [RevocationTimeout] for an ended
// context, else [RevocationError]. A nil err has none.
func RevocationCodesOf(err error) []RevocationCode {
	if err == nil {
		return nil
	}
	var rc RevocationCoder
	if errors.As(err, &rc) {
		if codes := rc.RevocationCodes(); len(codes) > 0 {
			return codes
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return []RevocationCode{RevocationTimeout}
	}
	return []RevocationCode{RevocationError}
}

// A RevocationBudgeter is a RevocationChecker whose checks share time
// budgets: the time its network fetches may take in total, per directory
// entry and per pass. When a budget is spent, further checks in its scope
// answer from the checker's cache only, and otherwise RevocationUnknown
// with an error whose code is [RevocationBudgetExhausted]. Both methods
// return a ctx carrying a fresh budget; the checks made with that ctx (or
// any ctx derived from it) draw on it. A ctx without a pass budget has
// none; one without an entry budget gets one per certificate checked.
//
// The [Syncer] calls BeginPass at the start of each Plan and PlanFull; the
// [Policy] calls BeginEntry in Evaluate and CheckBlob. The revocation
// sub-package's Checker implements it.
type RevocationBudgeter interface {
	BeginPass(ctx context.Context) context.Context
	BeginEntry(ctx context.Context) context.Context
}
