package revocation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testpki"
	"github.com/smimesync/go-smimesync/smimesync"
)

// testAllowHosts lets a test's Checker reach the test PKI's servers, which
// listen on loopback: without it the destination check refuses them.
var testAllowHosts = []string{"127.0.0.1", "::1"}

// leafURLs issues an S/MIME certificate of p's CA naming the given OCSP
// and CRL URLs as they are.
func (p *testPKI) leafURLs(ocspURLs, crlURLs []string) *x509.Certificate {
	p.t.Helper()
	now := p.clock.Now()
	return p.ca.issuer().MustIssue(p.t, testpki.Serial(nextSerial()), testpki.CommonName("Mallory Example"),
		testpki.Email("mallory@example.test"), testpki.Validity(now.Add(-time.Hour), now.Add(365*24*time.Hour)),
		testpki.KeyUsage(x509.KeyUsageDigitalSignature), testpki.OCSPServer(ocspURLs...), testpki.CRLDistributionPoints(crlURLs...)).X509()
}

func codesOf(err error) []smimesync.RevocationCode {
	var e *Error
	if !errors.As(err, &e) {
		return nil
	}
	return e.RevocationCodes()
}

func TestRefusedKind(t *testing.T) {
	for _, tt := range []struct {
		addr, want string
	}{
		{"127.0.0.1", "loopback"}, {"127.255.0.9", "loopback"}, {"::1", "loopback"},
		{"10.1.2.3", "private"}, {"172.16.0.1", "private"}, {"172.31.255.255", "private"}, {"192.168.1.1", "private"},
		{"fc00::1", "private"}, {"fd12:3456::1", "private"}, {"fec0::1", "private"},
		{"100.64.0.1", "CGNAT"}, {"100.127.255.254", "CGNAT"},
		{"169.254.169.254", "link-local"}, {"fe80::1", "link-local"}, {"fe80::1%eth0", "link-local"},
		{"0.0.0.0", "unspecified"}, {"0.1.2.3", "unspecified"}, {"::", "unspecified"},
		{"224.0.0.1", "multicast"}, {"239.1.1.1", "multicast"}, {"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast or reserved"}, {"240.0.0.1", "broadcast or reserved"},
		{"::ffff:127.0.0.1", "loopback"}, {"::ffff:10.0.0.1", "private"}, {"::ffff:169.254.169.254", "link-local"},
		{"64:ff9b::7f00:1", "loopback"}, {"64:ff9b::a00:1", "private"},
		// Public unicast addresses: none is contacted by this test.
		{"8.8.8.8", ""}, {"172.32.0.1", ""}, {"100.128.0.1", ""}, {"2001:4860:4860::8888", ""}, {"64:ff9b::808:808", ""},
	} {
		if got := refusedKind(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("refusedKind(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestAllowHostsParsing(t *testing.T) {
	a, err := parseAllowList([]string{"OCSP.Corp.Example.", "10.1.2.3", "10.20.0.0/16", "fd00::/8", "::ffff:192.168.7.7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"ocsp.corp.example", "OCSP.CORP.EXAMPLE", "ocsp.corp.example."} {
		if !a.hostAllowed(h) {
			t.Errorf("host %s not allowed", h)
		}
	}
	if a.hostAllowed("x.ocsp.corp.example") || a.hostAllowed("corp.example") {
		t.Error("a host name entry must match exactly")
	}
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "10.1.2.4": false, "10.20.99.1": true, "::ffff:10.20.0.1": true,
		"fd12::1": true, "fc00::1": false, "192.168.7.7": true, "127.0.0.1": false,
	} {
		if got := a.addrAllowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("addrAllowed(%s) = %v, want %v", addr, got, want)
		}
	}
	for _, bad := range []string{"http://ocsp.corp.example", "ocsp.corp.example:80", "*.corp.example", "", "10.0.0.0/33", "a b"} {
		c := &Checker{AllowHosts: []string{"10.1.2.3", bad}}
		if err := c.Validate(); !errors.Is(err, ErrBadAllowHost) || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("AllowHosts %q: Validate() = %v, want ErrBadAllowHost naming it", bad, err)
		}
	}
	if err := (&Checker{AllowHosts: []string{"ocsp.corp.example", "10.1.2.3", "10.0.0.0/8"}}).Validate(); err != nil {
		t.Errorf("Validate() = %v on good entries", err)
	}
}

func TestValidateRefusesNegatives(t *testing.T) {
	for _, c := range []*Checker{{Timeout: -1}, {MaxCRLSize: -1}, {MaxOCSPSize: -1}, {DefaultTTL: -1}, {CacheSize: -1}, {MaxCacheBytes: -1}, {Methods: []Method{"ldap"}}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
	if err := (&Checker{}).Validate(); err != nil {
		t.Errorf("zero Checker: Validate() = %v", err)
	}
}

// The zero Checker refuses the test PKI's loopback servers, by literal
// address, by localhost name, and for a user-info URL, without sending a
// request; the note codes say so.
func TestRefusesLoopbackByDefault(t *testing.T) {
	p := newPKI(t)
	port := p.srv.Listener.Addr().(*net.TCPAddr).Port
	for _, u := range []string{
		p.srv.URL + "/ocsp/direct",
		fmt.Sprintf("http://localhost:%d/ocsp/direct", port),
		fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/ocsp/direct", port),
	} {
		c := &Checker{Now: p.clock.Now}
		st, err := c.Check(context.Background(), p.leafURLs([]string{u}, nil), p.ca.cert)
		if st != unknown || !errors.Is(err, ErrRefusedDestination) {
			t.Errorf("%s: Check = %v, %v; want unknown, ErrRefusedDestination", u, st, err)
		}
		if got := codesOf(err); !slices.Equal(got, []smimesync.RevocationCode{smimesync.RevocationRefusedDestination}) {
			t.Errorf("%s: codes %v", u, got)
		}
	}
	// A URL with user information is not used at all.
	c := &Checker{Now: p.clock.Now}
	userinfo := strings.Replace(p.srv.URL, "http://", "http://admin:secret@", 1) + "/ocsp/direct"
	if _, err := c.Check(context.Background(), p.leafURLs([]string{userinfo}, nil), p.ca.cert); !errors.Is(err, ErrNoSource) {
		t.Errorf("user-info URL: %v, want ErrNoSource (skipped)", err)
	}
	if n := p.hitCount("ocsp/direct"); n != 0 {
		t.Fatalf("%d requests reached the loopback server, want 0", n)
	}
	// Allowed by address, the same server answers.
	c = &Checker{Now: p.clock.Now, AllowHosts: []string{"127.0.0.0/8"}}
	if st, err := c.Check(context.Background(), p.leafURLs([]string{p.srv.URL + "/ocsp/direct"}, nil), p.ca.cert); st != good {
		t.Fatalf("allowed by CIDR: Check = %v, %v", st, err)
	}
	// Allowed by name, a URL naming localhost may connect.
	c = &Checker{Now: p.clock.Now, AllowHosts: []string{"localhost"}}
	if st, err := c.Check(context.Background(), p.leafURLs([]string{fmt.Sprintf("http://localhost:%d/ocsp/direct", port)}, nil), p.ca.cert); st != good {
		t.Fatalf("allowed by name: Check = %v, %v", st, err)
	}
}

// The destination check runs where the connection is made, on the
// resolved address: a host name that is not refused by itself but resolves
// to loopback is refused at dial time.
func TestDialTimeCheckOnResolvedAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if conn, err := l.Accept(); err == nil {
			accepted <- struct{}{}
			conn.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	c := &Checker{}
	c.init()
	// "localhost" resolves, through the system resolver, to loopback; the
	// name check in checkURL is bypassed here on purpose, to show the dial
	// hook alone refuses it.
	_, err = c.dialContext(context.Background(), "tcp4", fmt.Sprintf("localhost:%d", port))
	var de *DestinationError
	if !errors.Is(err, ErrRefusedDestination) || !errors.As(err, &de) || de.Kind != "loopback" {
		t.Fatalf("dial localhost = %v, want a loopback DestinationError", err)
	}
	select {
	case <-accepted:
		t.Fatal("the refused dial reached the listener")
	case <-time.After(50 * time.Millisecond):
	}
	c = &Checker{AllowHosts: []string{"127.0.0.1"}}
	c.init()
	conn, err := c.dialContext(context.Background(), "tcp4", fmt.Sprintf("localhost:%d", port))
	if err != nil {
		t.Fatalf("dial of an allowed address = %v", err)
	}
	conn.Close()
}

// redirector serves /same/<path> with a redirect to <path> on itself,
// /away/<path> with a redirect to <path> on the test PKI's server (another
// host: another port), /loop with a redirect to itself, and passes
// anything else to the test PKI.
func redirector(t *testing.T, p *testPKI) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.EscapedPath()
		switch {
		case strings.HasPrefix(path, "/same/"):
			http.Redirect(w, r, strings.TrimPrefix(path, "/same"), http.StatusFound)
		case strings.HasPrefix(path, "/away/"):
			http.Redirect(w, r, p.srv.URL+strings.TrimPrefix(path, "/away"), http.StatusFound)
		case strings.HasPrefix(path, "/loop"):
			http.Redirect(w, r, "/loop"+path, http.StatusFound)
		default:
			p.serve(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRedirectsStayOnTheHost(t *testing.T) {
	p := newPKI(t)
	r := redirector(t, p)
	for _, client := range []*http.Client{nil, {}} {
		c := &Checker{Now: p.clock.Now, AllowHosts: testAllowHosts, HTTPClient: client, FailureTTL: -1}
		// The same host: followed.
		if st, err := c.Check(context.Background(), p.leafURLs([]string{r.URL + "/same/ocsp/direct"}, nil), p.ca.cert); st != good {
			t.Fatalf("redirect to the same host: Check = %v, %v", st, err)
		}
		// Another host (here the PKI's own server, on another port): refused.
		before := p.hitCount("ocsp/direct")
		st, err := c.Check(context.Background(), p.leafURLs([]string{r.URL + "/away/ocsp/direct"}, []string{r.URL + "/away/crl/good.crl"}), p.ca.cert)
		if st != unknown || !errors.Is(err, ErrRedirect) {
			t.Fatalf("redirect to another host: Check = %v, %v; want unknown, ErrRedirect", st, err)
		}
		if got := codesOf(err); !slices.Equal(got, []smimesync.RevocationCode{smimesync.RevocationRefusedRedirect}) {
			t.Errorf("codes %v", got)
		}
		if n := p.hitCount("ocsp/direct") - before; n != 0 || p.hitCount("crl/good") != 0 {
			t.Fatalf("the other host got %d OCSP and %d CRL requests, want 0", n, p.hitCount("crl/good"))
		}
		// Endless redirects on the same host: stopped.
		if _, err := c.Check(context.Background(), p.leafURLs(nil, []string{r.URL + "/loop"}), p.ca.cert); !errors.Is(err, ErrRedirect) {
			t.Fatalf("redirect loop: %v, want ErrRedirect", err)
		}
	}
}

// A caller's client keeps its own CheckRedirect, asked after ours.
func TestCallerCheckRedirectStillAsked(t *testing.T) {
	p := newPKI(t)
	r := redirector(t, p)
	asked := 0
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { asked++; return nil }}
	c := &Checker{Now: p.clock.Now, AllowHosts: testAllowHosts, HTTPClient: client}
	if st, err := c.Check(context.Background(), p.leafURLs([]string{r.URL + "/same/ocsp/direct"}, nil), p.ca.cert); st != good || asked != 1 {
		t.Fatalf("Check = %v, %v; caller's CheckRedirect asked %d times, want 1", st, err, asked)
	}
	if client.CheckRedirect == nil {
		t.Fatal("the caller's client was changed")
	}
}

// hostileURLs returns n distinct URLs per method on the test PKI's "hang"
// mode, which answers only when the client gives up.
func hostileURLs(p *testPKI, n int) (ocspURLs, crlURLs []string) {
	for i := range n {
		ocspURLs = append(ocspURLs, fmt.Sprintf("%s/ocsp/hang/%d", p.srv.URL, i))
		crlURLs = append(crlURLs, fmt.Sprintf("%s/crl/hang.crl/%d", p.srv.URL, i))
	}
	return ocspURLs, crlURLs
}

// Sixteen sources that each hang until the timeout: the entry budget stops
// the checker after the budget's worth of them, not after all sixteen.
func TestEntryBudgetStopsHostileURLs(t *testing.T) {
	p := newPKI(t)
	o, l := hostileURLs(p, maxURLs)
	leaf := p.leafURLs(o, l)
	const timeout, budget = 100 * time.Millisecond, 250 * time.Millisecond
	c := &Checker{Now: p.clock.Now, AllowHosts: testAllowHosts, Timeout: timeout, EntryBudget: budget, HardFail: true}
	st, err := c.Check(context.Background(), leaf, p.ca.cert)
	if st != unknown {
		t.Errorf("status %v: a spent budget must give unknown even with HardFail", st)
	}
	n := p.hitCount("ocsp/hang") + p.hitCount("crl/hang")
	t.Logf("%d of %d hostile URLs requested within an entry budget of %v at a timeout of %v; codes %v", n, len(o)+len(l), budget, timeout, codesOf(err))
	// Each request takes at least the timeout (or what is left of the
	// budget), so at most ceil(budget/timeout) requests fit.
	if n < 1 || n > int((budget+timeout-1)/timeout) {
		t.Fatalf("%d requests for %d hostile URLs, want 1..%d", n, len(o)+len(l), (budget+timeout-1)/timeout)
	}
	var e *Error
	if !errors.As(err, &e) || len(e.Errs) != len(o)+len(l) {
		t.Fatalf("error %v, want one cause per URL", err)
	}
	exhausted := 0
	for _, cause := range e.Errs {
		if errors.Is(cause, ErrBudgetExhausted) {
			exhausted++
		}
	}
	if exhausted < len(o)+len(l)-n {
		t.Errorf("%d causes are ErrBudgetExhausted, want at least %d", exhausted, len(o)+len(l)-n)
	}
	if codes := e.RevocationCodes(); !slices.Contains(codes, smimesync.RevocationBudgetExhausted) {
		t.Errorf("codes %v lack budget-exhausted", codes)
	}
}

// Within one pass, once the pass budget is spent, checks answer from the
// cache only: a cached answer is still given, a new one is not fetched.
func TestPassBudget(t *testing.T) {
	p := newPKI(t)
	const timeout, budget = 100 * time.Millisecond, 250 * time.Millisecond
	c := &Checker{Now: p.clock.Now, AllowHosts: testAllowHosts, Timeout: timeout, PassBudget: budget}
	ctx := c.BeginPass(context.Background())
	cached := p.leaf([]string{"direct"}, nil)
	if st, err := c.Check(ctx, cached, p.ca.cert); st != good {
		t.Fatalf("Check = %v, %v", st, err)
	}
	o, _ := hostileURLs(p, 8)
	for _, u := range o {
		// One hostile URL per certificate: each entry's own budget is
		// never the limit here.
		c.Check(c.BeginEntry(ctx), p.leafURLs([]string{u}, nil), p.ca.cert)
	}
	t.Logf("%d of %d hanging responders requested within a pass budget of %v", p.hitCount("ocsp/hang"), len(o), budget)
	if n := p.hitCount("ocsp/hang"); n < 1 || n > 3 {
		t.Fatalf("%d requests to hanging responders in a pass of %v at %v each, want 1..3", n, budget, timeout)
	}
	a, err := c.Lookup(ctx, cached, p.ca.cert)
	if a.Status != good || !a.Cached {
		t.Fatalf("cached answer after the pass budget was spent: %+v, %v", a, err)
	}
	before := p.hitCount("ocsp/direct")
	_, err = c.Check(ctx, p.leaf([]string{"direct"}, nil), p.ca.cert)
	if !errors.Is(err, ErrBudgetExhausted) || p.hitCount("ocsp/direct") != before {
		t.Fatalf("new check after the pass budget was spent: %v, %d new requests; want ErrBudgetExhausted and none", err, p.hitCount("ocsp/direct")-before)
	}
	// A new pass has a new budget; the budget refusal was not remembered
	// as the source's failure.
	if st, err := c.Check(c.BeginPass(context.Background()), p.leaf([]string{"direct"}, nil), p.ca.cert); st != good {
		t.Fatalf("new pass: Check = %v, %v", st, err)
	}
}

func TestRevocationCodes(t *testing.T) {
	p := newPKI(t)
	c := &Checker{Now: p.clock.Now, AllowHosts: testAllowHosts, Timeout: 50 * time.Millisecond, FailureTTL: -1}
	for _, tt := range []struct {
		name   string
		leaf   *x509.Certificate
		issuer *x509.Certificate
		want   []smimesync.RevocationCode
	}{
		{"http status", p.leaf([]string{"down"}, nil), p.ca.cert, []smimesync.RevocationCode{smimesync.RevocationHTTPStatus}},
		{"timeout", p.leaf([]string{"hang"}, nil), p.ca.cert, []smimesync.RevocationCode{smimesync.RevocationTimeout}},
		{"unreachable", p.leaf([]string{"dead"}, nil), p.ca.cert, []smimesync.RevocationCode{smimesync.RevocationUnreachable}},
		{"bad response", p.leaf([]string{"garbage"}, []string{"wrongkey"}), p.ca.cert, []smimesync.RevocationCode{smimesync.RevocationBadResponse}},
		{"no source", p.leaf(nil, []string{"ldap"}), p.ca.cert, []smimesync.RevocationCode{smimesync.RevocationNoSource}},
		{"no issuer", p.leaf([]string{"direct"}, nil), nil, []smimesync.RevocationCode{smimesync.RevocationNoIssuer}},
		{"wrong issuer", p.leaf([]string{"direct"}, nil), p.otherCA.cert, []smimesync.RevocationCode{smimesync.RevocationNoIssuer}},
		{"two at once", p.leaf([]string{"down"}, []string{"stale"}), p.ca.cert, []smimesync.RevocationCode{smimesync.RevocationHTTPStatus, smimesync.RevocationBadResponse}},
	} {
		_, err := c.Check(context.Background(), tt.leaf, tt.issuer)
		if got := smimesync.RevocationCodesOf(err); !slices.Equal(got, tt.want) {
			t.Errorf("%s: codes %v, want %v (error %v)", tt.name, got, tt.want, err)
		}
	}
}

func TestCacheEvictsByBytes(t *testing.T) {
	// The cache on its own: three values of 400 bytes in a bound of 1000
	// (with per-entry overhead): the oldest goes.
	cc := newCache(100, 2*(400+entryOverhead+1)+10)
	until := time.Now().Add(time.Hour)
	now := time.Now()
	for _, k := range []string{"a", "b", "c"} {
		cc.put(k, k, until, 400)
	}
	if _, _, ok := cc.get("a", now); ok {
		t.Error("a still cached beyond the byte bound")
	}
	for _, k := range []string{"b", "c"} {
		if _, _, ok := cc.get(k, now); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if n, b := cc.usage(); n != 2 || b != 2*(400+entryOverhead+1) {
		t.Errorf("usage %d entries, %d bytes", n, b)
	}
	if cc.put("huge", "x", until, 1<<20) {
		t.Error("a value larger than the whole bound was stored")
	}

	// Through the Checker: two CRLs of 500 entries each, with room for one.
	// Certificates a and a2 use the same CRL; b another one.
	for _, tt := range []struct {
		maxBytes int64
		want     int
	}{{maxBytes: 70 << 10, want: 2}, {maxBytes: 0, want: 1}} {
		p := newPKI(t)
		for i := range 500 {
			p.revoked[fmt.Sprint(1_000_000+i)] = 1
		}
		c := &Checker{Now: p.clock.Now, AllowHosts: testAllowHosts, MaxCacheBytes: tt.maxBytes}
		a, a2, b := p.leaf(nil, []string{"good"}), p.leaf(nil, []string{"good"}), p.leaf(nil, []string{"pem"})
		for _, leaf := range []*x509.Certificate{a, b, a2} {
			if st, err := c.Check(context.Background(), leaf, p.ca.cert); st != good {
				t.Fatalf("Check = %v, %v", st, err)
			}
		}
		if n := p.hitCount("crl/good"); n != tt.want {
			_, used := c.cache.usage()
			t.Errorf("MaxCacheBytes %d: %d fetches of the first CRL for a, b, a2, want %d (cache holds %d bytes)", tt.maxBytes, n, tt.want, used)
		}
		if _, used := c.cache.usage(); tt.maxBytes > 0 && used > tt.maxBytes {
			t.Errorf("cache holds %d bytes, bound %d", used, tt.maxBytes)
		}
	}
}

// A refused destination is our own limit, not the source's failure: even
// with HardFail the status is unknown (an internal CA whose URLs are not
// yet allowed must not make every certificate "revoked"), and the admin
// hears about it at warning level.
func TestRefusedDestinationIsNotHardFail(t *testing.T) {
	p := newPKI(t)
	var buf strings.Builder
	var mu sync.Mutex
	c := &Checker{Now: p.clock.Now, HardFail: true, Logger: newTestLogger(&buf, &mu)}
	st, err := c.Check(context.Background(), p.leaf([]string{"direct"}, []string{"good"}), p.ca.cert)
	if st != unknown || !errors.Is(err, ErrRefusedDestination) {
		t.Fatalf("Check = %v, %v; want unknown, ErrRefusedDestination", st, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "kind=loopback") {
		t.Errorf("no warning about the refused destination:\n%s", buf.String())
	}
}
