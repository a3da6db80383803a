package smimesync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// DefaultMaxValues is how many values a [Policy] keeps per attribute unless
// told otherwise: Entra ID accepts at most 15 userCertificate values, and
// Microsoft's own sync tool exports nothing at all for a user with more.
const DefaultMaxValues = 15

// Policy decides which of a user's certificate values to publish. Its zero
// value is the sensible default: keep every value that parses, is valid
// now, can encrypt or sign mail, and covers one of the user's addresses, at
// most [DefaultMaxValues] per attribute, the latest-expiring first.
//
// A Policy is safe for concurrent use as long as its fields are not changed.
//
// A Policy that cannot work as written (see [Policy.Validate]) is refused
// by [Syncer.Plan]; Evaluate and the Check methods do not refuse it, and a
// ManagedCAs entry that cannot match simply matches nothing there.
type Policy struct {
	// Now returns the current time; nil means time.Now, or, for the
	// Policy of a [Syncer], the Syncer's Now: one clock for both.
	Now func() time.Time

	// MaxValues caps the values kept per attribute; 0 means
	// DefaultMaxValues.
	MaxValues int

	// Roots, when not nil, turns on chain validation: a certificate must
	// chain to one of these roots (through Intermediates, or certificates
	// carried in the same userSMIMECertificate blob) for emailProtection.
	Roots *x509.CertPool
	// Intermediates helps chain validation; optional.
	Intermediates *x509.CertPool

	// ManagedCAs are the CAs whose certificates the organisation issues.
	// When it is empty every issuer counts as managed. A certificate is
	// managed when its issuer name equals one of these CAs' subject
	// names, compared as RFC 5280 section 7.1 asks: attribute by
	// attribute, in the same order, strings without regard to case and
	// with runs of white space as one, so that a CA certificate whose
	// subject is encoded differently (a PrintableString here, a UTF8String
	// there, as Go writes a pkix.Name) still matches; and, when both the
	// certificate's authority key identifier and the CA's subject key
	// identifier are present, they must be equal. A CA renewed with a new
	// key is therefore listed twice, old and new certificate, while
	// certificates of the old key are in use. Chain validation, when Roots
	// is set, checks the signatures. Certificates of other issuers are
	// exempt from chain validation and kept (they may be national ID
	// cards or a partner's CA), unless DropUnmanaged is set. Every entry
	// must be a CA certificate (basicConstraints cA) with a non-empty
	// subject: [Policy.Validate] refuses any other, as it can match
	// nothing.
	ManagedCAs []*x509.Certificate
	// DropUnmanaged drops certificates whose issuer is not in ManagedCAs,
	// with ReasonIssuerNotManaged.
	DropUnmanaged bool

	// RequireEncryption drops certificates that can sign but not encrypt
	// (ReasonNotForSMIME). By default signing-only certificates are kept,
	// as Outlook publishes them too.
	RequireEncryption bool
	// RequireValidSignature drops userSMIMECertificate blobs whose
	// signature was checked and is invalid (ReasonBadSignature). A
	// signature that cannot be checked (an algorithm the verifier lacks,
	// detached content) is only noted. By default the signature is
	// reported but not required: the directory, not the signature, is what
	// the organisation trusts.
	RequireValidSignature bool

	// Revocation, when not nil, is asked about every certificate that
	// passed the other checks and whose issuer the policy can vouch for:
	// one of ManagedCAs (listed explicitly, and its signature on the
	// certificate verifies: a matching name alone is not enough), or the
	// issuer on a chain verified to Roots. The checker gets that issuer.
	// Any other certificate is not checked, with a "revocation:
	// not-checked" note: its OCSP and CRL URLs were chosen by whoever made
	// it, and a directory user can put a self-made CA and leaf into their
	// own userSMIMECertificate. With neither ManagedCAs nor Roots set,
	// nothing is checked. A failed check is noted as "revocation: " and
	// its codes (see [RevocationCode]), never as the checker's raw error.
	Revocation RevocationChecker

	// Check, when not nil, runs rules of the caller's own on every
	// certificate that passed the built-in checks other than chain
	// validation and revocation (which run after it, on a certificate it
	// did not drop). e is the directory entry being judged; nil when
	// the policy looks at a certificate on its own (CheckCertificate,
	// CheckBlob). A non-empty result drops the certificate. Each reason it
	// returns is recorded as a custom reason, "custom:" and the code
	// (see [CustomReason]): in Decision.Reasons, in a plan's and a
	// report's dropped values, and in Summary.Dropped, so a report tells
	// a caller's rule from the built-in ones ([Reason.IsCustom]). Custom
	// reasons are never pruned. Check is called from several goroutines
	// at once and must be safe for that.
	Check func(ctx context.Context, c *Certificate, e *directory.Entry) []Reason
}

