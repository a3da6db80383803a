package azauth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// TestEndpointsHTTPSOnly: an endpoint a token or a secret goes to is https;
// plain http is refused, naming the field, unless the host is loopback
// (the emulators).
func TestEndpointsHTTPSOnly(t *testing.T) {
	for _, tc := range []struct {
		field, url string
		ok         bool
	}{
		{"exchange", "https://outlook.office365.com", true},
		{"exchange", "https://exchange.example.com:8443", true},
		{"exchange", "http://127.0.0.1:8080", true},
		{"exchange", "http://127.5.6.7", true},
		{"exchange", "http://[::1]:8080", true},
		{"exchange", "http://LOCALHOST:8080", true},
		{"exchange", "http://outlook.office365.com", false},
		{"exchange", "http://10.0.0.1:8080", false},
		{"exchange", "http://localhost.example.com", false},
		{"exchange", "http://[::2]", false},
		{"exchange", "ftp://outlook.office365.com", false},
		{"graph", "http://graph.microsoft.com", false},
		{"graph", "https://graph.microsoft.com", true},
		{"login", "http://login.microsoftonline.com", false},
		{"login", "https://login.microsoftonline.com", true},
	} {
		var override azauth.Endpoints
		switch tc.field {
		case "exchange":
			override.Exchange = tc.url
		case "graph":
			override.Graph = tc.url
		case "login":
			override.Login = tc.url
		}
		_, err := azauth.Resolve(azauth.Worldwide, override)
		if tc.ok {
			if err != nil {
				t.Errorf("%s %s: %v, want accepted", tc.field, tc.url, err)
			}
			continue
		}
		var ce *azauth.ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, azauth.ErrConfig) || ce.Field != "endpoints."+tc.field {
			t.Errorf("%s %s: %v, want a *ConfigError for endpoints.%s", tc.field, tc.url, err, tc.field)
		}
	}
}

func TestTokenHostsAllows(t *testing.T) {
	h, err := azauth.NewTokenHosts("https://outlook.office365.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://outlook.office365.com/adminapi/beta/x/InvokeCommand?$skiptoken=1", true},
		{"https://OUTLOOK.office365.com:443/x", true},
		{"http://outlook.office365.com/x", false},
		{"https://outlook.office365.com:8443/x", false},
		{"https://eur.outlook.office365.com/x", false},
		{"https://outlook.office365.com.evil.example/x", false},
		{"https://office365.com/x", false},
		{"/relative", false},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Allows(u); got != tc.ok {
			t.Errorf("Allows(%s) = %v, want %v", tc.url, got, tc.ok)
		}
		if err := h.Check(u, "test"); (err == nil) != tc.ok || err != nil && !errors.Is(err, azauth.ErrTokenHost) {
			t.Errorf("Check(%s) = %v", tc.url, err)
		}
	}
	if _, err := azauth.NewTokenHosts("http://outlook.office365.com"); !errors.Is(err, azauth.ErrConfig) {
		t.Errorf("plain http endpoint: %v, want ErrConfig", err)
	}
}

// recorder is a server standing for "another host": it records the
// Authorization header of every request it receives.
type recorder struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
	hits  int
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits++
		if a := req.Header.Get("Authorization"); a != "" {
			r.auths = append(r.auths, a)
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) seen() (hits int, auths []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits, append([]string(nil), r.auths...)
}

// TestTokenNotRedirected: net/http forwards Authorization on a redirect to
// the same host name on another port; the guarded client does not follow
// the redirect at all, and the other server receives nothing.
func TestTokenNotRedirected(t *testing.T) {
	other := newRecorder(t)
	front := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, other.URL+req.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer front.Close()
	hosts, err := azauth.NewTokenHosts(front.URL)
	if err != nil {
		t.Fatal(err)
	}

	// What net/http alone does (why the guard exists).
	plain := front.Client()
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/x", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer unguarded")
	if resp, err := plain.Do(req); err == nil {
		resp.Body.Close()
	}
	hits0, auths0 := other.seen()
	t.Logf("net/http alone: the other port received %d requests, %d with Authorization", hits0, len(auths0))

	guarded := *front.Client()
	guarded.Transport = hosts.Transport(guarded.Transport)
	guarded.CheckRedirect = hosts.CheckRedirect
	req, _ = http.NewRequest(http.MethodPost, front.URL+"/x", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer guarded")
	resp, err := guarded.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	var he *azauth.TokenHostError
	if !errors.As(err, &he) || he.Via != "redirect" || !strings.Contains(err.Error(), strings.TrimPrefix(other.URL, "https://")) {
		t.Errorf("guarded redirect: %v, want a *TokenHostError naming %s", err, other.URL)
	}
	if hits, auths := other.seen(); hits != hits0 || len(auths) != len(auths0) {
		t.Errorf("the other server saw %d more requests, %d more with Authorization", hits-hits0, len(auths)-len(auths0))
	}
}

// TestTokenTransportGuard: a request carrying Authorization to another
// origin is refused before it leaves; one without it passes.
func TestTokenTransportGuard(t *testing.T) {
	other := newRecorder(t)
	hosts, err := azauth.NewTokenHosts("https://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: hosts.Transport(other.Client().Transport)}
	req, _ := http.NewRequest(http.MethodGet, other.URL, nil)
	req.Header.Set("Authorization", "Bearer x")
	if resp, err := c.Do(req); !errors.Is(err, azauth.ErrTokenHost) {
		if err == nil {
			resp.Body.Close()
		}
		t.Errorf("with Authorization: %v, want ErrTokenHost", err)
	}
	resp, err := c.Get(other.URL)
	if err != nil {
		t.Fatalf("without Authorization: %v", err)
	}
	resp.Body.Close()
	if hits, auths := other.seen(); hits != 1 || len(auths) != 0 {
		t.Errorf("other server: %d requests, Authorization %q; want 1 request and none", hits, auths)
	}
}
