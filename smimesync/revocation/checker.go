package revocation

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/smimesync/go-smimesync/smimesync"
)

// Method is a way of checking revocation.
type Method string

// The methods a [Checker] knows.
const (
	// OCSP asks the responders named in the certificate's Authority
	// Information Access extension (x509.Certificate.OCSPServer).
	OCSP Method = "ocsp"
	// CRL reads the CRLs named in the certificate's CRL Distribution
	// Points extension (x509.Certificate.CRLDistributionPoints).
	CRL Method = "crl"
)

// Defaults for the zero [Checker].
const (
	// DefaultTimeout bounds each HTTP request.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxCRLSize is the largest CRL read, in bytes.
	DefaultMaxCRLSize = 32 << 20
	// DefaultMaxOCSPSize is the largest OCSP response read, in bytes.
	DefaultMaxOCSPSize = 64 << 10
	// DefaultTTL is how long an answer without a NextUpdate is kept.
	DefaultTTL = time.Hour
	// DefaultFailureTTL is how long a source that failed is not asked again.
	DefaultFailureTTL = time.Minute
	// DefaultCacheSize is how many answers, CRLs and failures are kept.
	DefaultCacheSize = 4096
	// DefaultMaxCacheBytes bounds the estimated memory of the cache: room
	// for the index of a CRL of the largest default size (DefaultMaxCRLSize,
	// some 650,000 entries) and then some.
	DefaultMaxCacheBytes = 128 << 20
	// DefaultEntryBudget is how long the fetches for one directory entry
	// (or one certificate checked on its own) may take in total.
	DefaultEntryBudget = 30 * time.Second
	// DefaultPassBudget is how long the fetches of one pass (one plan of
	// the Syncer) may take in total.
	DefaultPassBudget = 10 * time.Minute
)

// clockSkew is how far in the future an answer's ThisUpdate (or a delegated
// responder certificate's NotBefore) may lie before it is refused.
const clockSkew = 5 * time.Minute

// maxURLs bounds how many URLs of each method are tried for one
// certificate.
const maxURLs = 8