// ErrInvalidPolicy is wrapped by the error [Policy.Validate] returns.
var ErrInvalidPolicy = errors.New("smimesync: invalid Policy")

// Validate reports a Policy that cannot work as written: a ManagedCAs
// entry that is nil, is not a CA certificate (basicConstraints cA), or has
// an empty subject can match no issuer, and would drop (with
// DropUnmanaged) or leave unchecked every certificate it was meant to
// vouch for. The error wraps ErrInvalidPolicy and names the entry by its
// position, subject and fingerprint. [Syncer.Plan] calls Validate and
// refuses such a policy (the error then also wraps ErrInvalidConfig).
func (p *Policy) Validate() error {
	var errs []error
	for i, ca := range p.ManagedCAs {
		var why string
		switch {
		case ca == nil:
			errs = append(errs, fmt.Errorf("%w: ManagedCAs[%d] is nil", ErrInvalidPolicy, i))
			continue
		case !ca.BasicConstraintsValid || !ca.IsCA:
			why = "is not a CA certificate (basicConstraints cA is not set)"
		case emptyName(ca.RawSubject):
			why = "has an empty subject"
		default:
			continue
		}
		errs = append(errs, fmt.Errorf("%w: ManagedCAs[%d] (subject %q, sha256 %s) %s: it cannot be the issuer of any certificate",
			ErrInvalidPolicy, i, ca.Subject.String(), Fingerprint(sha256.Sum256(ca.Raw)), why))
	}
	return errors.Join(errs...)
}

func (p *Policy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Policy) maxValues() int {
	if p.MaxValues > 0 {
		return p.MaxValues
	}
	return DefaultMaxValues
}

// Decision is the policy's verdict on one attribute value.
type Decision struct {
	// Attribute is cloud.AttrUserCertificate or cloud.AttrUserSMIMECertificate.
	Attribute string `json:"attribute"`
	// Index is the value's position in the entry's attribute.
	Index int `json:"index"`
	// SHA256 is the fingerprint of the raw value.
	SHA256 Fingerprint `json:"sha256"`
	// Keep is true when the value is to be published.
	Keep bool `json:"keep"`
	// Reasons says why a value is dropped (empty when kept).
	Reasons []Reason `json:"reasons,omitempty"`
	// Notes carries what a reader should know that did not decide the
	// verdict: a revocation check that failed, a signature that does not
	// verify, certificates of a blob that could not be parsed.
	Notes []string `json:"notes,omitempty"`
	// Certificate is the parsed certificate of a userCertificate value, or
	// the blob's best certificate for the user; nil when unparseable.
	Certificate *Certificate `json:"-"`
	// Blob is the parsed userSMIMECertificate value; nil otherwise.
	Blob *Blob `json:"-"`
	// Raw is the value as the directory holds it.
	Raw []byte `json:"-"`
	// Err is the parse error of an unparseable value.
	Err error `json:"-"`

	notAfter time.Time
}

