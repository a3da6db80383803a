package ldapsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
	"go.yaml.in/yaml/v3"
)

func newFakeSource(t *testing.T, cfg Config, fc *fakeConn) (*Source, *bytes.Buffer) {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = "ldaps://dc1.example.com"
	}
	if cfg.Bind.User == "" && cfg.Bind.Method == "" {
		cfg.Bind = Bind{User: "svc@example.com", Password: "pw"}
	}
	var buf bytes.Buffer
	s, err := New(cfg, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	s.dial = func(context.Context, string) (conn, error) { return fc, nil }
	return s, &buf
}

func TestAttrName(t *testing.T) {
	for _, tc := range []struct {
		in       string
		name     string
		lo, hi   int
		ranged   bool
		wantsErr bool
	}{
		{in: "userCertificate", name: "userCertificate"},
		{in: "userCertificate;binary", name: "userCertificate"},
		{in: "USERCERTIFICATE;Binary", name: "USERCERTIFICATE"},
		{in: "member;range=0-1499", name: "member", lo: 0, hi: 1499, ranged: true},
		{in: "userCertificate;binary;range=1500-*", name: "userCertificate", lo: 1500, hi: -1, ranged: true},
		{in: "x;RANGE=7-*", name: "x", lo: 7, hi: -1, ranged: true},
		{in: "x;range=7-6", name: "x", lo: 7, hi: 6, ranged: true}, // an empty last slice
		{in: "x;range=a-*", name: "x", wantsErr: true},
		{in: "x;range=5", name: "x", wantsErr: true},
		{in: "x;range=-1-*", name: "x", wantsErr: true},
		{in: "x;range=9-3", name: "x", wantsErr: true},
	} {
		name, lo, hi, ranged, err := attrName(tc.in)
		if (err != nil) != tc.wantsErr || name != tc.name || (err == nil && (lo != tc.lo || hi != tc.hi || ranged != tc.ranged)) {
			t.Errorf("attrName(%q) = %q %d %d %v %v", tc.in, name, lo, hi, ranged, err)
		}
	}
}

