package revocation

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/smimesync/go-smimesync/smimesync"
)

const (
	good    = smimesync.RevocationGood
	revoked = smimesync.RevocationRevoked
	unknown = smimesync.RevocationUnknown
)

func TestCheck(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name      string
		ocsp, crl []string
		revoked   bool // the CA revoked the certificate (keyCompromise)
		unknown   bool // the OCSP responder does not know it
		issuer    *x509.Certificate
		noIssuer  bool
		config    func(*Checker)
		want      smimesync.RevocationStatus
		method    Method
		errs      []error // each must match with errors.Is; none means no error
	}{
		{name: "good by OCSP signed by the CA", ocsp: []string{"direct"}, crl: []string{"good"}, want: good, method: OCSP},
		{name: "good by OCSP from a delegated responder", ocsp: []string{"delegated"}, want: good, method: OCSP},
		{name: "good by OCSP without NextUpdate", ocsp: []string{"nonext"}, want: good, method: OCSP},
		{name: "good by OCSP sent with POST", ocsp: []string{"direct?x=1"}, want: good, method: OCSP},
		{name: "revoked by OCSP", ocsp: []string{"direct"}, crl: []string{"good"}, revoked: true, want: revoked, method: OCSP},
		{name: "revoked by OCSP from a delegated responder", ocsp: []string{"delegated"}, revoked: true, want: revoked, method: OCSP},
		{name: "revoked by CRL only", crl: []string{"good"}, revoked: true, want: revoked, method: CRL},
		{name: "good by CRL only", crl: []string{"good"}, want: good, method: CRL},
		{name: "good by PEM CRL", crl: []string{"pem"}, want: good, method: CRL},
		{name: "revoked by chunked CRL", crl: []string{"chunked"}, revoked: true, want: revoked, method: CRL},
		{name: "ldap CDP skipped, http CDP used", crl: []string{"ldap", "good"}, revoked: true, want: revoked, method: CRL},
		{name: "OCSP unknown, no CRL", ocsp: []string{"direct"}, unknown: true, want: unknown, errs: []error{ErrStatusUnknown}},
		{name: "OCSP unknown, hard-fail", ocsp: []string{"direct"}, unknown: true, config: hardFail, want: revoked, errs: []error{ErrStatusUnknown}},
		{name: "OCSP unknown, CRL revoked", ocsp: []string{"direct"}, crl: []string{"good"}, unknown: true, revoked: true, want: revoked, method: CRL},
		{name: "OCSP responder down, CRL good", ocsp: []string{"dead"}, crl: []string{"good"}, want: good, method: CRL},
		{name: "second responder answers", ocsp: []string{"dead", "direct"}, want: good, method: OCSP},
		{name: "responder down, soft-fail", ocsp: []string{"dead"}, want: unknown, errs: []error{ErrUnreachable}},
		{name: "responder down, hard-fail", ocsp: []string{"dead"}, config: hardFail, want: revoked, errs: []error{ErrUnreachable}},
		{name: "HTTP 503 from both", ocsp: []string{"down"}, crl: []string{"down"}, want: unknown, errs: []error{ErrUnreachable}},
		{name: "stale OCSP response", ocsp: []string{"stale"}, want: unknown, errs: []error{ErrStale}},
		{name: "OCSP ThisUpdate in the future", ocsp: []string{"future"}, want: unknown, errs: []error{ErrStale}},
		{name: "stale CRL", crl: []string{"stale"}, revoked: true, want: unknown, errs: []error{ErrStale}},
		{name: "OCSP signed by the wrong key", ocsp: []string{"wrongkey"}, revoked: false, want: unknown, errs: []error{ErrBadSignature}},
		{name: "OCSP signed by a certificate without id-kp-OCSPSigning", ocsp: []string{"noeku"}, want: unknown, errs: []error{ErrBadSignature}},
		{name: "OCSP signed by a self-signed responder", ocsp: []string{"rogue"}, want: unknown, errs: []error{ErrBadSignature}},
		{name: "OCSP signed by an expired responder", ocsp: []string{"expiredresp"}, want: unknown, errs: []error{ErrBadSignature}},
		{name: "OCSP response about another CA's certificate", ocsp: []string{"otherissuer"}, want: unknown, errs: []error{ErrMalformed}},
		{name: "OCSP unauthorized", ocsp: []string{"unauthorized"}, want: unknown, errs: []error{ErrRefused}},
		{name: "OCSP garbage", ocsp: []string{"garbage"}, want: unknown, errs: []error{ErrMalformed}},
		{name: "OCSP response too large", ocsp: []string{"direct"}, config: func(c *Checker) { c.MaxOCSPSize = 16 }, want: unknown, errs: []error{ErrTooLarge}},
		{name: "CRL signed by another key under the CA's name", crl: []string{"wrongkey"}, want: unknown, errs: []error{ErrBadSignature}},
		{name: "CRL of another name signed with the CA's key", crl: []string{"renamed"}, want: unknown, errs: []error{ErrBadSignature}},
		{name: "CRL signed by another CA", crl: []string{"otherca"}, want: unknown, errs: []error{ErrBadSignature}},
		{name: "CRL too large", crl: []string{"good"}, config: func(c *Checker) { c.MaxCRLSize = 64 }, want: unknown, errs: []error{ErrTooLarge}},
		{name: "chunked CRL too large", crl: []string{"chunked"}, config: func(c *Checker) { c.MaxCRLSize = 64 }, want: unknown, errs: []error{ErrTooLarge}},
		{name: "CRL for CA certificates only", crl: []string{"onlyca"}, revoked: true, want: unknown, errs: []error{ErrUnsupportedCRL}},
		{name: "no issuer, hard-fail", ocsp: []string{"direct"}, noIssuer: true, config: hardFail, want: unknown, errs: []error{ErrNoIssuer}},
		{name: "wrong issuer, hard-fail", ocsp: []string{"direct"}, issuer: p.otherCA.cert, config: hardFail, want: unknown, errs: []error{ErrWrongIssuer}},
		{name: "no usable source, hard-fail", crl: []string{"ldap"}, config: hardFail, want: unknown, errs: []error{ErrNoSource}},
		{name: "no source at all", want: unknown, errs: []error{ErrNoSource}},
		{name: "CRL only by configuration", ocsp: []string{"wrongkey"}, crl: []string{"good"}, config: methods(CRL), want: good, method: CRL},
		{name: "CRL first by configuration", ocsp: []string{"direct"}, crl: []string{"good"}, config: methods(CRL, OCSP), want: good, method: CRL},
		{name: "OCSP only by configuration", crl: []string{"good"}, config: methods(OCSP), want: unknown, errs: []error{ErrNoSource}},
		{name: "unknown method", ocsp: []string{"direct"}, config: methods("carrier-pigeon"), want: unknown, errs: []error{ErrNoSource}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := p.leaf(tt.ocsp, tt.crl)
			if tt.revoked {
				p.revoke(leaf, ocsp.KeyCompromise)
			}
			if tt.unknown {
				p.markUnknown(leaf)
			}
			issuer := p.ca.cert
			if tt.issuer != nil {
				issuer = tt.issuer
			}
			if tt.noIssuer {
				issuer = nil
			}
			c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now}
			if tt.config != nil {
				tt.config(c)
			}
			a, err := c.Lookup(context.Background(), leaf, issuer)
			if a.Status != tt.want {
				t.Errorf("status = %v, want %v (err: %v)", a.Status, tt.want, err)
			}
			if a.Method != tt.method {
				t.Errorf("method = %q, want %q", a.Method, tt.method)
			}
			if len(tt.errs) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
			} else {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v (%T) is not an *Error", err, err)
				}
				if e.Certificate != fingerprint(leaf) || e.Serial.Cmp(leaf.SerialNumber) != 0 {
					t.Errorf("error names %s serial %v, want the leaf", e.Certificate, e.Serial)
				}
				if e.HardFail != (tt.want == revoked) {
					t.Errorf("HardFail = %v with status %v", e.HardFail, a.Status)
				}
				if !strings.Contains(err.Error(), fingerprint(leaf).String()) {
					t.Errorf("message %q does not name the fingerprint", err)
				}
				for _, want := range tt.errs {
					if !errors.Is(err, want) {
						t.Errorf("error %q is not %v", err, want)
					}
				}
			}
			if tt.revoked && a.Status == revoked && err == nil {
				if a.Reason != ocsp.KeyCompromise || a.RevokedAt.IsZero() {
					t.Errorf("revocation details: reason %d at %v", a.Reason, a.RevokedAt)
				}
			}
			if err == nil && (a.URL == "" || a.ThisUpdate.IsZero()) {
				t.Errorf("answer lacks its source: %+v", a)
			}
			st, err2 := c.Check(context.Background(), leaf, issuer)
			if st != a.Status || (err2 == nil) != (err == nil) {
				t.Errorf("Check = %v, %v; Lookup gave %v, %v", st, err2, a.Status, err)
			}
		})
	}
}