// Verdict is the policy's answer for one directory entry.
type Verdict struct {
	// UserCertificate and UserSMIMECertificate hold one Decision per value,
	// in the entry's order.
	UserCertificate      []Decision `json:"userCertificate"`
	UserSMIMECertificate []Decision `json:"userSMIMECertificate"`
}

// Kept returns the values to publish, in the entry's order.
func (v *Verdict) Kept() cloud.Certificates {
	var c cloud.Certificates
	for _, d := range v.UserCertificate {
		if d.Keep {
			c.UserCertificate = append(c.UserCertificate, d.Raw)
		}
	}
	for _, d := range v.UserSMIMECertificate {
		if d.Keep {
			c.UserSMIMECertificate = append(c.UserSMIMECertificate, d.Raw)
		}
	}
	return c
}

// Decisions returns the decisions of both attributes, userCertificate first.
func (v *Verdict) Decisions() []Decision {
	return append(slices.Clip(v.UserCertificate), v.UserSMIMECertificate...)
}

// Evaluate decides, for every certificate value of e, whether to publish it
// and why not. It never fails: a value that cannot be parsed is dropped with
// ReasonUnparseable (or the parser's more precise reason).
func (p *Policy) Evaluate(ctx context.Context, e *directory.Entry) *Verdict {
	ctx = p.beginRevocationEntry(ctx)
	addrs := e.Addresses()
	if addrs == nil {
		addrs = []string{} // no address: nothing can match
	}
	now := p.now()
	v := &Verdict{
		UserCertificate:      make([]Decision, len(e.UserCertificate)),
		UserSMIMECertificate: make([]Decision, len(e.UserSMIMECertificate)),
	}
	seen := map[Fingerprint]bool{}
	for i, raw := range e.UserCertificate {
		d := &v.UserCertificate[i]
		*d = Decision{Attribute: cloud.AttrUserCertificate, Index: i, SHA256: sha256.Sum256(raw), Raw: raw}
		if seen[d.SHA256] {
			d.Reasons = []Reason{ReasonDuplicate}
			continue
		}
		seen[d.SHA256] = true
		c, err := ParseCertificate(raw)
		if err != nil {
			d.Err = err
			d.Reasons = []Reason{reasonOf(err)}
			continue
		}
		d.Certificate = c
		d.notAfter = c.NotAfter
		d.Reasons, d.Notes = p.check(ctx, c, e, addrs, nil, now)
		d.Keep = len(d.Reasons) == 0
	}
	clear(seen)
	for i, raw := range e.UserSMIMECertificate {
		d := &v.UserSMIMECertificate[i]
		*d = Decision{Attribute: cloud.AttrUserSMIMECertificate, Index: i, SHA256: sha256.Sum256(raw), Raw: raw}
		if seen[d.SHA256] {
			d.Reasons = []Reason{ReasonDuplicate}
			continue
		}
		seen[d.SHA256] = true
		p.evaluateBlob(ctx, d, e, addrs, now)
	}
	p.limit(v.UserCertificate)
	p.limit(v.UserSMIMECertificate)
	return v
}

// CheckCertificate returns the reasons the policy would drop c, and notes,
// for a user who owns addrs. A nil addrs skips the address check (for
// looking at a certificate on its own, as the example binary's inspect
// does); an empty, non-nil addrs matches nothing.
func (p *Policy) CheckCertificate(ctx context.Context, c *Certificate, addrs []string) (reasons []Reason, notes []string) {
	return p.check(ctx, c, nil, addrs, nil, p.now())
}

// CheckBlob returns the policy's decision on a parsed userSMIMECertificate
// value for a user who owns addrs (nil skips the address check).
func (p *Policy) CheckBlob(ctx context.Context, b *Blob, addrs []string) Decision {
	d := Decision{Attribute: cloud.AttrUserSMIMECertificate, SHA256: b.SHA256, Raw: b.Raw}
	p.blobVerdict(p.beginRevocationEntry(ctx), &d, b, nil, addrs, p.now())
	return d
}

