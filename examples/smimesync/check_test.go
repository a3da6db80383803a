package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/check"
)

// checkTenant is exchangeTenant with an emulator that requires
// Exchange.ManageAsApp in the token, as the service does.
func checkTenant(t *testing.T, ecfg exchangetest.Config) (*exchangetest.Server, *azauthtest.Server, string) {
	t.Helper()
	tokens := azauthtest.NewServer()
	t.Cleanup(tokens.Close)
	tokens.AddSecretApp(testTenant, testClient, "s3cret")
	ecfg.Tokens, ecfg.TenantID, ecfg.Organization = tokens, testTenant, testOrg
	ecfg.RequireRole = "Exchange.ManageAsApp"
	exo := exchangetest.NewServer(ecfg)
	t.Cleanup(exo.Close)
	exo.Add(
		exchangetest.Recipient{Guid: "e0000000-0000-4000-8000-000000000001", PrimarySmtpAddress: "alice@smime.example"},
		exchangetest.Recipient{Guid: "e0000000-0000-4000-8000-000000000002", PrimarySmtpAddress: "bob@smime.example", IsDirSynced: true},
	)
	t.Setenv("SMIMESYNC_TEST_SECRET", "s3cret")
	cfg := writeConfig(t, "source: {ldif: {path: users.ldif}}\nstate: {path: state.json}\n"+exchangeSinkYAML(tokens, exo))
	return exo, tokens, cfg
}

// TestCheckAppWithoutPermissions: an app granted nothing gets its token,
// but check names the missing Exchange.ManageAsApp with the fix, the read
// is refused, and check exits 1.
func TestCheckAppWithoutPermissions(t *testing.T) {
	exo, _, cfg := checkTenant(t, exchangetest.Config{})
	code, stdout, stderr := runCLI(t, "check", "--config", cfg)
	t.Logf("check, app without permissions (exit %d):\n%s", code, stdout)
	if code != exitRuntime {
		t.Errorf("exit %d, want %d; stderr: %s", code, exitRuntime, stderr)
	}
	for _, re := range []string{
		`(?m)^Configuration and state\n  ✓ configuration: .*smimesync.yaml loads\n  ✓ state folder .*: writable\n  ✓ state lock .*state\.db: free`,
		`(?m)^Directory\n  ✓ LDIF .*users.ldif: parses, 2 entries$`,
		`(?m)^Sink exchange\n  ✓ token: for https://127.0.0.1:\d+, app ` + testClient + ` in tenant ` + testTenant + `$`,
		`(?m)^  ✗ permissions: missing Exchange.ManageAsApp \(the token's roles claim, read without verifying it, holds: none\)\n      fix: .*Office 365 Exchange Online > Application permissions > Exchange.ManageAsApp.*Grant admin consent`,
		`(?m)^  ✗ read: Get-Recipient -ResultSize 1: .*401.*\n      fix: .*Exchange Recipient Administrator`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("output does not match %q", re)
		}
	}
	if !strings.Contains(stderr, "checks failed") {
		t.Errorf("stderr: %s", stderr)
	}
	if n := exo.Writes("alice@smime.example"); n != 0 {
		t.Errorf("check wrote %d times", n)
	}
}

// TestCheckGoodApp: granted Exchange.ManageAsApp, everything is ✓ and
// check exits 0; --json says the same; nothing is written, and the state
// is not created.
func TestCheckGoodApp(t *testing.T) {
	exo, tokens, cfg := checkTenant(t, exchangetest.Config{})
	tokens.GrantRoles(testTenant, testClient, exo.URL, "Exchange.ManageAsApp")
	code, stdout, stderr := runCLI(t, "check", "--config", cfg)
	t.Logf("check, good app (exit %d):\n%s", code, stdout)
	if code != exitOK || strings.Contains(stdout, "✗") {
		t.Errorf("exit %d, want 0 with no ✗; stderr: %s", code, stderr)
	}
	for _, re := range []string{
		`(?m)^  ✓ permissions: Exchange.ManageAsApp granted \(the token's roles claim, read without verifying it: Exchange.ManageAsApp\)$`,
		`(?m)^  ✓ read: Get-Recipient -ResultSize 1 answers$`,
		`(?m)^  ✓ regional redirect: none: https://127.0.0.1:\d+ serves the tenant$`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("output does not match %q", re)
		}
	}
	code, stdout, _ = runCLI(t, "check", "--config", cfg, "--json")
	var doc check.Report
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || code != exitOK || !doc.OK || len(doc.Checks) < 7 {
		t.Errorf("--json: exit %d, %v, %+v", code, err, doc)
	}
	if n := exo.Requests("Set-Mailbox"); n != 0 {
		t.Errorf("check sent %d writes", n)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "state.db")); !os.IsNotExist(err) {
		t.Errorf("check created the state: %v", err)
	}
}

