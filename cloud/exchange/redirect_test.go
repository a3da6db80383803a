package exchange_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// Host names of the redirect tests: the emulator's TLS certificate covers
// example.com and one label under it; exchangetest.Server.Route maps them
// to the emulator's loopback address.
const (
	exoHost      = "outlook.example.com"
	regionalHost = "eur03.example.com"
)

// TestRegionalRedirectSyncedEndToEnd: a tenant whose endpoint answers 302
// to a regional host of the same cloud is synced: the POST is re-sent
// there with the same body, client-request-id and token, and every later
// call goes there directly.
func TestRegionalRedirectSyncedEndToEnd(t *testing.T) {
	e := newEnv(t, exchangetest.Config{Host: exoHost, RegionalHost: regionalHost}, nil)
	e.exo.Add(e2eSeed...)
	st := &smimesync.MemoryState{}
	rep, err := e.syncer(e2eLDIF, st).Run(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("run: %+v; sink %+v", rep.Summary, e.sink.Stats())
	if rep.Summary.Written != 4 {
		t.Fatalf("written %d, want 4 (errors: %v)", rep.Summary.Written, rep.Errors)
	}
	checkTenant(t, e, st)
	if n := e.exo.Redirects(); n != 1 {
		t.Errorf("%d requests were redirected, want 1: the sink remembers the regional host", n)
	}
	if n := e.sink.Stats().Redirects; n != 1 {
		t.Errorf("Stats.Redirects = %d, want 1", n)
	}
	log := e.exo.Log()
	if log[0].Status != 302 || !strings.HasPrefix(log[0].Host, exoHost+":") {
		t.Fatalf("first request: %+v, want the redirect from %s", log[0], exoHost)
	}
	if log[1].ClientRequestID != log[0].ClientRequestID || log[1].Method != "POST" || log[1].Cmdlet != log[0].Cmdlet || !log[1].Token {
		t.Errorf("re-sent request %+v does not repeat %+v as the same POST with the token", log[1], log[0])
	}
	for _, q := range log[1:] {
		if !strings.HasPrefix(q.Host, regionalHost+":") {
			t.Errorf("%s %s went to %s after the redirect", q.Method, q.Cmdlet, q.Host)
		}
	}
}

// TestRedirectOutsideTheCloudRefused: a redirect to a host outside the
// configured endpoint's registrable domain is not followed: the call fails
// with ErrRedirect and a *TokenHostError naming the host, and that host
// never receives a request.
func TestRedirectOutsideTheCloudRefused(t *testing.T) {
	const outside = "outlook.example.net"
	e := newEnv(t, exchangetest.Config{Host: exoHost, RegionalHost: outside}, nil)
	e.exo.Add(seed()...)
	_, err := e.sink.Find(ctx(t), &directory.Entry{DN: "cn=alice", Mail: "alice@contoso.com"})
	t.Logf("Find: %v", err)
	var he *azauth.TokenHostError
	if !errors.Is(err, exchange.ErrRedirect) || !errors.As(err, &he) || he.Via != "redirect" || !strings.Contains(err.Error(), outside) {
		t.Fatalf("Find: %v, want ErrRedirect with a *TokenHostError naming %s", err, outside)
	}
	for _, q := range e.exo.Log() {
		if strings.HasPrefix(q.Host, outside) {
			t.Errorf("%s received %s %s (token %v)", outside, q.Method, q.Cmdlet, q.Token)
		}
	}
	if n := e.exo.Requests(""); n != 1 {
		t.Errorf("%d requests, want 1 (the refusal is not retried)", n)
	}
}

// TestNextLinkInsideTheCloudFollowed: an @odata.nextLink naming another
// host of the same cloud is followed; one naming a host outside it is
// refused before anything is sent there.
func TestNextLinkInsideTheCloudFollowed(t *testing.T) {
	for _, tc := range []struct {
		host string
		ok   bool
	}{{regionalHost, true}, {"outlook.example.org", false}} {
		t.Run(tc.host, func(t *testing.T) {
			e := newEnv(t, exchangetest.Config{Host: exoHost, NextLinkHost: tc.host}, func(c *exchange.Config) { c.PageSize = 2 })
			e.exo.Add(seed()...)
			_, err := e.sink.Find(ctx(t), &directory.Entry{DN: "cn=alice", Mail: "alice@contoso.com"})
			t.Logf("Find: %v", err)
			if tc.ok {
				if err != nil {
					t.Fatalf("Find: %v", err)
				}
				return
			}
			var he *azauth.TokenHostError
			if !errors.As(err, &he) || he.Via != "@odata.nextLink" || !strings.Contains(err.Error(), tc.host) {
				t.Fatalf("Find: %v, want a *TokenHostError naming %s", err, tc.host)
			}
			for _, q := range e.exo.Log() {
				if strings.HasPrefix(q.Host, tc.host) {
					t.Errorf("%s received a request", tc.host)
				}
			}
		})
	}
}