func hardFail(c *Checker) { c.HardFail = true }

func methods(m ...Method) func(*Checker) {
	return func(c *Checker) { c.Methods = m }
}

func TestNilCertificate(t *testing.T) {
	var c Checker
	st, err := c.Check(context.Background(), nil, nil)
	if st != unknown || !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("Check(nil) = %v, %v", st, err)
	}
	p := newPKI(t)
	leaf := *p.leaf([]string{"direct"}, nil)
	leaf.SerialNumber = nil
	st, err = c.Check(context.Background(), &leaf, p.ca.cert)
	if st != unknown || !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("Check(no serial) = %v, %v", st, err)
	}
}

func TestOCSPUsesGETForSmallRequests(t *testing.T) {
	p := newPKI(t)
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now}
	if st, err := c.Check(context.Background(), p.leaf([]string{"direct"}, nil), p.ca.cert); st != good {
		t.Fatalf("Check = %v, %v", st, err)
	}
	if p.methodCount("GET") != 1 || p.methodCount("POST") != 0 {
		t.Fatalf("GET %d, POST %d; want one GET", p.methodCount("GET"), p.methodCount("POST"))
	}
	if st, err := c.Check(context.Background(), p.leaf([]string{"direct?x=1"}, nil), p.ca.cert); st != good {
		t.Fatalf("Check = %v, %v", st, err)
	}
	if p.methodCount("POST") != 1 {
		t.Fatalf("a responder URL with a query must get a POST; got %d", p.methodCount("POST"))
	}
}