func (p *Policy) evaluateBlob(ctx context.Context, d *Decision, e *directory.Entry, addrs []string, now time.Time) {
	b, err := ParseSMIMECertificate(d.Raw)
	if err != nil {
		d.Err = err
		d.Reasons = []Reason{reasonOf(err)}
		return
	}
	p.blobVerdict(ctx, d, b, e, addrs, now)
}

// NoteSigningTimeOutsideValidity starts the note Policy adds to a blob
// whose signer claims a signing time outside its certificate's validity
// (see Signer.SigningTimeOutsideValidity). It is a note only, never a
// reason to drop: whether the signature is right is Blob.Verified's
// business, and whether the certificate is valid now is checked against
// Policy.Now like any other.
const NoteSigningTimeOutsideValidity = "signing-time-outside-validity"

func signingTimeNote(s *Signer) string {
	const layout = "2006-01-02T15:04:05Z"
	return fmt.Sprintf("%s: signer %s signed at %s, its certificate is valid from %s to %s",
		NoteSigningTimeOutsideValidity, s.describe(), s.SigningTime.UTC().Format(layout),
		s.Certificate.NotBefore.UTC().Format(layout), s.Certificate.NotAfter.UTC().Format(layout))
}

// NoteKeyUnsupported starts the note Policy adds to a certificate whose key
// crypto/x509 does not implement (Certificate.KeyUnsupported: a
// brainpoolP256r1 key, say). It is a note only: the certificate is judged
// like any other, and chain validation, when on, checks its issuer's
// signature on it as for any other; what cannot be checked is the key
// itself (only its encoding is) and signatures made with it.
const NoteKeyUnsupported = "key-unsupported"

func keyUnsupportedNote(c *Certificate) string {
	return fmt.Sprintf("%s: %s (sha256 %s) is not implemented by crypto/x509: the key is checked for its encoding only, and signatures made with it (a blob's signature, certificates it issued) cannot be checked",
		NoteKeyUnsupported, c.Key(), c.SHA256())
}

// blobVerdict keeps a blob when at least one of its end-entity certificates
// passes every check; otherwise it is dropped with the union of their
// reasons. CA certificates in the blob only help chain validation.
func (p *Policy) blobVerdict(ctx context.Context, d *Decision, b *Blob, e *directory.Entry, addrs []string, now time.Time) {
	d.Blob = b
	for _, err := range b.Rejected {
		d.Notes = append(d.Notes, err.Error())
	}
	if len(b.Signers) > 0 && !b.Verified && b.VerifyError != nil {
		// Only a signature that was checked and is wrong counts against
		// the blob: one that cannot be checked here (RSASSA-PSS, Ed25519,
		// SHA-1, detached content) is a note.
		if p.RequireValidSignature && errors.Is(b.VerifyError, ErrSignatureInvalid) {
			d.Reasons = append(d.Reasons, ReasonBadSignature)
		}
		d.Notes = append(d.Notes, "signature not verified: "+b.VerifyError.Error())
	}
	for i := range b.Signers {
		if s := &b.Signers[i]; s.SigningTimeOutsideValidity() {
			d.Notes = append(d.Notes, signingTimeNote(s))
		}
	}
	extra := make([]*x509.Certificate, len(b.Certificates))
	for i, c := range b.Certificates {
		extra[i] = c.X509
	}
	var union []Reason
	leaves := 0
	for _, c := range b.Certificates {
		if c.IsCA {
			continue
		}
		leaves++
		rs, notes := p.check(ctx, c, e, addrs, extra, now)
		d.Notes = append(d.Notes, notes...)
		if len(rs) == 0 {
			if d.Certificate == nil || c.NotAfter.After(d.Certificate.NotAfter) {
				d.Certificate = c
				d.notAfter = c.NotAfter
			}
			continue
		}
		for _, r := range rs {
			if !slices.Contains(union, r) {
				union = append(union, r)
			}
		}
	}
	switch {
	case leaves == 0:
		d.Reasons = append(d.Reasons, ReasonNoCertificates)
	case d.Certificate == nil:
		d.Reasons = append(d.Reasons, union...)
	}
	d.Keep = len(d.Reasons) == 0
}

