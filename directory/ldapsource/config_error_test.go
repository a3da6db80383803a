package ldapsource

import (
	"errors"
	"io/fs"
	"log/slog"
	"testing"
)

// TestConfigErrorFields: every configuration error names its key, so that
// a program can point at the line of its configuration file.
func TestConfigErrorFields(t *testing.T) {
	no := false
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no url", Config{}, "url"},
		{"bad failover", Config{URL: "ldaps://a", URLs: StringList{"http://b"}}, "urls"},
		{"negative page", Config{URL: "ldaps://a", PageSize: -1}, "page_size"},
		{"no password", Config{URL: "ldaps://a", Bind: Bind{User: "u"}}, "bind.password_env"},
		{"bad base", Config{URL: "ldaps://a", BaseDN: StringList{"nope"}}, "base_dn"},
		{"no backup", Config{URL: "ldaps://a", Prune: PruneConfig{DryRun: &no}}, "prune.backup_dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ce *ConfigError
			err := tc.cfg.Validate()
			if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, ErrConfig) {
				t.Errorf("Validate = %v, want a *ConfigError for %s", err, tc.field)
			}
		})
	}
}

// TestPasswordConfigErrors: a password variable that is not set, or a
// password file that cannot be read, is a configuration error, found at
// bind time.
func TestPasswordConfigErrors(t *testing.T) {
	var ce *ConfigError
	_, err := (&Bind{PasswordEnv: "LDAPSOURCE_TEST_SURELY_UNSET"}).password()
	if !errors.As(err, &ce) || ce.Field != "bind.password_env" {
		t.Errorf("unset variable: %v, want a *ConfigError for bind.password_env", err)
	}
	_, err = (&Bind{PasswordFile: t.TempDir() + "/missing"}).password()
	if !errors.As(err, &ce) || ce.Field != "bind.password_file" || !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrConfig) {
		t.Errorf("missing file: %v, want a *ConfigError for bind.password_file wrapping fs.ErrNotExist", err)
	}
}

// TestBaseOutsideNamingContexts: a base DN in none of the server's naming
// contexts is a configuration error naming base_dn; one inside, or a
// server that names no context, is not.
func TestBaseOutsideNamingContexts(t *testing.T) {
	info := &serverInfo{kind: ServerAD, defaultNC: "DC=corp,DC=example", namingCtx: []string{"DC=corp,DC=example", "CN=Configuration,DC=corp,DC=example"}, url: "ldaps://dc1"}
	for _, tc := range []struct {
		base string
		info *serverInfo
		ok   bool
	}{
		{"OU=Staff,DC=corp,DC=example", info, true},
		{"dc=CORP,dc=example", info, true},
		{"OU=Staff,DC=other,DC=example", info, false},
		{"DC=example", info, false},
		{"OU=Staff,DC=other,DC=example", &serverInfo{kind: ServerOpenLDAP, url: "ldap://x"}, true},
	} {
		s := &Source{cfg: Config{URL: "ldaps://dc1", BaseDN: StringList{tc.base}}.withDefaults(), log: slog.New(slog.DiscardHandler)}
		_, err := s.makePlan(tc.info)
		var ce *ConfigError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.base, err)
		case !tc.ok && (!errors.As(err, &ce) || ce.Field != "base_dn"):
			t.Errorf("%s: %v, want a *ConfigError for base_dn", tc.base, err)
		}
	}
}
