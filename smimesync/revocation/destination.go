package revocation

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// maxRedirects is how many redirects, all to the same host, a fetch
// follows.
const maxRedirects = 3

// allowList is Checker.AllowHosts, parsed.
type allowList struct {
	names    map[string]bool // lower case, without a trailing dot
	prefixes []netip.Prefix  // single addresses as /32 or /128
}

// parseAllowList parses AllowHosts entries: a host name, an IP address or a
// CIDR prefix each. It returns the entries it understood and an error naming
// the first it did not.
func parseAllowList(entries []string) (allowList, error) {
	a := allowList{names: map[string]bool{}}
	var first error
	for _, e := range entries {
		s := strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(s); err == nil {
			a.prefixes = append(a.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(s); err == nil {
			ip = ip.Unmap()
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(s, "."))
		if !validHostName(name) {
			if first == nil {
				first = fmt.Errorf("%w: %q is not a host name, an IP address or a CIDR prefix", ErrBadAllowHost, e)
			}
			continue
		}
		a.names[name] = true
	}
	return a, first
}

// validHostName tells whether s is a DNS host name: dot-separated labels
// of letters, digits, hyphens and underscores.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// hostAllowed tells whether the URL host name (not an address) is listed.
func (a allowList) hostAllowed(host string) bool {
	return a.names[strings.ToLower(strings.TrimSuffix(host, "."))]
}

// addrAllowed tells whether ip is inside a listed address or prefix.
func (a allowList) addrAllowed(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Address ranges a fetch never dials unless AllowHosts lets it.
var (
	cgnat     = netip.MustParsePrefix("100.64.0.0/10")  // RFC 6598 shared address space
	thisNet   = netip.MustParsePrefix("0.0.0.0/8")      // RFC 1122 "this network"
	reserved4 = netip.MustParsePrefix("240.0.0.0/4")    // RFC 1112 reserved, includes 255.255.255.255
	siteLocal = netip.MustParsePrefix("fec0::/10")      // RFC 3879 deprecated site-local
	nat64     = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052 well-known NAT64 prefix
	nat64Loc  = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215 local-use NAT64 prefix
)

// refusedKind names why ip is not a public unicast destination, or returns
// "" when it is one. IPv4-mapped and NAT64-embedded IPv4 addresses are
// judged by the IPv4 address they carry.
func refusedKind(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() && nat64.Contains(ip) {
		b := ip.As16()
		return refusedKind(netip.AddrFrom4([4]byte(b[12:16])))
	}
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified(), ip.Is4() && thisNet.Contains(ip):
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast():
		return "multicast"
	case ip.IsPrivate():
		return "private"
	case ip.Is4() && cgnat.Contains(ip):
		return "CGNAT"
	case ip.Is4() && reserved4.Contains(ip):
		return "broadcast or reserved"
	case ip.Is6() && (siteLocal.Contains(ip) || nat64Loc.Contains(ip)):
		return "private"
	}
	return ""
}

// DestinationError is a destination a fetch refused to contact. It wraps
// ErrRefusedDestination.
type DestinationError struct {
	// Host is the URL's host (name or address).
	Host string
	// Addr is the address refused; invalid when the host name itself was
	// refused.
	Addr netip.Addr
	// Kind says what the address is: "loopback", "private", …
	Kind string
}

// Error returns "revocation: refusing to contact host (addr, kind)…".
func (e *DestinationError) Error() string {
	if e.Addr.IsValid() {
		return fmt.Sprintf("%v: %s (%s, %s); list it in AllowHosts to allow it", ErrRefusedDestination, e.Host, e.Addr, e.Kind)
	}
	return fmt.Sprintf("%v: %s (%s); list it in AllowHosts to allow it", ErrRefusedDestination, e.Host, e.Kind)
}

// Unwrap returns ErrRefusedDestination.
func (e *DestinationError) Unwrap() error { return ErrRefusedDestination }

// checkDestination refuses ip (dialled for host) unless it is a public
// unicast address or allowed.
func (c *Checker) checkDestination(host string, ip netip.Addr) error {
	if c.allow.addrAllowed(ip) {
		return nil
	}
	if kind := refusedKind(ip); kind != "" {
		return &DestinationError{Host: host, Addr: ip.Unmap().WithZone(""), Kind: kind}
	}
	return nil
}

// checkURL refuses, before any request, a URL that is not http(s), carries
// user information or has no host, and a host that is a refused address
// literal or a localhost name (RFC 6761) not in AllowHosts. Host names are
// checked again, on the addresses they resolve to, when they are dialled.
func (c *Checker) checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q is not http or https", ErrRefusedDestination, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: URL carries user information", ErrRefusedDestination)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: URL has no host", ErrRefusedDestination)
	}
	if c.allow.hostAllowed(host) {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return c.checkDestination(host, ip)
	}
	if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return &DestinationError{Host: host, Kind: "loopback"}
	}
	return nil
}

// dialContext dials addr ("host:port") for the Checker's own transport.
// The destination check runs in the dialer's Control hook, on the address
// actually being connected after name resolution, so a name that resolves
// to a public address once and to a private one later (DNS rebinding)
// cannot slip through. A host name listed in AllowHosts may resolve to any
// address.
func (c *Checker) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	byName := c.allow.hostAllowed(host)
	d := net.Dialer{
		Timeout:   c.timeout(),
		KeepAlive: 30 * time.Second,
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			if byName {
				return nil
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot parse dialled address %q", ErrRefusedDestination, address)
			}
			return c.checkDestination(host, ap.Addr())
		},
	}
	return d.DialContext(ctx, network, addr)
}

// newTransport is the Checker's own transport: no proxy (a proxy would
// fetch, on our behalf, from addresses the dial check cannot see), and
// every connection through dialContext.
func (c *Checker) newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           c.dialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// checkRedirect lets a fetch follow at most maxRedirects redirects, each to
// the host (name and port) of the original URL, over http or https, and
// through checkURL. http://host to https://host on the default ports
// counts as the same host.
func (c *Checker) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirect, maxRedirects)
	}
	from, to := via[0].URL, req.URL
	if !strings.EqualFold(from.Hostname(), to.Hostname()) || effectivePort(from) != effectivePort(to) &&
		!(from.Port() == "" && to.Port() == "" && from.Scheme == "http" && to.Scheme == "https") {
		return fmt.Errorf("%w: from host %s to another host %s", ErrRedirect, from.Host, to.Host)
	}
	if err := c.checkURL(to); err != nil {
		return fmt.Errorf("%w: %w", ErrRedirect, err)
	}
	return nil
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}