// TestCheckStateLocked: a state another process holds is ✗, with the fix.
func TestCheckStateLocked(t *testing.T) {
	cfg := writeConfig(t, basicConfig)
	unlock, err := (&smimesync.BoltState{Path: filepath.Join(filepath.Dir(cfg), "state.db")}).Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	code, stdout, _ := runCLI(t, "check", "--config", cfg)
	if code != exitRuntime || !regexp.MustCompile(`(?m)^  ✗ state lock .*locked by.*\n      fix: another smimesync`).MatchString(stdout) {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
}

// TestCheckConfigError: a configuration that does not load exits 2, as
// every command's does.
func TestCheckConfigError(t *testing.T) {
	cfg := writeConfig(t, basicConfig+"unknown_key: 1\n")
	if code, _, stderr := runCLI(t, "check", "--config", cfg); code != exitUsage {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// TestCheckPolicyFiles: a policy PEM file that does not parse is ✗.
func TestCheckPolicyFiles(t *testing.T) {
	cfg := writeConfig(t, basicConfig)
	dir := filepath.Dir(cfg)
	if err := os.WriteFile(filepath.Join(dir, "roots.pem"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfg)
	conf := strings.Replace(string(b), "policy: {max_values: 15}", "policy: {max_values: 15, roots: [roots.pem, ../../../../testdata/alice.crt]}", 1)
	abs, _ := filepath.Abs("testdata/alice.crt")
	conf = strings.Replace(conf, "../../../../testdata/alice.crt", abs, 1)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := runCLI(t, "check", "--config", cfg)
	if code != exitRuntime || !regexp.MustCompile(`(?m)^  ✗ policy.roots\[0\] roots.pem: .*holds no certificate\n      fix: `).MatchString(stdout) ||
		!regexp.MustCompile(`(?m)^  ✓ policy.roots\[1\] .*alice.crt: 1 certificate\(s\)`).MatchString(stdout) {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
}

// TestCheckProbe: --probe writes the recipient's certificates back
// unchanged and reads them back; a recipient whose certificates the
// service does not return is not written.
func TestCheckProbe(t *testing.T) {
	exo, tokens, cfg := checkTenant(t, exchangetest.Config{})
	tokens.GrantRoles(testTenant, testClient, exo.URL, "Exchange.ManageAsApp")
	if code, stdout, stderr := runCLI(t, "sync", "--config", cfg); code != exitOK {
		t.Fatalf("sync exit %d:\n%s\n%s", code, stdout, stderr)
	}
	before, _ := exo.Recipient("alice@smime.example")
	writes := exo.Writes("alice@smime.example")
	code, stdout, stderr := runCLI(t, "check", "--config", cfg, "--probe", "alice@smime.example")
	t.Logf("check --probe (exit %d):\n%s", code, stdout)
	if code != exitOK || !regexp.MustCompile(`(?m)^Probe \(writes\)\n  ✓ round trip alice@smime.example: 2 value\(s\) written back unchanged and read back identical: the byte encoding round-trips$`).MatchString(stdout) {
		t.Errorf("exit %d: %s", code, stderr)
	}
	after, _ := exo.Recipient("alice@smime.example")
	if exo.Writes("alice@smime.example") != writes+1 || !sameValues(before.UserCertificate, after.UserCertificate) || !sameValues(before.UserSMimeCertificate, after.UserSMimeCertificate) {
		t.Error("the probe did not write exactly once, unchanged")
	}
	// bob is directory-synced: not written.
	code, stdout, _ = runCLI(t, "check", "--config", cfg, "--probe", "bob@smime.example")
	if code != exitRuntime || !regexp.MustCompile(`(?m)^  ✗ round trip bob@smime.example: nothing written: .*directory-synced`).MatchString(stdout) || exo.Writes("bob@smime.example") != 0 {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
}

// TestCheckProbeUnreadable: when the service renders certificates as
// "System.Byte[]" everywhere, the probe says so and writes nothing.
func TestCheckProbeUnreadable(t *testing.T) {
	exo, tokens, cfg := checkTenant(t, exchangetest.Config{CLIXML: exchangetest.CLIXMLPlaceholder, EntityPlaceholder: true})
	tokens.GrantRoles(testTenant, testClient, exo.URL, "Exchange.ManageAsApp")
	if code, stdout, stderr := runCLI(t, "sync", "--config", cfg); code != exitOK {
		t.Fatalf("sync exit %d:\n%s\n%s", code, stdout, stderr)
	}
	writes := exo.Writes("alice@smime.example")
	code, stdout, _ := runCLI(t, "check", "--config", cfg, "--probe", "alice@smime.example")
	t.Logf("check --probe, unreadable (exit %d):\n%s", code, stdout)
	if code != exitRuntime || !regexp.MustCompile(`(?m)^  ✗ round trip alice@smime.example: nothing written: .*cannot be read, and writing them back unread could clear them`).MatchString(stdout) {
		t.Errorf("exit %d", code)
	}
	if n := exo.Writes("alice@smime.example"); n != writes {
		t.Errorf("the probe wrote %d times", n-writes)
	}
}

func sameValues(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i]) != string(b[i]) {
			return false
		}
	}
	return true
}
