package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// TestLDAPErrorsSayWhatHappened: each way an admin's first LDAP
// configuration goes wrong, against the real Samba DC, ends in one error
// that says what happened and, where there is one, what to change. A
// refused bind is not "no directory server reachable"; a refused
// connection is not about credentials; a mistyped base DN is not told to
// turn delta off; ldaps:// on the StartTLS port and an unknown CA get a
// hint.
func TestLDAPErrorsSayWhatHappened(t *testing.T) {
	srv := ldaptest.Samba(t)
	ou := srv.NewOU(t)
	other, err := ldaptest.NewCA("some other CA")
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := other.WriteServerTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	plainHost := strings.TrimPrefix(srv.URL, "ldap://")
	if !strings.Contains(plainHost, ":") {
		plainHost += ":389"
	}

	t.Setenv("SMIMESYNC_TEST_LDAP_PASSWORD", srv.AdminPassword)
	t.Setenv("SMIMESYNC_TEST_LDAP_WRONG", "not the password")
	for _, tc := range []struct {
		name             string
		url, ca, pwEnv   string
		base             string
		code             int
		says, doesNotSay []string
	}{
		{"wrong password", srv.LDAPSURL, srv.CAFile, "SMIMESYNC_TEST_LDAP_WRONG", ou, exitRuntime,
			[]string{"refused the bind", "result 49", "52e", "password"}, []string{"no directory server reachable"}},
		{"connection refused", fmt.Sprintf("ldaps://127.0.0.1:%d", closedPort), srv.CAFile, "SMIMESYNC_TEST_LDAP_PASSWORD", ou, exitRuntime,
			[]string{"connection refused", "no directory server reachable"}, []string{"not authorized", "bind"}},
		{"base DN typo", srv.LDAPSURL, srv.CAFile, "SMIMESYNC_TEST_LDAP_PASSWORD", "OU=Nosuch," + ou, exitUsage,
			[]string{"base_dn", "does not exist"}, []string{"delta none"}},
		{"ldaps on the StartTLS port", "ldaps://" + plainHost, srv.CAFile, "SMIMESYNC_TEST_LDAP_PASSWORD", ou, exitRuntime,
			[]string{"not TLS", "ldap://", "636"}, []string{"not authorized"}},
		{"unknown CA", srv.LDAPSURL, otherCA, "SMIMESYNC_TEST_LDAP_PASSWORD", ou, exitRuntime,
			[]string{"unknown authority", "ca_file"}, []string{"not authorized"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "smimesync.yaml")
			conf := fmt.Sprintf(`source:
  ldap:
    url: %s
    ca_file: %s
    bind: {method: simple, user: %q, password_env: %s}
    base_dn: [%q]
    retries: 0
sink:  {file: {path: published.json}}
state: {path: state.json}
`, tc.url, tc.ca, srv.AdminDN, tc.pwEnv, tc.base)
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCLI(t, "plan", "--config", cfg)
			t.Logf("exit %d: %s", code, stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			low := strings.ToLower(stdout + stderr)
			for _, s := range tc.says {
				if !strings.Contains(low, strings.ToLower(s)) {
					t.Errorf("the error does not say %q", s)
				}
			}
			for _, s := range tc.doesNotSay {
				if strings.Contains(low, strings.ToLower(s)) {
					t.Errorf("the error says %q", s)
				}
			}
		})
	}
}
