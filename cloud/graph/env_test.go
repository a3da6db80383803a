package graph_test

import (
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/graph"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
)

const (
	tenantID = "9c1d2f7e-0b7a-4e4f-9a51-6f7d3c2b1a00"
	clientID = "11111111-1111-1111-1111-111111111111"
	secret   = "graph-test-secret"
)

// env is a token endpoint, a Graph emulator, and a sink wired to both
// through the real azidentity and msgraph-sdk-go clients.
type env struct {
	tokens *azauthtest.Server
	graph  *graphtest.Server
	sink   *graph.Sink
}

// fastRetry keeps tests quick: millisecond backoffs.
var fastRetry = graph.RetryPolicy{Base: time.Millisecond, Cap: 20 * time.Millisecond, MaxTries: 4, MaxThrottled: 1000}

func newEnv(t testing.TB, users []graphtest.User, gcfg func(*graphtest.Config), scfg func(*graph.Config)) *env {
	t.Helper()
	tokens := azauthtest.NewServer()
	t.Cleanup(tokens.Close)
	tokens.AddSecretApp(tenantID, clientID, secret)
	gc := graphtest.Config{Users: users, Tokens: tokens}
	if gcfg != nil {
		gcfg(&gc)
	}
	g := graphtest.NewServer(gc)
	t.Cleanup(g.Close)
	e := &env{tokens: tokens, graph: g}
	e.sink = e.newSink(t, scfg)
	return e
}

// newSink makes another sink against the same servers (a new process, as
// far as caches go).
func (e *env) newSink(t testing.TB, scfg func(*graph.Config)) *graph.Sink {
	t.Helper()
	ac := azauth.Config{
		TenantID:  tenantID,
		ClientID:  clientID,
		Auth:      azauth.Auth{Method: azauth.ClientSecret, SecretEnv: "GRAPH_TEST_SECRET"},
		Endpoints: azauth.Endpoints{Login: e.tokens.URL, Graph: e.graph.URL},
	}
	cred, err := ac.Credential(azauth.WithHTTPClient(e.tokens.Client()), azauth.WithGetenv(func(k string) string {
		if k == "GRAPH_TEST_SECRET" {
			return secret
		}
		return ""
	}))
	if err != nil {
		t.Fatal(err)
	}
	ep, err := ac.ResolvedEndpoints()
	if err != nil {
		t.Fatal(err)
	}
	c := graph.Config{
		Credential:     cred,
		Endpoints:      ep,
		HTTPClient:     e.graph.Client(),
		Retry:          fastRetry,
		RequestTimeout: 10 * time.Second, // generous: a timed-out attempt is resent, and the machine may be busy
	}
	if scfg != nil {
		scfg(&c)
	}
	s, err := graph.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
