package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
)

// TestPlainHTTPEndpointRefused: an Exchange, login or Graph endpoint over
// plain http to a host that is not loopback is a configuration error
// (exit 2) naming the key, refused before any request is sent.
//
// The plain-http endpoint is http://0.0.0.0:PORT: not a loopback address
// by the rule (so the configuration must be refused), yet one that Linux
// connects to this machine, where a recorder listens. Before the fix the
// token went there in the clear; no test traffic can leave the machine.
func TestPlainHTTPEndpointRefused(t *testing.T) {
	var mu sync.Mutex
	hits := 0
	recorder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		http.Error(w, "recorder", http.StatusTeapot)
	}))
	defer recorder.Close()
	zero := "http://0.0.0.0:" + recorder.URL[strings.LastIndex(recorder.URL, ":")+1:]
	tokens := azauthtest.NewServer()
	t.Cleanup(tokens.Close)
	tokens.AddSecretApp(testTenant, testClient, "s3cret")
	exo := exchangetest.NewServer(exchangetest.Config{Tokens: tokens, TenantID: testTenant, Organization: testOrg})
	t.Cleanup(exo.Close)
	t.Setenv("SMIMESYNC_TEST_SECRET", "s3cret")
	for _, tc := range []struct {
		key                    string
		login, exchange, graph string
	}{
		{"endpoints.exchange", tokens.URL, zero, ""},
		{"endpoints.graph", tokens.URL, exo.URL, zero},
		{"endpoints.login", zero, exo.URL, ""},
	} {
		t.Run(tc.key, func(t *testing.T) {
			mu.Lock()
			hitsBefore, exoBefore := hits, exo.Requests("")
			mu.Unlock()
			cfg := writeConfig(t, fmt.Sprintf(`source: {ldif: {path: users.ldif}}
state: {path: state.json}
sink:
  exchange:
    tenant_id: %s
    organization: %s
    client_id: %s
    auth: {method: client_secret, secret_env: SMIMESYNC_TEST_SECRET}
    endpoints: {login: %q, exchange: %q, graph: %q}
    retry: {base: 1ms, cap: 1ms, max_tries: 1}
`, testTenant, testOrg, testClient, tc.login, tc.exchange, tc.graph))
			for _, cmd := range []string{"plan", "sync"} {
				code, _, stderr := runCLI(t, cmd, "--config", cfg)
				first, _, _ := strings.Cut(stderr, "\n")
				if code != exitUsage || !strings.Contains(first, "sink.exchange") || !strings.Contains(first, tc.key) || !strings.Contains(first, "plain http") {
					t.Errorf("%s: exit %d, first line %q; want exit %d naming sink.exchange, %s and plain http", cmd, code, first, exitUsage, tc.key)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if n, m := hits-hitsBefore, exo.Requests("")-exoBefore; n != 0 || m != 0 {
				t.Errorf("requests were sent: %d to the plain-http endpoint, %d to Exchange", n, m)
			}
		})
	}
}

// TestNextLinkTokenStaysHome: an Exchange answer whose @odata.nextLink
// names another host (another loopback port) does not get the token
// there: the other host receives nothing, the run fails, and nothing is
// written.
func TestNextLinkTokenStaysHome(t *testing.T) {
	var mu sync.Mutex
	var hits, auths int
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		if r.Header.Get("Authorization") != "" {
			auths++
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"value":[]}`))
	}))
	defer other.Close()
	tokens := azauthtest.NewServer()
	t.Cleanup(tokens.Close)
	tokens.AddSecretApp(testTenant, testClient, "s3cret")
	exo := exchangetest.NewServer(exchangetest.Config{Tokens: tokens, TenantID: testTenant, Organization: testOrg, NextLinkBase: other.URL})
	t.Cleanup(exo.Close)
	exo.Add(
		exchangetest.Recipient{Guid: "e0000000-0000-4000-8000-000000000001", PrimarySmtpAddress: "alice@smime.example"},
		exchangetest.Recipient{Guid: "e0000000-0000-4000-8000-000000000002", PrimarySmtpAddress: "bob@smime.example"},
	)
	t.Setenv("SMIMESYNC_TEST_SECRET", "s3cret")
	cfg := writeConfig(t, "source: {ldif: {path: users.ldif}}\nstate: {path: state.json}\n"+
		exchangeSinkYAML(tokens, exo)+"    page_size: 1\n    retry: {base: 1ms, cap: 1ms, max_tries: 2}\n")
	code, stdout, stderr := runCLI(t, "sync", "--config", cfg)
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 || auths != 0 {
		t.Fatalf("the other host received %d requests, %d with an Authorization header", hits, auths)
	}
	host := strings.TrimPrefix(other.URL, "https://")
	if !strings.Contains(stdout+stderr, "refusing to send the token to https://"+host) {
		t.Errorf("exit %d; the output does not name the refused host %s:\n%s\n%s", code, host, stdout, stderr)
	}
	if n := exo.Writes("alice@smime.example"); n != 0 {
		t.Errorf("alice written %d times after a failed lookup", n)
	}
}
