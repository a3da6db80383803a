package main

import (
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
)

// TestMain makes the process trust httptest's TLS certificate, which every
// emulator serves, before anything reads the system roots: the example
// binary builds its own HTTP clients, as it does in production.
func TestMain(m *testing.M) {
	srv := httptest.NewTLSServer(nil)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	srv.Close()
	dir, err := os.MkdirTemp("", "smimesync-ca-")
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, ca, 0o600); err != nil {
		panic(err)
	}
	os.Setenv("SSL_CERT_FILE", path)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	testTenant = "00000000-0000-4000-8000-00000000c0de"
	testClient = "11111111-1111-4111-8111-111111111111"
	testOrg    = "contoso.onmicrosoft.com"
)

// exchangeTenant starts the token and Exchange emulators with the users of
// testdata/users.ldif as recipients (bob synced from on premises), and
// returns a configuration that points the binary at them.
func exchangeTenant(t *testing.T) (*exchangetest.Server, *azauthtest.Server, string) {
	t.Helper()
	tokens := azauthtest.NewServer()
	t.Cleanup(tokens.Close)
	tokens.AddSecretApp(testTenant, testClient, "s3cret")
	exo := exchangetest.NewServer(exchangetest.Config{Tokens: tokens, TenantID: testTenant, Organization: testOrg})
	t.Cleanup(exo.Close)
	exo.Add(
		exchangetest.Recipient{Guid: "e0000000-0000-4000-8000-000000000001", PrimarySmtpAddress: "alice@smime.example"},
		exchangetest.Recipient{Guid: "e0000000-0000-4000-8000-000000000002", PrimarySmtpAddress: "bob@smime.example", IsDirSynced: true},
	)
	t.Setenv("SMIMESYNC_TEST_SECRET", "s3cret")
	cfg := writeConfig(t, "source: {ldif: {path: users.ldif}}\nstate: {path: state.json}\n"+exchangeSinkYAML(tokens, exo))
	return exo, tokens, cfg
}

// exchangeSinkYAML is a sink section pointing at the emulators, signing in
// with the secret in $SMIMESYNC_TEST_SECRET; more keys of the exchange
// sink may follow it, indented by four spaces.
func exchangeSinkYAML(tokens *azauthtest.Server, exo *exchangetest.Server) string {
	return fmt.Sprintf(`sink:
  exchange:
    tenant_id: %s
    organization: %s
    client_id: %s
    auth: {method: client_secret, secret_env: SMIMESYNC_TEST_SECRET}
    endpoints: {login: %q, exchange: %q}
`, testTenant, testOrg, testClient, tokens.URL, exo.URL)
}

func TestExchangeEndToEnd(t *testing.T) {
	exo, _, cfg := exchangeTenant(t)
	code, stdout, stderr := runCLI(t, "plan", "--config", cfg)
	if code != exitOK {
		t.Fatalf("plan exit %d: %s", code, stderr)
	}
	for _, re := range []string{
		`alice@smime.example +add +2 +0`,
		`bob@smime.example +skip +0 +1 +directory-synced`,
		`(?m)^not writable: bob@smime.example .*directory-synced`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("plan output does not match %q:\n%s", re, stdout)
		}
	}
	code, stdout, stderr = runCLI(t, "sync", "--config", cfg)
	if code != exitOK {
		t.Fatalf("sync exit %d: %s\n%s", code, stdout, stderr)
	}
	alice, _ := exo.Recipient("alice@smime.example")
	if len(alice.UserCertificate) != 1 || len(alice.UserSMimeCertificate) != 1 {
		t.Errorf("alice carries %d certificates and %d blobs, want 1 and 1", len(alice.UserCertificate), len(alice.UserSMimeCertificate))
	}
	if n := exo.Writes("bob@smime.example"); n != 0 {
		t.Errorf("the synced recipient was written %d times", n)
	}
	// Again: alice is unchanged (on her memo, which the state's record of
	// the write backs, not on the undecodable read-back), so only counted.
	code, stdout, _ = runCLI(t, "sync", "--config", cfg)
	if code != exitOK || !strings.Contains(stdout, "2 entries: 0 add, 0 replace, 0 remove, 1 unchanged, 1 skipped") {
		t.Errorf("second sync exit %d:\n%s", code, stdout)
	}
	if n := exo.Writes("alice@smime.example"); n != 1 {
		t.Errorf("alice written %d times, want 1", n)
	}
}

func TestGraphNeedsBuildTag(t *testing.T) {
	if graphBuilt {
		t.Skip("built with -tags graph")
	}
	_, _, cfg := exchangeTenant(t)
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, append(b, []byte("  graph: {certificate_user_ids: {format: issuer_serial}}\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "plan", "--config", cfg)
	if code != exitUsage || !regexp.MustCompile(`built without Microsoft Graph support; build it with: go build -tags graph`).MatchString(stderr) {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