// TestRangeSlicesAD follows Active Directory's slicing of a long value
// list (MaxValRange 1,500): the first answer carries
// userCertificate;range=0-1499, the source asks for 1500-* and gets
// 1500-2999, then 3000-* and gets the last slice 3000-*.
func TestRangeSlicesAD(t *testing.T) {
	all := make([][]byte, 3200)
	for i := range all {
		all[i] = []byte(fmt.Sprintf("cert-%04d", i))
	}
	dn := "CN=Many,OU=Staff,DC=example,DC=com"
	guid := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	fc := &fakeConn{}
	fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if r, ok := adRootDSE(req); ok {
			return r, nil
		}
		if req.Scope == ldap.ScopeBaseObject && req.BaseDN == dn {
			switch req.Attributes[0] {
			case "userCertificate;range=1500-*":
				return []fakeResult{{entry: entry(dn, map[string][][]byte{"userCertificate;range=1500-2999": all[1500:3000]})}}, nil
			case "userCertificate;range=3000-*":
				return []fakeResult{{entry: entry(dn, map[string][][]byte{"userCertificate;range=3000-*": all[3000:]})}}, nil
			}
			return nil, fmt.Errorf("unexpected base search for %v", req.Attributes)
		}
		return []fakeResult{
			{referral: "ldap://other.example.com/DC=other,DC=example,DC=com"},
			{entry: entry(dn, map[string][][]byte{
				"objectGUID":                     {guid},
				"MAIL":                           vals("many@example.com"),
				"proxyAddresses":                 vals("SMTP:many@example.com", "smtp:m@example.com"),
				"userCertificate;range=0-1499":   all[:1500],
				"userSMIMECertificate;binary":    vals("blob"),
				"userPrincipalName":              vals("many@example.com"),
				"someOtherAttribute;range=0-*":   vals("ignored"),
				"userCertificate;x-unknown-opt;": nil,
			})},
			pagedDone(""),
		}, nil
	}
	s, logs := newFakeSource(t, Config{Delta: "none", BaseDN: StringList{"OU=Staff,DC=example,DC=com"}}, fc)
	var got []*directory.Entry
	res, err := s.Read(context.Background(), directory.Pass{}, func(e *directory.Entry) error { got = append(got, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !res.Full || res.Cookie != nil {
		t.Errorf("delta none: Full %v, cookie %q", res.Full, res.Cookie)
	}
	if len(got) != 1 {
		t.Fatalf("%d entries", len(got))
	}
	e := got[0]
	if len(e.UserCertificate) != len(all) {
		t.Fatalf("%d values, want %d", len(e.UserCertificate), len(all))
	}
	for i := range all {
		if !bytes.Equal(e.UserCertificate[i], all[i]) {
			t.Fatalf("value %d = %q, want %q", i, e.UserCertificate[i], all[i])
		}
	}
	if e.ID != "04030201-0605-0807-090a-0b0c0d0e0f10" || e.Mail != "many@example.com" || len(e.ProxyAddresses) != 2 ||
		e.UserPrincipalName != "many@example.com" || string(e.UserSMIMECertificate[0]) != "blob" {
		t.Errorf("entry %+v", e)
	}
	if !strings.Contains(logs.String(), "skipping referral") {
		t.Error("referral not logged")
	}
}

func TestRangeErrors(t *testing.T) {
	dn := "CN=X,DC=example,DC=com"
	for name, answer := range map[string][]fakeResult{
		"no slice":    nil,
		"wrong start": {{entry: entry(dn, map[string][][]byte{"userCertificate;range=5-*": vals("a")})}},
		"no progress": {{entry: entry(dn, map[string][][]byte{"userCertificate;range=2-1": nil})}},
		"bad range":   {{entry: entry(dn, map[string][][]byte{"userCertificate;range=x": vals("a")})}},
		"other attr":  {{entry: entry(dn, map[string][][]byte{"mail": vals("a")})}},
	} {
		t.Run(name, func(t *testing.T) {
			fc := &fakeConn{}
			fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
				if r, ok := adRootDSE(req); ok {
					return r, nil
				}
				if req.Scope == ldap.ScopeBaseObject {
					return answer, nil
				}
				return []fakeResult{{entry: entry(dn, map[string][][]byte{"userCertificate;range=0-1": vals("a", "b")})}, pagedDone("")}, nil
			}
			s, _ := newFakeSource(t, Config{Delta: "none"}, fc)
			_, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { return nil })
			var ee *EntryError
			if !errors.As(err, &ee) || ee.DN != dn {
				t.Errorf("err %v, want an EntryError for %s", err, dn)
			}
		})
	}
}

func TestStreamFailures(t *testing.T) {
	dn := "CN=A,DC=example,DC=com"
	one := fakeResult{entry: entry(dn, map[string][][]byte{"mail": vals("a@example.com")})}
	for _, tc := range []struct {
		name  string
		pages func(page int) ([]fakeResult, error)
		want  func(error) bool
	}{
		{"server stops answering", func(int) ([]fakeResult, error) { return []fakeResult{one}, errHang },
			func(err error) bool { return errors.Is(err, ErrTimeout) }},
		{"connection lost silently", func(p int) ([]fakeResult, error) {
			if p == 0 {
				return []fakeResult{one, pagedDone("more")}, nil
			}
			return nil, errVanish
		}, func(err error) bool { return errors.Is(err, ErrConnectionLost) }},
		{"paging control missing on page 2", func(p int) ([]fakeResult, error) {
			if p == 0 {
				return []fakeResult{one, pagedDone("more")}, nil
			}
			return []fakeResult{one}, nil
		}, func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "lacks the paged-results control")
		}},
		{"server error", func(int) ([]fakeResult, error) {
			return nil, ldap.NewError(ldap.LDAPResultBusy, errors.New("busy"))
		}, func(err error) bool { return ldap.IsErrorWithCode(err, ldap.LDAPResultBusy) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := 0
			fc := &fakeConn{}
			fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
				if r, ok := adRootDSE(req); ok {
					return r, nil
				}
				p := page
				page++
				return tc.pages(p)
			}
			s, _ := newFakeSource(t, Config{Delta: "none", Timeout: 50 * time.Millisecond, Retries: 1}, fc)
			res, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { return nil })
			if !tc.want(err) {
				t.Errorf("err = %v", err)
			}
			if res.Cookie != nil || res.Full {
				t.Errorf("a failed pass returned %+v", res)
			}
		})
	}
}