// Checker checks revocation by OCSP and CRL. It implements
// [smimesync.RevocationChecker]. The zero value is ready to use, with the
// defaults named in each field's comment. Set the fields before the first
// call and do not change them afterwards; a Checker is safe for concurrent
// use and must not be copied after first use.
//
// For each certificate the Checker tries the sources of each method in
// Methods, in order, and the first definitive answer (good or revoked) wins.
// Answers are cached until the source's NextUpdate (or DefaultTTL when it
// names none), CRLs are cached parsed and indexed by serial number, and
// concurrent callers asking for the same certificate or CRL share one fetch.
//
// What it fetches is bounded, because the URLs come from the certificate:
//   - Only http and https URLs without user information are fetched.
//   - Destinations: the Checker's own client refuses, at dial time (on the
//     address actually connected, after name resolution, so DNS rebinding
//     cannot get around it), loopback, link-local, private (RFC 1918 and
//     fc00::/7), CGNAT (100.64.0.0/10), unspecified, multicast, broadcast
//     and reserved addresses, IPv4-mapped and NAT64 forms of them included,
//     unless AllowHosts lists the host or address. It uses no proxy.
//   - Redirects are followed only to the same host and port (http to
//     https on the default ports included), at most three.
//   - Time: each request is bounded by Timeout, and all the fetches for one
//     directory entry by EntryBudget and for one pass by PassBudget (see
//     [Checker.BeginPass]). A spent budget leaves only cached answers.
type Checker struct {
	// HTTPClient sends the requests; nil means the Checker's own client,
	// which enforces the destination check at dial time and uses no proxy.
	// A caller's client is used as given, except that the Checker follows
	// redirects only to the same host (its CheckRedirect, if any, is asked
	// as well): its Transport dials, so the dial-time destination check
	// does NOT apply, and only URLs whose host is a refused IP address
	// literal or a localhost name are refused before sending. Its own
	// Timeout, if any, applies as well.
	HTTPClient *http.Client
	// AllowHosts lists destinations the admin allows although they are
	// loopback, private, link-local and so on. Each entry is one of:
	//   - a host name ("ocsp.corp.example"): URLs with exactly this host
	//     (case-insensitive, no wildcards) may connect to whatever address
	//     it resolves to;
	//   - an IP address ("10.1.2.3", "fd00::5"): connections to it are
	//     allowed, whatever name led there;
	//   - a CIDR prefix ("10.20.0.0/16"): connections to any address in it
	//     are allowed.
	// Anything else is ignored (and reported by Validate). Public unicast
	// addresses need no entry.
	AllowHosts []string
	// Timeout bounds each request, reading the body included; zero means
	// DefaultTimeout. A caller whose ctx ends first gets its answer at
	// once; the fetch it started goes on, up to Timeout, for others.
	Timeout time.Duration
	// HardFail answers RevocationRevoked, with the error, when the
	// certificate names at least one usable source but none gave a valid
	// answer (unreachable, refused, stale, badly signed, "unknown"). By
	// default (soft-fail) such a certificate is RevocationUnknown with the
	// error, and the policy keeps it. A missing issuer, an issuer that did
	// not sign the certificate, a certificate that names no usable source,
	// a source skipped because a time budget was spent or because its
	// destination was refused (list it in AllowHosts: an AD CS CA often
	// publishes on a private address), and the caller's ctx ending always
	// give RevocationUnknown.
	HardFail bool
	// Methods lists the methods to try, in order; nil means OCSP, then
	// CRL. []Method{CRL} reads CRLs only.
	Methods []Method
	// MaxCRLSize is the largest CRL read, in bytes; zero means
	// DefaultMaxCRLSize. A longer one fails with ErrTooLarge.
	MaxCRLSize int64
	// MaxOCSPSize is the largest OCSP response read, in bytes; zero means
	// DefaultMaxOCSPSize.
	MaxOCSPSize int64
	// DefaultTTL is how long an answer that names no NextUpdate is kept;
	// zero means DefaultTTL.
	DefaultTTL time.Duration
	// FailureTTL is how long a source that failed (unreachable, too
	// large, and for CRLs any invalid answer) is not asked again: checks
	// in that time get the same error at once, instead of each waiting for
	// a dead server. Zero means DefaultFailureTTL; negative turns it off.
	FailureTTL time.Duration
	// CacheSize bounds how many entries (per-certificate answers, parsed
	// CRLs, remembered failures) are cached; the least recently used go
	// first. Zero means DefaultCacheSize. MaxCacheBytes bounds them too.
	CacheSize int
	// MaxCacheBytes bounds the estimated memory the cached entries hold
	// (a cached CRL keeps only its revoked serial numbers, some 100 bytes
	// each); the least recently used go first. A CRL whose index alone is
	// larger is not cached: it is fetched again for every check. Zero
	// means DefaultMaxCacheBytes.
	MaxCacheBytes int64
	// EntryBudget bounds the time all the fetches for one directory entry
	// may take together (the Policy opens one per entry with BeginEntry;
	// a check outside one gets its own). Once it is spent, the remaining
	// checks of the entry answer from the cache only, or Unknown with
	// ErrBudgetExhausted. Zero means DefaultEntryBudget; negative turns
	// it off.
	EntryBudget time.Duration
	// PassBudget bounds the time all the fetches of one pass may take
	// together: the Syncer opens one at the start of each plan with
	// BeginPass. Once it is spent, every further check of the pass answers
	// from the cache only. Zero means DefaultPassBudget; negative turns it
	// off.
	PassBudget time.Duration
	// Logger receives debug records about fetches and skipped URLs; nil
	// means silent.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	once   sync.Once
	cache  *cache
	flight singleflight.Group
	log    *slog.Logger
	allow  allowList
	httpc  *http.Client
}

// Answer is the outcome of [Checker.Lookup].
type Answer struct {
	// Status is the revocation status.
	Status smimesync.RevocationStatus
	// Method and URL name the source of a good or revoked answer; they are
	// empty when no source answered (Status is then Unknown, or Revoked by
	// hard-fail).
	Method Method
	URL    string
	// ThisUpdate and NextUpdate are the source's; NextUpdate is zero when
	// the source named none.
	ThisUpdate, NextUpdate time.Time
	// RevokedAt and Reason (an RFC 5280 CRLReason code, 0 when none is
	// given) describe a revocation.
	RevokedAt time.Time
	Reason    int
	// Cached is true when the answer came from the cache.
	Cached bool
}

// Check implements [smimesync.RevocationChecker]: it returns Lookup's
// status and error.
func (c *Checker) Check(ctx context.Context, cert, issuer *x509.Certificate) (smimesync.RevocationStatus, error) {
	a, err := c.Lookup(ctx, cert, issuer)
	return a.Status, err
}