// check runs every test on one certificate. The cheap tests all run, so a
// report shows every reason; the caller's Check, chain validation and
// revocation, which may cost more, run only on a certificate that passed
// the others. e is nil when the certificate is judged on its own.
func (p *Policy) check(ctx context.Context, c *Certificate, e *directory.Entry, addrs []string, extra []*x509.Certificate, now time.Time) (reasons []Reason, notes []string) {
	if c.KeyUnsupported {
		notes = append(notes, keyUnsupportedNote(c))
	}
	if now.Before(c.NotBefore) {
		reasons = append(reasons, ReasonNotYetValid)
	}
	if now.After(c.NotAfter) {
		reasons = append(reasons, ReasonExpired)
	}
	if c.IsCA || (!c.CanEncrypt && !c.CanSign) || (p.RequireEncryption && !c.CanEncrypt) {
		reasons = append(reasons, ReasonNotForSMIME)
	}
	if addrs != nil && !coversAny(c, addrs) {
		reasons = append(reasons, ReasonNoMatchingAddress)
	}
	managed := p.managed(c)
	if !managed && p.DropUnmanaged {
		reasons = append(reasons, ReasonIssuerNotManaged)
	}
	if len(reasons) > 0 {
		return reasons, notes
	}
	if p.Check != nil {
		for _, r := range p.Check(ctx, c, e) {
			r = CustomReason(strings.TrimPrefix(string(r), customPrefix))
			if !slices.Contains(reasons, r) {
				reasons = append(reasons, r)
			}
		}
		if len(reasons) > 0 {
			return reasons, notes
		}
	}
	if p.Roots != nil && managed {
		if err := p.verifyChain(c, extra, now); err != nil {
			reasons = append(reasons, ReasonUntrustedChain)
			notes = append(notes, err.Error())
			return reasons, notes
		}
	}
	if p.Revocation != nil {
		issuer, why := p.issuerOf(c, extra, now)
		if issuer == nil {
			return reasons, append(notes, revocationNote([]RevocationCode{RevocationNotChecked})+" ("+why+")")
		}
		st, err := p.Revocation.Check(ctx, c.X509, issuer)
		if err != nil {
			notes = append(notes, revocationNote(RevocationCodesOf(err)))
		}
		if st == RevocationRevoked {
			reasons = append(reasons, ReasonRevoked)
		}
	}
	return reasons, notes
}

// revocationNote is the note for a revocation check that gave codes:
// "revocation: timeout, http-status".
func revocationNote(codes []RevocationCode) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = string(c)
	}
	return "revocation: " + strings.Join(s, ", ")
}

// beginRevocationEntry opens an entry budget when the revocation checker
// keeps budgets.
func (p *Policy) beginRevocationEntry(ctx context.Context) context.Context {
	if b, ok := p.Revocation.(RevocationBudgeter); ok {
		return b.BeginEntry(ctx)
	}
	return ctx
}