// TestYieldError: the caller's error ends the pass, returned as is.
func TestYieldError(t *testing.T) {
	stop := errors.New("stop")
	fc := &fakeConn{}
	fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if r, ok := adRootDSE(req); ok {
			return r, nil
		}
		return []fakeResult{{entry: entry("CN=A,DC=example,DC=com", nil)}, {entry: entry("CN=B,DC=example,DC=com", nil)}, pagedDone("")}, nil
	}
	s, _ := newFakeSource(t, Config{Delta: "none"}, fc)
	n := 0
	_, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d entries", err, n)
	}
}

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

func TestCookieDecode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" when usable
	}{
		{`{"v":1,"kind":"dirsync","scope":"s","dirsync":"AAE="}`, ""},
		{`{"v":1,"kind":"usn","scope":"s","usn":12}`, ""},
		{`{"v":1,"kind":"syncrepl","scope":"s","syncrepl":[{"base":"dc=x","cookie":"cmlk"}]}`, ""},
		{`not json`, "not an ldapsource cookie"},
		{`{"v":2,"kind":"usn","usn":1}`, "version 2"},
		{`{"v":1,"kind":"dirsync"}`, "without DirSync state"},
		{`{"v":1,"kind":"usn"}`, "without a USN"},
		{`{"v":1,"kind":"syncrepl"}`, "without content-sync state"},
		{`{"v":1,"kind":"changelog"}`, "unknown kind"},
	} {
		_, err := decodeCookie([]byte(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("decodeCookie(%s) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestCookieMismatch: a cookie of another scope, kind or DC, or older than
// FullPassEvery, gives a logged full pass.
func TestCookieMismatch(t *testing.T) {
	fc := &fakeConn{}
	fc.serve = adDeltaServe(func(*ldap.SearchRequest) ([]fakeResult, error) {
		return []fakeResult{pagedDone("")}, nil
	})
	s, logs := newFakeSource(t, Config{FullPassEvery: time.Hour}, fc)
	res, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	good, err := decodeCookie(res.Cookie)
	if err != nil || good.Kind != DeltaDirSync || good.Server != "00000000-0000-0000-0000-000000000000" {
		t.Fatalf("cookie %s: %v", res.Cookie, err)
	}
	for _, tc := range []struct {
		name string
		mod  func(c *cookie)
		why  string
	}{
		{"scope", func(c *cookie) { c.Scope = "other" }, "scope"},
		{"kind", func(c *cookie) { c.Kind, c.Syncrepl = DeltaSyncrepl, []syncCookie{{"x", []byte("y")}} }, "cookie is for syncrepl deltas"},
		{"server", func(c *cookie) { c.Server = "11111111-1111-1111-1111-111111111111" }, "invocationId"},
		{"age", func(c *cookie) { c.Full = c.Full.Add(-2 * time.Hour) }, "older than 1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *good
			tc.mod(&c)
			b, _ := c.encode()
			logs.Reset()
			res, err := s.Read(context.Background(), directory.Pass{Cookie: b}, func(*directory.Entry) error { return nil })
			if err != nil || !res.Full {
				t.Fatalf("Full %v, err %v", res.Full, err)
			}
			if !strings.Contains(logs.String(), "full pass") || !strings.Contains(logs.String(), tc.why) {
				t.Errorf("log does not give the reason %q:\n%s", tc.why, logs)
			}
		})
	}
}

func TestHelpers(t *testing.T) {
	if got := fmt.Sprint(filterAttrs("(&(objectCategory=person)(|(mail=*)(proxyAddresses~=x))(!(department>=5))(memberOf:1.2.840.113556.1.4.1941:=CN=G))")); got != "[objectCategory mail proxyAddresses department memberOf]" {
		t.Errorf("filterAttrs = %s", got)
	}
	for _, tc := range [][3]string{{`CORP\svc`, "", "CORP svc"}, {"svc@corp.example", "", "corp.example svc"}, {"svc", "CORP", "CORP svc"}} {
		d, u := ntlmUser(tc[0], tc[1])
		if d+" "+u != tc[2] {
			t.Errorf("ntlmUser(%q, %q) = %q %q", tc[0], tc[1], d, u)
		}
	}
	s, _ := newFakeSource(t, Config{BaseDN: StringList{"OU=A,DC=x", "ou=b,dc=X", "OU=Deep,OU=A,DC=x"}, ExcludeOU: StringList{"OU=Gone,OU=A,DC=x"}}, &fakeConn{})
	p, err := s.makePlan(&serverInfo{kind: ServerAD, controls: map[string]bool{}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p.baseStrs) != "[OU=A,DC=x ou=b,dc=X]" {
		t.Errorf("bases %v: a base inside another must be dropped", p.baseStrs)
	}
	for dn, want := range map[string]bool{
		"CN=u,OU=A,DC=x": true, "cn=u,ou=a,dc=x": true, "CN=u,OU=B,DC=X": true, "CN=u,OU=Gone,OU=A,DC=x": false,
		"OU=Gone,OU=A,DC=x": false, "CN=u,OU=C,DC=x": false, "not a dn": true,
	} {
		if p.inScope(dn) != want {
			t.Errorf("inScope(%q) = %v", dn, !want)
		}
	}
	if p.delta != DeltaDirSync || p.idAttr != "objectGUID" || p.filter != DefaultFilter(ServerAD) {
		t.Errorf("AD plan: delta %s, id %s, filter %s", p.delta, p.idAttr, p.filter)
	}
	p, _ = s.makePlan(&serverInfo{kind: ServerOpenLDAP, controls: map[string]bool{}})
	if p.delta != DeltaNone || p.idAttr != "entryUUID" {
		t.Errorf("OpenLDAP plan without syncprov: delta %s, id %s", p.delta, p.idAttr)
	}
	p, _ = s.makePlan(&serverInfo{kind: ServerOpenLDAP, controls: map[string]bool{ldap.ControlTypeSyncRequest: true}})
	if p.delta != DeltaSyncrepl {
		t.Errorf("OpenLDAP plan with syncprov: delta %s", p.delta)
	}
	s.cfg.IDAttribute = "employeeID"
	p, _ = s.makePlan(&serverInfo{kind: ServerAD, controls: map[string]bool{}})
	if p.delta != DeltaNone || p.idAttr != "employeeID" {
		t.Errorf("AD plan with a custom ID: delta %s, id %s", p.delta, p.idAttr)
	}
}

// TestPruneFake: the dry run is the default; a real prune backs values up
// before it deletes them, addressing AD entries by objectGUID.
func TestPruneFake(t *testing.T) {
	fc := &fakeConn{}
	fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if r, ok := adRootDSE(req); ok {
			return r, nil
		}
		return nil, nil
	}
	e := &directory.Entry{ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", DN: "CN=A,DC=example,DC=com"}
	s, logs := newFakeSource(t, Config{}, fc)
	if err := s.Prune(context.Background(), e, "userCertificate", vals("v1")); err != nil {
		t.Fatal(err)
	}
	if len(fc.modifies) != 0 || !strings.Contains(logs.String(), "dry run") {
		t.Fatalf("dry run modified the directory or did not log")
	}
	no := false
	dir := filepath.Join(t.TempDir(), "backup")
	s, _ = newFakeSource(t, Config{Prune: PruneConfig{BackupDir: dir, DryRun: &no}}, fc)
	if err := s.Prune(context.Background(), e, "usersmimecertificate", vals("v1", "v2")); err != nil {
		t.Fatal(err)
	}
	if len(fc.modifies) != 1 {
		t.Fatalf("%d modifies", len(fc.modifies))
	}
	m := fc.modifies[0]
	if m.DN != "<GUID=e004253f894fd3119a0c0305e82c3301>" || len(m.Changes) != 1 ||
		m.Changes[0].Modification.Type != "userSMIMECertificate" || len(m.Changes[0].Modification.Vals) != 2 {
		t.Errorf("modify %+v", m)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.userSMIMECertificate"))
	if len(files) != 2 {
		t.Errorf("backups: %v", files)
	}
	fc.modErr = ldap.NewError(ldap.LDAPResultInsufficientAccessRights, errors.New("no"))
	err := s.Prune(context.Background(), e, "userCertificate", vals("v3"))
	var pe *PruneError
	if !errors.As(err, &pe) || pe.DN != e.DN || !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Errorf("err %v", err)
	}
}