// Lookup tells whether cert, issued by issuer, is revoked, and where the
// answer came from. A good or revoked answer comes with a nil error. When
// no source gives one, the status is RevocationUnknown (RevocationRevoked
// with HardFail) and the error is an [*Error] that names the certificate and
// wraps the cause of each source's failure.
func (c *Checker) Lookup(ctx context.Context, cert, issuer *x509.Certificate) (Answer, error) {
	c.init()
	if cert == nil {
		return Answer{}, ErrNoCertificate
	}
	if cert.SerialNumber == nil {
		return Answer{}, c.fail(cert, false, fmt.Errorf("%w: the certificate has no serial number", ErrNoCertificate))
	}
	if err := ctx.Err(); err != nil {
		return Answer{}, c.fail(cert, false, err)
	}
	if issuer == nil {
		return Answer{}, c.fail(cert, false, ErrNoIssuer)
	}
	key := answerKey(cert, issuer)
	if a, ok := c.cachedAnswer(key); ok {
		return a, nil
	}
	if !hasEntryBudget(ctx) {
		ctx = c.BeginEntry(ctx)
	}
	// The fetch runs detached from the caller's ctx (each request is
	// bounded by Timeout), so that one caller giving up does not fail the
	// others waiting for the same certificate.
	fctx := context.WithoutCancel(ctx)
	ch := c.flight.DoChan(key, func() (any, error) {
		if a, ok := c.cachedAnswer(key); ok {
			return result{a, nil}, nil
		}
		a, err := c.resolve(fctx, cert, issuer)
		if err == nil {
			c.cache.put(key, a, c.until(a.NextUpdate), answerSize+int64(len(a.URL)))
		} else {
			c.log.DebugContext(fctx, "revocation: no definitive answer", "certificate", fingerprint(cert), "error", err)
		}
		return result{a, err}, nil
	})
	select {
	case <-ctx.Done():
		return Answer{}, c.fail(cert, false, ctx.Err())
	case r := <-ch:
		res := r.Val.(result)
		return res.answer, res.err
	}
}

type result struct {
	answer Answer
	err    error
}

func (c *Checker) init() {
	c.once.Do(func() {
		n := c.CacheSize
		if n <= 0 {
			n = DefaultCacheSize
		}
		nb := c.MaxCacheBytes
		if nb <= 0 {
			nb = DefaultMaxCacheBytes
		}
		c.cache = newCache(n, nb)
		c.log = c.Logger
		if c.log == nil {
			c.log = slog.New(slog.DiscardHandler)
		}
		var err error
		if c.allow, err = parseAllowList(c.AllowHosts); err != nil {
			c.log.Warn("revocation: ignoring AllowHosts entry", "error", err)
		}
		if c.HTTPClient != nil {
			cl := *c.HTTPClient
			theirs := cl.CheckRedirect
			cl.CheckRedirect = func(req *http.Request, via []*http.Request) error {
				if err := c.checkRedirect(req, via); err != nil {
					return err
				}
				if theirs != nil {
					return theirs(req, via)
				}
				return nil
			}
			c.httpc = &cl
		} else {
			c.httpc = &http.Client{Transport: c.newTransport(), CheckRedirect: c.checkRedirect}
		}
	})
}

func (c *Checker) cachedAnswer(key string) (Answer, bool) {
	v, _, ok := c.cache.get(key, c.now())
	if !ok {
		return Answer{}, false
	}
	a := v.(Answer)
	a.Cached = true
	return a, true
}

// resolve asks the sources, in order, until one gives a definitive answer.
func (c *Checker) resolve(ctx context.Context, cert, issuer *x509.Certificate) (Answer, error) {
	if err := issuer.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return Answer{}, c.fail(cert, false, fmt.Errorf("%w: %w", ErrWrongIssuer, err))
	}
	methods := c.Methods
	if methods == nil {
		methods = []Method{OCSP, CRL}
	}
	var errs []error
	tried, budgetHit := false, false // budgetHit: a source skipped by our own limits
	for _, m := range methods {
		var urls []string
		switch m {
		case OCSP:
			urls = c.usableURLs(OCSP, cert.OCSPServer)
		case CRL:
			urls = c.usableURLs(CRL, cert.CRLDistributionPoints)
		default:
			errs = append(errs, fmt.Errorf("revocation: unknown method %q in Checker.Methods", m))
			continue
		}
		for _, u := range urls {
			tried = true
			var a Answer
			var err error
			if m == OCSP {
				a, err = c.askOCSP(ctx, u, cert, issuer)
			} else {
				a, err = c.askCRL(ctx, u, cert, issuer)
			}
			if err == nil {
				c.log.DebugContext(ctx, "revocation answer", "certificate", fingerprint(cert), "status", a.Status, "method", m, "url", u)
				return a, nil
			}
			c.log.DebugContext(ctx, "revocation source failed", "certificate", fingerprint(cert), "method", m, "url", u, "error", err)
			errs = append(errs, &SourceError{Method: m, URL: u, Err: err})
			// Not the source's failure, but our own limits: no hard-fail.
			budgetHit = budgetHit || isBudget(err) || errors.Is(err, ErrRefusedDestination)
		}
	}
	if !tried {
		errs = append(errs, ErrNoSource)
		return Answer{}, c.fail(cert, false, errs...)
	}
	hard := c.HardFail && !budgetHit
	a := Answer{}
	if hard {
		a.Status = smimesync.RevocationRevoked
	}
	return a, c.fail(cert, hard, errs...)
}

