package ldapsource_test

import (
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// TestPlainSimpleBindWarns: a simple bind over plain LDAP (allow_plain_ldap)
// is logged as a warning, once per source; StartTLS and an anonymous bind
// over plain LDAP are not.
func TestPlainSimpleBindWarns(t *testing.T) {
	slapd := ldaptest.Slapd(t)
	ou := slapd.NewOU(t)
	slapd.AddUsers(t, ou, []ldaptest.UserSpec{{Name: "plainreader", Mail: "plainreader@smimesync.test", Password: "secret3"}})
	const warning = "simple bind over plain LDAP"
	for _, tc := range []struct {
		name string
		cfg  func(c *ldapsource.Config)
		warn bool
	}{
		{"simple/plain", func(c *ldapsource.Config) { c.AllowPlainLDAP = true }, true},
		{"simple/starttls", func(c *ldapsource.Config) {}, false},
		{"anonymous/plain", func(c *ldapsource.Config) {
			c.AllowPlainLDAP = true
			c.Bind = ldapsource.Bind{}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := adminConfig(slapd, ou)
			tc.cfg(&cfg)
			s, logs := newSource(t, cfg)
			for range 2 {
				if got, _ := readAll(t, s, nil); len(got) != 1 {
					t.Fatalf("read %d entries, want 1", len(got))
				}
			}
			n := strings.Count(logs.String(), warning)
			switch {
			case tc.warn && n != 1:
				t.Errorf("%d warnings about %q in two passes, want 1:\n%s", n, warning, logs)
			case !tc.warn && n != 0:
				t.Errorf("warned about %q:\n%s", warning, logs)
			}
			if tc.warn && !strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("not logged as a warning:\n%s", logs)
			}
		})
	}
}
