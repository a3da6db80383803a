package smimesync

import "strings"

// Reason is a short, stable code that says why a value was dropped or could
// not be used. Reports, logs and the example binary print these codes;
// scripts may rely on them.
type Reason string

// The reasons a [Policy] drops a value, and the reasons a parser gives.
const (
	// ReasonUnparseable: the value is not a certificate or SignedData that
	// can be read (malformed, truncated, refused by Go's parser).
	ReasonUnparseable Reason = "unparseable"
	// ReasonSecuritySettings: a userSMIMECertificate value that is Outlook's
	// non-ASN.1 security-settings blob, not a certificate container.
	ReasonSecuritySettings Reason = "security-settings"
	// ReasonWrongContentType: a CMS object that is not SignedData (for
	// example EnvelopedData).
	ReasonWrongContentType Reason = "wrong-content-type"
	// ReasonNoCertificates: a SignedData that carries no certificate.
	ReasonNoCertificates Reason = "no-certificates"
	// ReasonBadSignature: a signed blob whose signature does not verify.
	ReasonBadSignature Reason = "bad-signature"
	// ReasonExpired: notAfter is in the past.
	ReasonExpired Reason = "expired"
	// ReasonNotYetValid: notBefore is in the future.
	ReasonNotYetValid Reason = "not-yet-valid"
	// ReasonNotForSMIME: the certificate can neither encrypt nor sign mail
	// (key usage or extended key usage exclude it), or is a CA certificate.
	ReasonNotForSMIME Reason = "not-for-smime"
	// ReasonNoMatchingAddress: none of the addresses the certificate covers
	// belongs to the user.
	ReasonNoMatchingAddress Reason = "no-matching-address"
	// ReasonUntrustedChain: the certificate does not chain to the
	// configured roots.
	ReasonUntrustedChain Reason = "untrusted-chain"
	// ReasonRevoked: the revocation checker says the certificate is revoked.
	ReasonRevoked Reason = "revoked"
	// ReasonDuplicate: the same value appears earlier in the attribute.
	ReasonDuplicate Reason = "duplicate"
	// ReasonIssuerNotManaged: the issuer is not one of the CAs the admin
	// manages and the policy was told to drop such certificates.
	ReasonIssuerNotManaged Reason = "issuer-not-managed"
	// ReasonOverLimit: more values passed than the attribute may carry.
	ReasonOverLimit Reason = "over-limit"
)

// Reasons lists every reason code, in the order they are declared.
func Reasons() []Reason {
	return []Reason{
		ReasonUnparseable, ReasonSecuritySettings, ReasonWrongContentType, ReasonNoCertificates,
		ReasonBadSignature, ReasonExpired, ReasonNotYetValid, ReasonNotForSMIME,
		ReasonNoMatchingAddress, ReasonUntrustedChain, ReasonRevoked, ReasonDuplicate,
		ReasonIssuerNotManaged, ReasonOverLimit,
	}
}

// customPrefix begins every custom reason.
const customPrefix = "custom:"

// CustomReason returns the reason for a rule of the caller's own (see
// Policy.Check): "custom:" followed by code, so that a report tells it from
// the built-in reasons. An empty code is "custom:unspecified".
func CustomReason(code string) Reason {
	if code == "" {
		code = "unspecified"
	}
	return Reason(customPrefix + code)
}

// IsCustom reports whether r came from a rule of the caller's own
// (Policy.Check) rather than from smimesync.
func (r Reason) IsCustom() bool { return strings.HasPrefix(string(r), customPrefix) }