// usableURLs returns the http and https URLs of raw that carry no user
// information, without duplicates and at most maxURLs of them; it logs the
// others at debug level.
func (c *Checker) usableURLs(m Method, raw []string) []string {
	var out []string
	for _, s := range raw {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.log.Debug("revocation: skipping URL that is not http(s)", "method", m, "url", s)
			continue
		}
		if u.User != nil {
			c.log.Debug("revocation: skipping URL with user information", "method", m, "url", u.Redacted())
			continue
		}
		dup := false
		for _, o := range out {
			dup = dup || o == s
		}
		if dup {
			continue
		}
		if len(out) == maxURLs {
			c.log.Debug("revocation: skipping URLs beyond the limit", "method", m, "limit", maxURLs)
			break
		}
		out = append(out, s)
	}
	return out
}

// fail builds the error for cert.
func (c *Checker) fail(cert *x509.Certificate, hard bool, errs ...error) *Error {
	return &Error{
		Certificate: fingerprint(cert),
		Subject:     cert.Subject.String(),
		Serial:      cert.SerialNumber,
		HardFail:    hard,
		Errs:        errs,
	}
}

func fingerprint(cert *x509.Certificate) smimesync.Fingerprint {
	return sha256.Sum256(cert.Raw)
}

// answerKey identifies a (certificate, issuer) pair in the cache.
func answerKey(cert, issuer *x509.Certificate) string {
	a, b := sha256.Sum256(cert.Raw), sha256.Sum256(issuer.Raw)
	return "a" + string(a[:]) + string(b[:])
}

// until is when an answer valid until next (zero: no NextUpdate) leaves
// the cache.
func (c *Checker) until(next time.Time) time.Time {
	if next.IsZero() {
		ttl := c.DefaultTTL
		if ttl <= 0 {
			ttl = DefaultTTL
		}
		return c.now().Add(ttl)
	}
	return next
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Checker) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// client is the client the Checker sends with (set up by init).
func (c *Checker) client() *http.Client { return c.httpc }

// answerSize estimates the bytes a cached Answer holds besides its URL.
const answerSize = 192

// Validate reports settings the Checker cannot honour: a negative
// Timeout, size or cache bound, an unknown method, an AllowHosts entry
// that is neither a host name, an IP address nor a CIDR prefix
// (ErrBadAllowHost). A Checker that fails it still works, with defaults in
// place of the bad values and the bad AllowHosts entries ignored.
func (c *Checker) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"Timeout", c.Timeout < 0}, {"MaxCRLSize", c.MaxCRLSize < 0}, {"MaxOCSPSize", c.MaxOCSPSize < 0},
		{"DefaultTTL", c.DefaultTTL < 0}, {"CacheSize", c.CacheSize < 0}, {"MaxCacheBytes", c.MaxCacheBytes < 0},
	} {
		if f.neg {
			errs = append(errs, fmt.Errorf("revocation: Checker.%s must not be negative", f.name))
		}
	}
	for _, m := range c.Methods {
		if m != OCSP && m != CRL {
			errs = append(errs, fmt.Errorf("revocation: unknown method %q in Checker.Methods", m))
		}
	}
	if _, err := parseAllowList(c.AllowHosts); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkFresh refuses an answer whose thisUpdate lies in the future or whose
// nextUpdate has passed.
func (c *Checker) checkFresh(thisUpdate, nextUpdate time.Time) error {
	now := c.now()
	if thisUpdate.After(now.Add(clockSkew)) {
		return fmt.Errorf("%w: ThisUpdate %s is in the future", ErrStale, thisUpdate.UTC().Format(time.RFC3339))
	}
	if !nextUpdate.IsZero() && !now.Before(nextUpdate) {
		return fmt.Errorf("%w: NextUpdate %s has passed", ErrStale, nextUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}

// failed returns the remembered failure of the source under key, if any.
func (c *Checker) failed(key string) error {
	v, until, ok := c.cache.get("f"+key, c.now())
	if !ok {
		return nil
	}
	return fmt.Errorf("not asked again before %s: %w", until.UTC().Format(time.RFC3339), v.(error))
}

// remember records the failure of the source under key for FailureTTL.
func (c *Checker) remember(key string, err error) {
	ttl := c.FailureTTL
	if ttl < 0 {
		return
	}
	if ttl == 0 {
		ttl = DefaultFailureTTL
	}
	c.cache.put("f"+key, err, c.now().Add(ttl), int64(64+len(err.Error())))
}

var _ smimesync.RevocationChecker = (*Checker)(nil)
