package ldapsource

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigYAML(t *testing.T) {
	b, err := os.ReadFile("testdata/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Source struct {
			LDAP Config `yaml:"ldap"`
		} `yaml:"source"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	c := doc.Source.LDAP
	if c.URL != "ldaps://dc1.example.com" || c.CAFile != "ca.pem" || c.Bind.Method != "simple" ||
		c.Bind.User != "svc-smime@example.com" || c.Bind.PasswordEnv != "SMIMESYNC_LDAP_PASSWORD" ||
		fmt.Sprint(c.BaseDN) != "[DC=example,DC=com]" || c.Filter != "(&(objectCategory=person)(objectClass=user)(mail=*))" ||
		c.Delta != "dirsync" || fmt.Sprint(c.URLs) != "[ldaps://dc2.example.com]" || fmt.Sprint(c.ExcludeOU) != "[OU=Disabled,DC=example,DC=com]" ||
		c.Timeout != 90*time.Second || c.PageSize != 500 || c.Prune.dryRun() || c.Prune.BackupDir != "/var/backups/smimesync" {
		t.Errorf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	var bad struct {
		Source struct {
			LDAP Config `yaml:"ldap"`
		} `yaml:"source"`
	}
	if err := yaml.Unmarshal([]byte("source:\n  ldap:\n    bind: {password: secret}\n"), &bad); err != nil {
		t.Fatal(err)
	}
	if bad.Source.LDAP.Bind.Password != "" {
		t.Error("a password was read from the configuration file")
	}
}

func TestValidate(t *testing.T) {
	no := false
	ok := Config{URL: "ldaps://dc.example.com", Bind: Bind{User: "u", PasswordEnv: "X"}}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"anonymous", func(c *Config) { c.Bind = Bind{} }, ""},
		{"kerberos ccache", func(c *Config) { c.Bind = Bind{Method: "kerberos"} }, ""},
		{"kerberos keytab", func(c *Config) { c.Bind = Bind{Method: "Kerberos", User: "svc", Keytab: "svc.keytab"} }, ""},
		{"no url", func(c *Config) { c.URL = "" }, "at least one LDAP URL"},
		{"bad scheme", func(c *Config) { c.URL = "http://dc" }, "scheme must be ldap or ldaps"},
		{"no host", func(c *Config) { c.URL = "ldap://" }, "no host"},
		{"bad failover url", func(c *Config) { c.URLs = StringList{"ldapi:///x"} }, "scheme"},
		{"bad filter", func(c *Config) { c.Filter = "(mail=*" }, "filter"},
		{"bad base", func(c *Config) { c.BaseDN = StringList{"not a dn"} }, "base_dn"},
		{"bad exclude", func(c *Config) { c.ExcludeOU = StringList{"=x"} }, "exclude_ou"},
		{"bad server", func(c *Config) { c.Server = "novell" }, "server"},
		{"bad delta", func(c *Config) { c.Delta = "changelog" }, "delta"},
		{"dirsync on openldap", func(c *Config) { c.Server, c.Delta = "openldap", "dirsync" }, "needs Active Directory"},
		{"groups with delta", func(c *Config) { c.Groups, c.Delta = StringList{"CN=G,DC=x"}, "usn" }, "group membership"},
		{"negative page", func(c *Config) { c.PageSize = -1 }, "page_size"},
		{"simple without user", func(c *Config) { c.Bind = Bind{Method: "simple", PasswordEnv: "X"} }, "user is required"},
		{"simple without secret", func(c *Config) { c.Bind = Bind{User: "u"} }, "password_env or password_file"},
		{"two secrets", func(c *Config) { c.Bind.PasswordFile = "f" }, "only one of"},
		{"keytab and password", func(c *Config) { c.Bind = Bind{Method: "kerberos", User: "u", Keytab: "k", Password: "p"} }, "not both"},
		{"anonymous with user", func(c *Config) { c.Bind.Method = "anonymous" }, "takes no user"},
		{"sspi off windows", func(c *Config) { c.Bind = Bind{Method: "sspi"} }, "Windows only"},
		{"unknown bind", func(c *Config) { c.Bind.Method = "digest" }, "bind method"},
		{"prune without backup", func(c *Config) { c.Prune.DryRun = &no }, "backup_dir"},
		{"custom id with delta", func(c *Config) { c.IDAttribute, c.Delta = "employeeID", "dirsync" }, "id_attribute"},
		{"native id with delta", func(c *Config) { c.IDAttribute, c.Delta = "objectGUID", "dirsync" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrConfig) {
				t.Errorf("Validate = %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestPassword(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pw")
	if err := os.WriteFile(f, []byte("s3cret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LDAPSOURCE_TEST_PW", "from-env")
	for _, tc := range []struct {
		b    Bind
		want string
		err  bool
	}{
		{Bind{Password: "direct"}, "direct", false},
		{Bind{PasswordEnv: "LDAPSOURCE_TEST_PW"}, "from-env", false},
		{Bind{PasswordEnv: "LDAPSOURCE_TEST_UNSET"}, "", true},
		{Bind{PasswordFile: f}, "s3cret", false},
		{Bind{PasswordFile: filepath.Join(dir, "missing")}, "", true},
		{Bind{}, "", false},
	} {
		got, err := tc.b.password()
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%+v: %q, %v", tc.b, got, err)
		}
	}
}
