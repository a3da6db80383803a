// Package revocation tells whether a certificate has been revoked, by asking
// the OCSP responders (RFC 6960, with the lightweight profile of RFC 5019)
// and reading the CRLs (RFC 5280) that the certificate names.
//
// [Checker] implements [smimesync.RevocationChecker]. It caches answers until
// the responder or CRL says newer information is due, shares one fetch
// between concurrent callers, bounds every request in time and size, and
// soft-fails by default: when no source gives a valid answer, the status is
// [smimesync.RevocationUnknown] with an error saying why, and the policy keeps
// the certificate. Set [Checker.HardFail] to answer
// [smimesync.RevocationRevoked] instead.
//
// What it does not do, on purpose:
//   - ldap:// (and other non-HTTP) CRL distribution points and responder
//     URLs are skipped, with a debug log: an HTTP URL is what Active
//     Directory Certificate Services and public CAs publish for relying
//     parties outside the domain.
//   - Delta CRLs are not fetched. A base CRL is used until its NextUpdate;
//     a CRL that is itself a delta CRL, an indirect CRL, or one limited to
//     some revocation reasons is refused ([ErrUnsupportedCRL]).
//   - It does not validate the certificate's chain: the caller passes the
//     issuer it trusts, and the checker only verifies that this issuer
//     signed the certificate (so the URLs it fetches were put there by the
//     CA, not by whoever published the certificate). smimesync's Policy
//     passes only an issuer it vouches for (a managed CA, or one on a chain
//     verified to its roots).
//   - It does not contact loopback, private, link-local, CGNAT,
//     unspecified, multicast or broadcast addresses, checked when the
//     connection is made, unless [Checker.AllowHosts] lists them; it uses
//     no HTTP proxy, and follows redirects only on the same host. With a
//     caller's [Checker.HTTPClient], the dial-time check is the caller's
//     to make.
//   - It does not spend unbounded time: the fetches of one directory entry
//     and of one pass have time budgets ([Checker.BeginPass]).
package revocation