func (p *Policy) verifyChain(c *Certificate, extra []*x509.Certificate, now time.Time) error {
	pool := p.Intermediates
	if len(extra) > 0 {
		if pool == nil {
			pool = x509.NewCertPool()
		} else {
			pool = pool.Clone()
		}
		for _, e := range extra {
			pool.AddCert(e)
		}
	}
	_, err := c.X509.Verify(x509.VerifyOptions{
		Roots:         p.Roots,
		Intermediates: pool,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	return err
}

// Why issuerOf found no issuer the policy can vouch for.
const (
	notCheckedNoAnchors = "no managed CAs or roots configured"
	notCheckedUntrusted = "issuer is not a managed CA and does not chain to the roots"
)

// issuerOf returns the issuer of c that the revocation checker may trust,
// or nil and why there is none. It is one of ManagedCAs whose name (and key
// identifier) matches and whose signature on c verifies, or else the
// issuer on a chain from c to Roots that verifies at now (through
// Intermediates and the certificates of the same blob, extra). A
// certificate of the blob is never returned unless that chain verified:
// the blob is whatever the directory user put there.
func (p *Policy) issuerOf(c *Certificate, extra []*x509.Certificate, now time.Time) (*x509.Certificate, string) {
	if len(p.ManagedCAs) == 0 && p.Roots == nil {
		return nil, notCheckedNoAnchors
	}
	for _, ca := range p.ManagedCAs {
		if isIssuer(ca, c.X509) && c.X509.CheckSignatureFrom(ca) == nil {
			return ca, ""
		}
	}
	if p.Roots == nil {
		return nil, notCheckedUntrusted
	}
	pool := p.Intermediates
	if len(extra) > 0 {
		if pool == nil {
			pool = x509.NewCertPool()
		} else {
			pool = pool.Clone()
		}
		for _, e := range extra {
			pool.AddCert(e)
		}
	}
	chains, err := c.X509.Verify(x509.VerifyOptions{
		Roots:         p.Roots,
		Intermediates: pool,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err == nil && len(chains) > 0 && len(chains[0]) > 1 {
		return chains[0][1], ""
	}
	return nil, notCheckedUntrusted
}

// managed reports whether c was issued by one of p.ManagedCAs (true when
// there are none).
func (p *Policy) managed(c *Certificate) bool {
	if len(p.ManagedCAs) == 0 {
		return true
	}
	for _, ca := range p.ManagedCAs {
		if isIssuer(ca, c.X509) {
			return true
		}
	}
	return false
}

// isIssuer reports whether ca's subject is c's issuer name (compared as
// sameName does) and, when both key identifiers are present, ca's subject
// key identifier is c's authority key identifier. It does not check the
// signature.
func isIssuer(ca, c *x509.Certificate) bool {
	if ca == nil || !sameName(ca.RawSubject, c.RawIssuer) {
		return false
	}
	if len(c.AuthorityKeyId) > 0 && len(ca.SubjectKeyId) > 0 {
		return bytes.Equal(c.AuthorityKeyId, ca.SubjectKeyId)
	}
	return true
}

// limit marks values beyond the policy's maximum as ReasonOverLimit,
// keeping the latest notAfter first; ties broken by fingerprint so the
// choice is deterministic.
func (p *Policy) limit(ds []Decision) {
	var kept []int
	for i := range ds {
		if ds[i].Keep {
			kept = append(kept, i)
		}
	}
	max := p.maxValues()
	if len(kept) <= max {
		return
	}
	slices.SortStableFunc(kept, func(a, b int) int {
		if c := ds[b].notAfter.Compare(ds[a].notAfter); c != 0 {
			return c
		}
		return bytes.Compare(ds[a].SHA256[:], ds[b].SHA256[:])
	})
	for _, i := range kept[max:] {
		ds[i].Keep = false
		ds[i].Reasons = []Reason{ReasonOverLimit}
	}
}

func coversAny(c *Certificate, addrs []string) bool {
	for _, e := range c.Emails {
		for _, a := range addrs {
			if strings.EqualFold(e, a) {
				return true
			}
		}
	}
	return false
}

// reasonOf maps a parse error to its reason code.
func reasonOf(err error) Reason {
	var pe *ParseError
	if errors.As(err, &pe) && pe.Reason != "" {
		return pe.Reason
	}
	return ReasonUnparseable
}

// String summarises a decision for logs: "keep 3f2a…" or "drop 3f2a… (expired)".
func (d Decision) String() string {
	fp := d.SHA256.String()[:12]
	if d.Keep {
		return "keep " + fp
	}
	return fmt.Sprintf("drop %s (%s)", fp, joinReasons(d.Reasons))
}

func joinReasons(rs []Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}
