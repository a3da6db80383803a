package azauth

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// ErrTokenHost is wrapped by a [*TokenHostError]: a request that would
// have carried the bearer token to a host the token may not go to. The
// request was not sent.
var ErrTokenHost = errors.New("azauth: host may not receive the token")

// TokenHostError is a request refused by [TokenHosts] before it was sent.
// It wraps [ErrTokenHost].
type TokenHostError struct {
	// Origin is the refused target as scheme://host:port (no path or
	// query: a nextLink's skip token is not repeated).
	Origin string
	// Via says where the target came from: "@odata.nextLink", "redirect"
	// or "request".
	Via string
	// Allowed lists the origins the token may go to.
	Allowed []string
	// Within lists the rules under which [TokenHosts.Learn] would have
	// added a host ("https://*.office365.com:443"), if any.
	Within []string
}

func (e *TokenHostError) Error() string {
	msg := fmt.Sprintf("azauth: refusing to send the token to %s (from %s): the token goes only to %s", e.Origin, e.Via, strings.Join(e.Allowed, ", "))
	if len(e.Within) > 0 {
		msg += " or a host of the same cloud (" + strings.Join(e.Within, ", ") + ")"
	}
	return msg
}

// Unwrap returns [ErrTokenHost].
func (e *TokenHostError) Unwrap() error { return ErrTokenHost }

// TokenHosts is the set of origins (scheme, host and port) that a sink's
// bearer token may be sent to during a run. It is the one place where that
// decision is made: the sinks check every @odata.nextLink with
// [TokenHosts.Check], refuse redirects with [TokenHosts.CheckRedirect], and
// send through [TokenHosts.Transport], which refuses any request carrying an
// Authorization header to another origin.
//
// Until [TokenHosts.Learn] adds one, the set holds exactly the configured
// endpoints: an answer may not
// steer the token to another port, another scheme, a subdomain or a
// sibling host. Go's http.Client would forward Authorization on a redirect
// to the same host name on any port or scheme, and to its subdomains; the
// kiota Graph client checks the host name but not the port. Both are
// narrowed by this type.
//
// A sink whose service may send it elsewhere inside the same cloud
// (Exchange Online's regional redirects: a 302 to a tenant-specific host)
// opens that door with [TokenHosts.LearnWithin], and then adds each such
// host with [TokenHosts.Learn] before it sends the token there; the host is
// then allowed for the rest of the run. Which hosts count as inside the
// cloud is decided here only (see [RegistrableDomain]).
//
// A TokenHosts is safe for concurrent use.
type TokenHosts struct {
	mu      sync.RWMutex
	origins []string    // sorted "scheme://host:port", lower case
	within  []cloudRule // what Learn may add
}

// cloudRule is a set of origins Learn may add: scheme and port as given,
// and a host that is one of hosts, or domain or a name under it.
type cloudRule struct {
	scheme, port string
	domain       string // "" when none
	hosts        []string
}

func (r cloudRule) allows(u *url.URL) bool {
	if u == nil || !strings.EqualFold(u.Scheme, r.scheme) || portOf(u) != r.port {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if slices.Contains(r.hosts, host) {
		return true
	}
	return r.domain != "" && (host == r.domain || strings.HasSuffix(host, "."+r.domain))
}

func (r cloudRule) String() string {
	var parts []string
	if r.domain != "" {
		parts = append(parts, r.scheme+"://*."+r.domain+":"+r.port)
	}
	for _, h := range r.hosts {
		parts = append(parts, r.scheme+"://"+h+":"+r.port)
	}
	return strings.Join(parts, ", ")
}

// NewTokenHosts returns the set of the origins of endpoints, each an
// absolute URL as [CheckEndpoint] accepts (https, or plain http to a
// loopback host). An endpoint it refuses gives a [*ConfigError] whose
// Field is "endpoint".
func NewTokenHosts(endpoints ...string) (*TokenHosts, error) {
	h := &TokenHosts{}
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" {
			return nil, &ConfigError{Field: "endpoint", Reason: fmt.Sprintf("%q is not an absolute URL", e)}
		}
		if err := checkScheme("endpoint", e, u); err != nil {
			return nil, err
		}
		o := origin(u)
		if !slices.Contains(h.origins, o) {
			h.origins = append(h.origins, o)
		}
	}
	slices.Sort(h.origins)
	return h, nil
}

