package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

func ldapCheckConfig(t *testing.T, srv *ldaptest.Server, user, ou string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "smimesync.yaml")
	conf := fmt.Sprintf(`source:
  ldap:
    url: %s
    ca_file: %s
    bind: {method: simple, user: %q, password_env: SMIMESYNC_TEST_LDAP_PASSWORD}
    base_dn: [%q]
sink:  {file: {path: published.json}}
state: {path: state.json}
`, srv.URL, srv.CAFile, user, ou)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestCheckLDAPSamba: against the Samba DC, the administrator gets ✓ for
// every stage and DirSync; a plain account gets the USN fallback with a
// note (still exit 0); a wrong password is ✗ at the bind, with the fix.
func TestCheckLDAPSamba(t *testing.T) {
	srv := ldaptest.Samba(t)
	ou := srv.NewOU(t)
	reader := ldaptest.UserSpec{Name: fmt.Sprintf("ck%d", time.Now().UnixNano()%1e12), Password: "Reader#Passw0rd1", Mail: "checker@" + srv.Realm}
	srv.AddUsers(t, ou, []ldaptest.UserSpec{reader})

	t.Setenv("SMIMESYNC_TEST_LDAP_PASSWORD", srv.AdminPassword)
	code, stdout, stderr := runCLI(t, "check", "--config", ldapCheckConfig(t, srv, srv.AdminDN, ou))
	t.Logf("check, Samba, administrator (exit %d):\n%s", code, stdout)
	if code != exitOK || !regexp.MustCompile(`(?m)^Directory\n  ✓ connect: ldap://\S+\n  ✓ TLS: StartTLS\n  ✓ bind: simple \S+.*\n  ✓ read one entry: CN=ck.*\n  ✓ DirSync: allowed: deltas come by DirSync\n  [✓] tombstones`).MatchString(stdout) {
		t.Errorf("exit %d: %s", code, stderr)
	}

	t.Setenv("SMIMESYNC_TEST_LDAP_PASSWORD", reader.Password)
	code, stdout, stderr = runCLI(t, "check", "--config", ldapCheckConfig(t, srv, srv.BindName(ou, reader), ou))
	t.Logf("check, Samba, plain account (exit %d):\n%s", code, stdout)
	if code != exitOK || !regexp.MustCompile(`(?m)^  ✓ DirSync: refused: the account lacks "Replicating Directory Changes"; the uSNChanged fallback works\n      note: grant`).MatchString(stdout) ||
		!regexp.MustCompile(`(?m)^  ✓ tombstones: not visible to this account.*\n      note: `).MatchString(stdout) {
		t.Errorf("exit %d: %s", code, stderr)
	}

	t.Setenv("SMIMESYNC_TEST_LDAP_PASSWORD", "wrong")
	code, stdout, _ = runCLI(t, "check", "--config", ldapCheckConfig(t, srv, srv.BindName(ou, reader), ou))
	if code != exitRuntime || !regexp.MustCompile(`(?m)^  ✓ TLS: StartTLS\n  ✗ bind as simple .*Invalid Credentials.*\n      fix: check bind.user`).MatchString(stdout) {
		t.Errorf("wrong password: exit %d:\n%s", code, stdout)
	}
}

// TestCheckLDAPSlapd: OpenLDAP with the syncprov overlay offers content
// sync.
func TestCheckLDAPSlapd(t *testing.T) {
	srv := ldaptest.Slapd(t)
	ou := srv.NewOU(t)
	srv.AddUsers(t, ou, []ldaptest.UserSpec{{Name: "checked", Mail: "checked@smimesync.test"}})
	t.Setenv("SMIMESYNC_TEST_LDAP_PASSWORD", srv.AdminPassword)
	code, stdout, stderr := runCLI(t, "check", "--config", ldapCheckConfig(t, srv, srv.AdminDN, ou))
	t.Logf("check, slapd (exit %d):\n%s", code, stdout)
	if code != exitOK || !regexp.MustCompile(`(?m)^  ✓ read one entry: uid=checked,.*\n  ✓ content sync \(RFC 4533\): available: deltas come by content sync$`).MatchString(stdout) {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
