package graph_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/graph"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
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

// TestNextLinkToOtherHostGetsNoToken: a users page whose @odata.nextLink
// names another host (another loopback port: kiota's allowed hosts compare
// host names only) is not followed. The listing fails with an error naming
// that host, and the other host receives nothing.
func TestNextLinkToOtherHostGetsNoToken(t *testing.T) {
	other := newOtherHost(t)
	var users []graphtest.User
	for i := range 5 {
		users = append(users, graphtest.User{ID: fmt.Sprintf("u%d", i), UserPrincipalName: fmt.Sprintf("u%d@contoso.com", i)})
	}
	e := newEnv(t, users, func(c *graphtest.Config) { c.NextLinkBase = other.URL }, func(c *graph.Config) { c.PageSize = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := e.sink.Find(ctx, &directory.Entry{DN: "cn=u4", UserPrincipalName: "u4@contoso.com"})
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
}

// TestGraphEndpointSchemeChecked: New refuses a plain-http Graph endpoint
// that is not loopback, naming the field; https and loopback http pass.
func TestGraphEndpointSchemeChecked(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://graph.microsoft.com", false},
		{"http://192.0.2.1:8080", false},
		{"https://graph.microsoft.com", true},
		{"https://graph.example.com:8443/", true},
		{"http://127.0.0.1:8080", true},
	} {
		_, err := graph.New(graph.Config{Credential: fakeCred{}, Endpoints: azauth.Endpoints{Graph: tc.url}})
		var ce *graph.ConfigError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v, want accepted", tc.url, err)
		case !tc.ok && (!errors.As(err, &ce) || ce.Field != "endpoints.graph" || !errors.Is(err, graph.ErrConfig)):
			t.Errorf("%s: %v, want a *ConfigError for endpoints.graph", tc.url, err)
		}
	}
}
