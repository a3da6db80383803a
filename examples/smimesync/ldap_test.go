package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// TestLDAPEndToEnd runs the binary's plan and sync with the LDAP source
// against a real Samba Active Directory domain controller (started by the
// ldaptest harness), to the file sink; then changes a user in AD and syncs
// again, which the DirSync delta carries.
func TestLDAPEndToEnd(t *testing.T) {
	srv := ldaptest.Samba(t)
	ou := srv.NewOU(t)
	users := []ldaptest.UserSpec{{Name: "e2e-alice"}, {Name: "e2e-bob"}, {Name: "e2e-carol"}}
	for i := range users {
		users[i].Mail = users[i].Name + "@" + srv.Realm
		certs, err := ldaptest.UserCerts(users[i].Mail, 2)
		if err != nil {
			t.Fatal(err)
		}
		users[i].UserCertificate = certs
	}
	users[2].UserCertificate = nil // carol has none
	srv.AddUsers(t, ou, users)

	dir := t.TempDir()
	t.Setenv("SMIMESYNC_TEST_LDAP_PASSWORD", srv.AdminPassword)
	cfg := filepath.Join(dir, "smimesync.yaml")
	conf := fmt.Sprintf(`source:
  ldap:
    url: %s
    ca_file: %s
    bind: {method: simple, user: %q, password_env: SMIMESYNC_TEST_LDAP_PASSWORD}
    base_dn: [%q]
    delta: dirsync
sink:  {file: {path: published.json}}
state: {path: state.json}
`, srv.LDAPSURL, srv.CAFile, srv.AdminDN, ou)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, "plan", "--config", cfg)
	if code != exitOK {
		t.Fatalf("plan exit %d:\n%s\n%s", code, stdout, stderr)
	}
	for _, re := range []string{
		`\(full read of the directory, 3 entries\)`,
		`e2e-alice@\S+ +add +2 +0`,
		`e2e-bob@\S+ +add +2 +0`,
		`e2e-carol@\S+ +unchanged +0 +0`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("plan output does not match %q:\n%s", re, stdout)
		}
	}
	if code, stdout, stderr = runCLI(t, "sync", "--config", cfg); code != exitOK {
		t.Fatalf("sync exit %d:\n%s\n%s", code, stdout, stderr)
	}
	checkPublished(t, filepath.Join(dir, "published.json"), map[string][][]byte{
		users[0].Mail: users[0].UserCertificate,
		users[1].Mail: users[1].UserCertificate,
	})

	// Bob renews: one certificate replaced in AD. The next sync is a
	// DirSync delta that sees only him.
	renewed, err := ldaptest.UserCerts(users[1].Mail, 1)
	if err != nil {
		t.Fatal(err)
	}
	bobCerts := [][]byte{users[1].UserCertificate[0], renewed[0]}
	srv.SetCertificates(t, srv.UserDN(ou, users[1]), bobCerts)
	code, stdout, stderr = runCLI(t, "sync", "--config", cfg)
	if code != exitOK {
		t.Fatalf("second sync exit %d:\n%s\n%s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`(?s)^Sync to sink "file"\s+USER.*\n\S*e2e-bob@\S+ +replace +written +2 +0`).MatchString(stdout) ||
		regexp.MustCompile(`e2e-alice`).MatchString(stdout) {
		t.Errorf("the delta should carry bob alone, replaced:\n%s", stdout)
	}
	checkPublished(t, filepath.Join(dir, "published.json"), map[string][][]byte{
		users[0].Mail: users[0].UserCertificate,
		users[1].Mail: bobCerts,
	})
}

// checkPublished compares the file sink's userCertificate values with want,
// byte for byte, ignoring order.
func checkPublished(t *testing.T, path string, want map[string][][]byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Recipients map[string]struct{ UserCertificate [][]byte }
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for addr, certs := range want {
		got := doc.Recipients[lower(addr)].UserCertificate
		if len(got) != len(certs) {
			t.Errorf("%s carries %d certificates, want %d", addr, len(got), len(certs))
			continue
		}
		for _, c := range certs {
			found := false
			for _, g := range got {
				found = found || bytes.Equal(g, c)
			}
			if !found {
				t.Errorf("%s lacks a certificate written to AD", addr)
			}
		}
	}
}

func lower(s string) string { return string(bytes.ToLower([]byte(s))) }