func TestTimeout(t *testing.T) {
	p := newPKI(t)
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now, Timeout: 50 * time.Millisecond}
	// The handler blocks until the client gives up: if Timeout were not
	// honoured, Check would not return before the test binary's timeout.
	st, err := c.Check(context.Background(), p.leaf([]string{"hang"}, []string{"hang"}), p.ca.cert)
	if st != unknown || !errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Check = %v, %v; want unknown and a deadline error", st, err)
	}
	if n := p.hitCount("ocsp/hang") + p.hitCount("crl/hang"); n != 2 {
		t.Fatalf("%d requests, want 2 (one per source)", n)
	}
}

func TestContextCancelled(t *testing.T) {
	p := newPKI(t)
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now, HardFail: true}
	leaf := p.leaf([]string{"hang"}, nil)

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-p.arrived
		cancel()
	}()
	st, err := c.Check(ctx, leaf, p.ca.cert)
	if st != unknown || !errors.Is(err, context.Canceled) {
		t.Fatalf("Check = %v, %v; want unknown and context.Canceled even with hard-fail", st, err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Certificate != fingerprint(leaf) {
		t.Fatalf("error %v does not name the certificate", err)
	}

	// A ctx that is already done: no request at all.
	before := p.hitCount("ocsp/hang")
	st, err = c.Check(ctx, p.leaf([]string{"hang"}, nil), p.ca.cert)
	if st != unknown || !errors.Is(err, context.Canceled) || p.hitCount("ocsp/hang") != before {
		t.Fatalf("Check with a done ctx = %v, %v, requests %d→%d", st, err, before, p.hitCount("ocsp/hang"))
	}
}

func TestCacheOCSP(t *testing.T) {
	p := newPKI(t)
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now}
	leaf := p.leaf([]string{"direct"}, nil)
	ctx := context.Background()

	a, err := c.Lookup(ctx, leaf, p.ca.cert)
	if a.Status != good || a.Cached || err != nil {
		t.Fatalf("first Lookup = %+v, %v", a, err)
	}
	p.clock.Add(30 * time.Minute)
	a, err = c.Lookup(ctx, leaf, p.ca.cert)
	if a.Status != good || !a.Cached || err != nil {
		t.Fatalf("second Lookup = %+v, %v; want cached", a, err)
	}
	if n := p.hitCount("ocsp/direct"); n != 1 {
		t.Fatalf("%d requests before NextUpdate, want 1", n)
	}
	p.clock.Add(31 * time.Minute) // past NextUpdate
	a, err = c.Lookup(ctx, leaf, p.ca.cert)
	if a.Status != good || a.Cached || err != nil {
		t.Fatalf("Lookup after NextUpdate = %+v, %v; want fresh", a, err)
	}
	if n := p.hitCount("ocsp/direct"); n != 2 {
		t.Fatalf("%d requests after NextUpdate, want 2", n)
	}
}