// Origins returns the origins the token may go to, as scheme://host:port.
func (h *TokenHosts) Origins() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return slices.Clone(h.origins)
}

// Allows reports whether the token may be sent to u.
func (h *TokenHosts) Allows(u *url.URL) bool {
	if u == nil || u.Host == "" {
		return false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	return slices.Contains(h.origins, origin(u))
}

// Check returns nil when the token may be sent to u, else a
// [*TokenHostError] naming u's origin and via (where u came from).
func (h *TokenHosts) Check(u *url.URL, via string) error {
	if h.Allows(u) {
		return nil
	}
	return h.refusal(u, via)
}

func (h *TokenHosts) refusal(u *url.URL, via string) error {
	o := "(no host)"
	if u != nil && u.Host != "" {
		o = origin(u)
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	var within []string
	for _, r := range h.within {
		within = append(within, r.String())
	}
	return &TokenHostError{Origin: o, Via: via, Allowed: slices.Clone(h.origins), Within: within}
}

// LearnWithin lets [TokenHosts.Learn] add, for the rest of the run, the
// hosts of endpoint's cloud: an origin with endpoint's scheme and port
// whose host is endpoint's [RegistrableDomain] or a name under it, or is
// one of hosts (a national cloud's other names for the service, see
// [Cloud.ExchangeHosts]). Endpoint must be one of h's origins' URLs, and
// https: plain http (a loopback emulator) learns nothing. An endpoint
// whose host is an IP address or a single label allows only hosts.
func (h *TokenHosts) LearnWithin(endpoint string, hosts ...string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return &ConfigError{Field: "endpoint", Reason: fmt.Sprintf("%q is not an absolute URL", endpoint)}
	}
	if !h.Allows(u) {
		return &ConfigError{Field: "endpoint", Reason: fmt.Sprintf("%q is not an endpoint the token goes to", endpoint)}
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return nil
	}
	r := cloudRule{scheme: "https", port: portOf(u), domain: RegistrableDomain(u.Hostname())}
	for _, x := range hosts {
		if x = strings.ToLower(strings.TrimSpace(x)); x != "" && !slices.Contains(r.hosts, x) {
			r.hosts = append(r.hosts, x)
		}
	}
	if r.domain == "" && len(r.hosts) == 0 {
		return nil
	}
	h.mu.Lock()
	h.within = append(h.within, r)
	h.mu.Unlock()
	return nil
}

// Learn makes u's origin one the token may go to, when it already is or a
// rule of [TokenHosts.LearnWithin] allows it, and returns nil. Otherwise it
// returns a [*TokenHostError] naming u's origin and via, and h is
// unchanged.
func (h *TokenHosts) Learn(u *url.URL, via string) error {
	if h.Allows(u) {
		return nil
	}
	if u == nil || u.Host == "" || u.User != nil {
		return h.refusal(u, via)
	}
	h.mu.Lock()
	ok := false
	for _, r := range h.within {
		if r.allows(u) {
			ok = true
			break
		}
	}
	if ok {
		if o := origin(u); !slices.Contains(h.origins, o) {
			h.origins = append(h.origins, o)
			slices.Sort(h.origins)
		}
	}
	h.mu.Unlock()
	if !ok {
		return h.refusal(u, via)
	}
	return nil
}

// twoLabelSuffixes are second-level labels under which a two-letter
// country code's names are public suffixes ("co.uk", "com.au"): there
// RegistrableDomain keeps three labels.
var twoLabelSuffixes = []string{"ac", "co", "com", "edu", "gov", "mil", "net", "org"}

// RegistrableDomain returns the domain whose names [TokenHosts.LearnWithin]
// treats as one cloud with host: its last two labels ("office365.com" for
// "outlook.office365.com", "office365.us", "outlook.cn", "apps.mil"), or
// its last three under a two-letter country code whose second level is a
// public suffix ("co.uk"). It returns "" for an IP address or a
// single-label name (nothing is learnt from those).
//
// This is a deliberate approximation of the Public Suffix List (which
// smimesync does not download): it is right for every Microsoft 365
// endpoint in the presets, and for a custom endpoint it errs towards
// fewer hosts only where a suffix has more labels than it knows. It is the
// only place this rule lives.
func RegistrableDomain(host string) string {
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" || net.ParseIP(host) != nil {
		return ""
	}
	labels := strings.Split(host, ".")
	n := len(labels)
	switch {
	case n < 2:
		return ""
	case n >= 3 && len(labels[n-1]) == 2 && slices.Contains(twoLabelSuffixes, labels[n-2]):
		return strings.Join(labels[n-3:], ".")
	case n == 2 && len(labels[1]) == 2 && slices.Contains(twoLabelSuffixes, labels[0]):
		return ""
	}
	return strings.Join(labels[n-2:], ".")
}

