package exchange_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory"
)

// otherHost is a server standing for "another host" (another loopback
// port): it records every request and its Authorization header.
type otherHost struct {
	*httptest.Server
	mu    sync.Mutex
	hits  int
	auths []string
}

func newOtherHost(t *testing.T) *otherHost {
	o := &otherHost{}
	o.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.hits++
		if a := r.Header.Get("Authorization"); a != "" {
			o.auths = append(o.auths, a)
		}
		o.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"value":[]}`))
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *otherHost) seen() (int, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits, append([]string(nil), o.auths...)
}

// TestNextLinkToOtherHostGetsNoToken: an answer whose @odata.nextLink
// names another host (here another loopback port) is not followed: the
// page read fails with an error naming that host, and the other host
// receives nothing, least of all the token.
func TestNextLinkToOtherHostGetsNoToken(t *testing.T) {
	other := newOtherHost(t)
	e := newEnv(t, exchangetest.Config{NextLinkBase: other.URL}, func(c *exchange.Config) { c.PageSize = 2 })
	e.exo.Add(seed()...)
	_, err := e.sink.Find(ctx(t), &directory.Entry{DN: "cn=alice", Mail: "alice@contoso.com"})
	if hits, auths := other.seen(); hits != 0 || len(auths) != 0 {
		t.Fatalf("the other host received %d requests, %d with an Authorization header", hits, len(auths))
	}
	var he *azauth.TokenHostError
	if !errors.As(err, &he) || he.Via != "@odata.nextLink" {
		t.Fatalf("Find: %v, want a *TokenHostError for the nextLink", err)
	}
	t.Logf("Find: %v", err)
	if host := strings.TrimPrefix(other.URL, "https://"); !strings.Contains(err.Error(), host) {
		t.Errorf("error %q does not name the refused host %s", err, host)
	}
	if n := e.exo.Requests("Get-Recipient"); n != 1 {
		t.Errorf("Get-Recipient sent %d times, want 1 (the refusal is not retried)", n)
	}
}

// TestRedirectToOtherHostGetsNoToken: an endpoint answering with a
// redirect to another port of the same host name (where net/http would
// forward the Authorization header) is not followed.
func TestRedirectToOtherHostGetsNoToken(t *testing.T) {
	other := newOtherHost(t)
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newEnv(t, exchangetest.Config{}, nil)
			front := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+r.URL.Path, status)
			}))
			defer front.Close()
			sink, err := exchange.New(exchange.Config{
				Config: azauth.Config{
					TenantID:  tenant,
					ClientID:  clientID,
					Endpoints: azauth.Endpoints{Login: e.tokens.URL, Exchange: front.URL},
				},
				Organization: org,
				HTTPClient:   e.tokens.Client(),
				Credential:   staticCred{},
				Retry:        exchange.RetryPolicy{Base: time.Millisecond, Cap: time.Millisecond, MaxTries: 3},
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = sink.Find(ctx(t), &directory.Entry{DN: "cn=alice", Mail: "alice@contoso.com"})
			if !errors.Is(err, azauth.ErrTokenHost) {
				t.Errorf("Find: %v, want ErrTokenHost", err)
			}
			if hits, auths := other.seen(); hits != 0 || len(auths) != 0 {
				t.Errorf("the other host received %d requests, %d with an Authorization header", hits, len(auths))
			}
			if st := sink.Stats(); st.Requests != 1 {
				t.Errorf("%d requests sent, want 1 (the refusal is not retried)", st.Requests)
			}
		})
	}
}

// TestEndpointSchemeChecked: New refuses a plain-http Exchange or login
// endpoint that is not loopback, naming the field, and accepts https and
// loopback http.
func TestEndpointSchemeChecked(t *testing.T) {
	for _, tc := range []struct {
		ep    azauth.Endpoints
		field string
	}{
		{azauth.Endpoints{Exchange: "http://outlook.office365.com"}, "endpoints.exchange"},
		{azauth.Endpoints{Exchange: "http://192.0.2.1:8080"}, "endpoints.exchange"},
		{azauth.Endpoints{Login: "http://login.example.com"}, "endpoints.login"},
		{azauth.Endpoints{Exchange: "https://outlook.office365.com"}, ""},
		{azauth.Endpoints{Exchange: "https://exchange.example.com:8443"}, ""},
		{azauth.Endpoints{Exchange: "http://127.0.0.1:8080"}, ""},
		{azauth.Endpoints{Exchange: "http://[::1]:8080"}, ""},
	} {
		_, err := exchange.New(exchange.Config{
			Config:     azauth.Config{TenantID: tenant, ClientID: clientID, Endpoints: tc.ep},
			Credential: staticCred{},
		})
		var ce *azauth.ConfigError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%+v: %v, want accepted", tc.ep, err)
		case tc.field != "" && (!errors.As(err, &ce) || ce.Field != tc.field):
			t.Errorf("%+v: %v, want a *ConfigError for %s", tc.ep, err, tc.field)
		}
	}
}
