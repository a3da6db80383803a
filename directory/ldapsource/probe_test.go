package ldapsource_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// TestProbeSamba: against the Samba DC, the administrator may DirSync and
// sees tombstones; a plain account is refused DirSync, and the uSNChanged
// fallback works for it.
func TestProbeSamba(t *testing.T) {
	srv := ldaptest.Samba(t)
	ou := srv.NewOU(t)
	reader := ldaptest.UserSpec{Name: fmt.Sprintf("pr%d", time.Now().UnixNano()%1e12), Password: "Reader#Passw0rd1"}
	srv.AddUsers(t, ou, []ldaptest.UserSpec{reader})
	users := makeUsers(t, "probe", 2)
	srv.AddUsers(t, ou, users)
	// A deleted object, so that the domain has a tombstone to see.
	gone := srv.AddUsers(t, ou, makeUsers(t, "probegone", 1))
	srv.Delete(t, gone[0])

	admin, _ := newSource(t, adminConfig(srv, ou))
	p := admin.Probe(context.Background())
	if p.Failed != "" || p.Server != ldapsource.ServerAD || p.TLS != "StartTLS" || p.Entry == "" || p.Delta != ldapsource.DeltaDirSync ||
		p.DirSync != nil || p.USN != nil || !p.Tombstones {
		t.Errorf("admin probe: %+v", p)
	}

	cfg := adminConfig(srv, ou)
	cfg.Bind = ldapsource.Bind{User: srv.BindName(ou, reader), Password: reader.Password}
	plain, _ := newSource(t, cfg)
	p = plain.Probe(context.Background())
	if p.Failed != "" || p.Entry == "" || !ldap.IsErrorWithCode(p.DirSync, ldap.LDAPResultInsufficientAccessRights) || p.USN != nil || p.Tombstones {
		t.Errorf("plain account probe: %+v", p)
	}

	// Each stage's failure is named.
	for _, tc := range []struct {
		name  string
		mod   func(*ldapsource.Config)
		stage string
	}{
		{"bind", func(c *ldapsource.Config) { c.Bind.Password = "wrong" }, ldapsource.StageBind},
		{"tls", func(c *ldapsource.Config) { c.CAFile = "" }, ldapsource.StageTLS},
		{"connect", func(c *ldapsource.Config) { c.URL = "ldap://127.0.0.1:1" }, ldapsource.StageConnect},
		{"scope", func(c *ldapsource.Config) { c.BaseDN = ldapsource.StringList{"OU=nowhere,DC=example,DC=invalid"} }, ldapsource.StageScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := adminConfig(srv, ou)
			tc.mod(&cfg)
			s, _ := newSource(t, cfg)
			p := s.Probe(context.Background())
			if p.Failed != tc.stage || p.Err == nil {
				t.Errorf("Failed %q (%v), want %q", p.Failed, p.Err, tc.stage)
			}
		})
	}
}

// TestProbeSlapd: OpenLDAP lists content sync in its root DSE, and a
// content-sync search is allowed.
func TestProbeSlapd(t *testing.T) {
	srv := ldaptest.Slapd(t)
	ou := srv.NewOU(t)
	srv.AddUsers(t, ou, makeUsers(t, "probe", 1))
	s, _ := newSource(t, adminConfig(srv, ou))
	p := s.Probe(context.Background())
	if p.Failed != "" || p.Server != ldapsource.ServerOpenLDAP || p.Entry == "" || !p.ContentSync ||
		p.Delta != ldapsource.DeltaSyncrepl || p.ContentSyncErr != nil {
		t.Errorf("probe: %+v", p)
	}
}