// CheckRedirect is an http.Client CheckRedirect that follows a redirect
// only to an allowed origin (and at most 10 in a row, as net/http does);
// any other redirect fails with a [*TokenHostError] instead of being
// followed, with or without the token.
func (h *TokenHosts) CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("azauth: stopped after 10 redirects")
	}
	return h.Check(req.URL, "redirect")
}

// Transport returns a RoundTripper that sends through next (nil:
// http.DefaultTransport) every request except one that carries an
// Authorization header to an origin h does not allow: that one fails with a
// [*TokenHostError] and nothing is sent.
func (h *TokenHosts) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &guard{hosts: h, next: next}
}

type guard struct {
	hosts *TokenHosts
	next  http.RoundTripper
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" {
		if err := g.hosts.Check(req.URL, "request"); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
	}
	return g.next.RoundTrip(req)
}

// origin returns u's scheme://host:port in lower case, with the scheme's
// default port made explicit.
func origin(u *url.URL) string {
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), portOf(u))
}

// portOf returns u's port, or its scheme's default.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}

// IsLoopback reports whether host (a host name or IP address, without a
// port) is "localhost", an address in 127.0.0.0/8, or ::1.
func IsLoopback(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckEndpoint checks that s is an endpoint a token may be sent to: an
// absolute https URL, or a plain http one to a loopback host (for local
// emulators), with no path, query or fragment. It returns s without
// surrounding space or a trailing slash, or a [*ConfigError] naming field.
func CheckEndpoint(field, s string) (string, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/")
	u, err := url.Parse(s)
	if err != nil {
		return "", &ConfigError{Field: field, Reason: err.Error()}
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return "", &ConfigError{Field: field, Reason: fmt.Sprintf("%q is not an absolute https URL", s)}
	}
	if err := checkScheme(field, s, u); err != nil {
		return "", err
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", &ConfigError{Field: field, Reason: fmt.Sprintf("%q must be a host without a path (the services sit at the root of their host)", s)}
	}
	return s, nil
}

// checkScheme refuses anything but https, and plain http to a loopback
// host: a bearer token or client secret sent over plain http can be read
// by anyone on the path.
func checkScheme(field, s string, u *url.URL) error {
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && IsLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return &ConfigError{Field: field, Reason: fmt.Sprintf("%q uses plain http: tokens go only over https (plain http is allowed for loopback hosts only)", s)}
	}
	return &ConfigError{Field: field, Reason: fmt.Sprintf("%q is not an https URL", s)}
}