func TestCacheWithoutNextUpdate(t *testing.T) {
	p := newPKI(t)
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now, DefaultTTL: 10 * time.Minute}
	leaf := p.leaf([]string{"nonext"}, nil)
	for _, step := range []time.Duration{0, 9 * time.Minute, 2 * time.Minute} {
		p.clock.Add(step)
		if st, err := c.Check(context.Background(), leaf, p.ca.cert); st != good {
			t.Fatalf("Check = %v, %v", st, err)
		}
	}
	if n := p.hitCount("ocsp/nonext"); n != 2 {
		t.Fatalf("%d requests, want 2 (DefaultTTL passed once)", n)
	}
}

func TestCacheCRL(t *testing.T) {
	p := newPKI(t)
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now}
	ctx := context.Background()
	alice, bob := p.leaf(nil, []string{"good"}), p.leaf(nil, []string{"good"})
	p.revoke(bob, ocsp.Superseded)

	if st, err := c.Check(ctx, alice, p.ca.cert); st != good {
		t.Fatalf("alice: %v, %v", st, err)
	}
	if st, err := c.Check(ctx, bob, p.ca.cert); st != revoked {
		t.Fatalf("bob: %v, %v", st, err)
	}
	if n := p.hitCount("crl/good"); n != 1 {
		t.Fatalf("%d CRL downloads for two certificates, want 1", n)
	}
	// Revoking alice now is not seen until the cached CRL's NextUpdate.
	p.revoke(alice, ocsp.KeyCompromise)
	p.clock.Add(59 * time.Minute)
	if st, _ := c.Check(ctx, alice, p.ca.cert); st != good {
		t.Fatalf("alice before NextUpdate: %v, want the cached good", st)
	}
	p.clock.Add(2 * time.Minute)
	if st, err := c.Check(ctx, alice, p.ca.cert); st != revoked {
		t.Fatalf("alice after NextUpdate: %v, %v; want revoked from a fresh CRL", st, err)
	}
	if n := p.hitCount("crl/good"); n != 2 {
		t.Fatalf("%d CRL downloads, want 2", n)
	}
}

