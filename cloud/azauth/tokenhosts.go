package azauth

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
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
}

func (e *TokenHostError) Error() string {
	return fmt.Sprintf("azauth: refusing to send the token to %s (from %s): the token goes only to %s", e.Origin, e.Via, strings.Join(e.Allowed, ", "))
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
// Today the set holds exactly the configured endpoint: an answer may not
// steer the token to another port, another scheme, a subdomain or a
// sibling host. Go's http.Client would forward Authorization on a redirect
// to the same host name on any port or scheme, and to its subdomains; the
// kiota Graph client checks the host name but not the port. Both are
// narrowed by this type.
//
// Exchange Online's regional redirects (issue #10: a 302 to a
// tenant-specific host inside the configured cloud) will add hosts here for
// the rest of a run; that rule, which hosts count as inside the cloud, is
// not implemented yet and belongs in this type. A TokenHosts is not
// modified after [NewTokenHosts] today, so it is safe for concurrent use.
type TokenHosts struct {
	origins []string // sorted "scheme://host:port", lower case
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
func (h *TokenHosts) Origins() []string { return slices.Clone(h.origins) }

// Allows reports whether the token may be sent to u.
func (h *TokenHosts) Allows(u *url.URL) bool {
	return u != nil && u.Host != "" && slices.Contains(h.origins, origin(u))
}

// Check returns nil when the token may be sent to u, else a
// [*TokenHostError] naming u's origin and via (where u came from).
func (h *TokenHosts) Check(u *url.URL, via string) error {
	if h.Allows(u) {
		return nil
	}
	o := "(no host)"
	if u != nil && u.Host != "" {
		o = origin(u)
	}
	return &TokenHostError{Origin: o, Via: via, Allowed: h.Origins()}
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
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
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