func TestFailureRemembered(t *testing.T) {
	p := newPKI(t)
	ctx := context.Background()
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now}
	leaf := p.leaf([]string{"down"}, []string{"down"})
	for range 3 {
		if st, err := c.Check(ctx, leaf, p.ca.cert); st != unknown || !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Check = %v, %v", st, err)
		}
	}
	if o, l := p.hitCount("ocsp/down"), p.hitCount("crl/down"); o != 1 || l != 1 {
		t.Fatalf("requests: OCSP %d, CRL %d; want 1 each while the failure is remembered", o, l)
	}
	// Another certificate naming the same responder is not sent there either.
	if st, _ := c.Check(ctx, p.leaf([]string{"down"}, nil), p.ca.cert); st != unknown || p.hitCount("ocsp/down") != 1 {
		t.Fatalf("other certificate: %v, %d OCSP requests", st, p.hitCount("ocsp/down"))
	}
	p.clock.Add(DefaultFailureTTL)
	c.Check(ctx, leaf, p.ca.cert)
	if n := p.hitCount("ocsp/down"); n != 2 {
		t.Fatalf("%d OCSP requests after FailureTTL, want 2", n)
	}

	off := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now, FailureTTL: -1}
	for range 2 {
		off.Check(ctx, leaf, p.ca.cert)
	}
	if n := p.hitCount("ocsp/down"); n != 4 {
		t.Fatalf("%d OCSP requests with FailureTTL off, want 4", n)
	}
}

func TestCacheBound(t *testing.T) {
	for _, tt := range []struct {
		size, want int
	}{{size: 1, want: 3}, {size: 0, want: 2}} {
		p := newPKI(t)
		c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now, CacheSize: tt.size}
		a, b := p.leaf([]string{"direct"}, nil), p.leaf([]string{"direct"}, nil)
		for _, leaf := range []*x509.Certificate{a, b, a} {
			if st, err := c.Check(context.Background(), leaf, p.ca.cert); st != good {
				t.Fatalf("Check = %v, %v", st, err)
			}
		}
		if n := p.hitCount("ocsp/direct"); n != tt.want {
			t.Errorf("CacheSize %d: %d requests for a, b, a; want %d", tt.size, n, tt.want)
		}
	}
}

func TestConcurrentChecksShareOneFetch(t *testing.T) {
	p := newPKI(t)
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now}
	leaf := p.leaf([]string{"slow"}, nil)
	crlLeaves := make([]*x509.Certificate, 4)
	for i := range crlLeaves {
		crlLeaves[i] = p.leaf(nil, []string{"slow"})
	}
	const n = 16
	var wg sync.WaitGroup
	results := make(chan smimesync.RevocationStatus, 2*n)
	for i := range 2 * n {
		wg.Go(func() {
			cert := leaf
			if i%2 == 1 {
				cert = crlLeaves[i%len(crlLeaves)]
			}
			st, err := c.Check(context.Background(), cert, p.ca.cert)
			if err != nil {
				t.Error(err)
			}
			results <- st
		})
	}
	// Both fetches have arrived and wait at the gate; give the other
	// goroutines a moment to join them before opening it.
	<-p.arrived
	<-p.arrived
	time.Sleep(20 * time.Millisecond)
	close(p.gate)
	wg.Wait()
	close(results)
	for st := range results {
		if st != good {
			t.Errorf("status %v, want good", st)
		}
	}
	if o, l := p.hitCount("ocsp/slow"), p.hitCount("crl/slow"); o != 1 || l != 1 {
		t.Fatalf("%d OCSP and %d CRL requests for %d concurrent checks, want 1 each", o, l, 2*n)
	}
}

func TestLogger(t *testing.T) {
	// A nil Logger is silent; a given one hears about skipped URLs.
	p := newPKI(t)
	var buf strings.Builder
	var mu sync.Mutex
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now, Logger: newTestLogger(&buf, &mu)}
	c.Check(context.Background(), p.leaf(nil, []string{"ldap", "good"}), p.ca.cert)
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "ldap:///CN=Test") {
		t.Fatalf("log does not mention the skipped ldap URL:\n%s", buf.String())
	}
}

// lockedWriter lets a test read what a logger wrote from other goroutines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func newTestLogger(w io.Writer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, w}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
