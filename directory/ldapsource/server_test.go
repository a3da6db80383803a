package ldapsource_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// TestRangeRetrieval reads a value list one over Active Directory's
// MaxValRange (1,500). Samba 4.17 and slapd 2.5 return it whole (measured
// up to 5,000 values: neither slices unasked); with RangeSize the source
// asks Samba for slices, and follows them to the last.
func TestRangeRetrieval(t *testing.T) {
	const n = 1501
	for _, server := range servers() {
		t.Run(server.name, func(t *testing.T) {
			srv := server.start(t)
			ou := srv.NewOU(t)
			certs, err := ldaptest.UserCerts("many@smimesync.test", n)
			if err != nil {
				t.Fatal(err)
			}
			srv.AddUsers(t, ou, []ldaptest.UserSpec{{Name: "many", Mail: "many@smimesync.test", UserCertificate: certs}})
			sizes := []int{0}
			if srv.Kind == ldaptest.KindSamba {
				sizes = append(sizes, 1500, 400)
			}
			for _, size := range sizes {
				cfg := adminConfig(srv, ou)
				cfg.RangeSize = size
				s, logs := newSource(t, cfg)
				got, _ := readAll(t, s, nil)
				if len(got) != 1 {
					t.Fatalf("range_size %d: %d entries", size, len(got))
				}
				for _, e := range got {
					if !sameValues(e.UserCertificate, certs) {
						t.Errorf("range_size %d: %d values read, want the %d written", size, len(e.UserCertificate), n)
					}
				}
				slices := strings.Count(logs.String(), "read a value slice")
				t.Logf("%s, range_size %d: the server sent %d more slice(s)", srv.Kind, size, slices)
				if want := map[int]int{1500: 1, 400: 3}[size]; size > 0 && slices != want {
					t.Errorf("range_size %d: %d more slices read, want %d", size, slices, want)
				}
			}
		})
	}
}

// TestWrongCA: a server certificate from another CA fails with a clear
// error, at once (a certificate failure is not retried).
func TestWrongCA(t *testing.T) {
	other, err := ldaptest.NewCA("some other CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, err := other.WriteServerTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, server := range servers() {
		srv := server.start(t)
		for _, url := range []string{srv.URL, srv.LDAPSURL} {
			t.Run(server.name+"/"+strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
				cfg := adminConfig(srv, srv.BaseDN)
				cfg.URL, cfg.CAFile = url, caFile
				s, logs := newSource(t, cfg)
				_, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { return nil })
				if err == nil {
					t.Fatal("Read succeeded with the wrong CA")
				}
				var ua x509.UnknownAuthorityError
				if !errors.As(err, &ua) {
					t.Errorf("error does not wrap x509.UnknownAuthorityError: %v", err)
				}
				var ce *ldapsource.ConnectError
				if !errors.As(err, &ce) {
					t.Errorf("error is not a *ConnectError: %v", err)
				}
				if !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
					t.Errorf("error does not name the URL and the cause: %v", err)
				}
				if strings.Contains(logs.String(), "retrying") {
					t.Error("a certificate failure was retried")
				}
				t.Logf("error: %v", err)
			})
		}
	}
}

// TestKilledMidPage: slapd killed in the middle of a paged read gives a
// clean network error and no cookie.
func TestKilledMidPage(t *testing.T) {
	srv := ldaptest.Slapd(t)
	ou := srv.NewOU(t)
	srv.AddUsers(t, ou, makeUsers(t, "k", 300))
	cfg := adminConfig(srv, ou)
	cfg.PageSize = 50
	cfg.Retries = 1
	s, _ := newSource(t, cfg)
	n := 0
	res, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error {
		if n++; n == 120 {
			srv.Kill(t)
		}
		return nil
	})
	if err == nil {
		t.Fatalf("Read succeeded after the server was killed (%d entries)", n)
	}
	if res.Cookie != nil {
		t.Errorf("a failed pass returned a cookie")
	}
	if !errors.Is(err, ldapsource.ErrConnectionLost) {
		t.Errorf("error does not wrap ErrConnectionLost: %v", err)
	}
	if !strings.Contains(err.Error(), ou) {
		t.Errorf("error does not name the base DN: %v", err)
	}
	if n >= 300 {
		t.Errorf("all %d entries were read before the error", n)
	}
	t.Logf("after %d entries: %v", n, err)
}

// TestConnectionCutMidDelta: the connection to the shared Samba dropped
// in the middle of a DirSync delta: an error, no cookie, and the previous
// cookie still brings every change.
func TestConnectionCutMidDelta(t *testing.T) {
	srv := ldaptest.Samba(t)
	ou := srv.NewOU(t)
	srv.AddUsers(t, ou, makeUsers(t, "c", 3))
	cfg := adminConfig(srv, ou)
	s, _ := newSource(t, cfg)
	_, res := readAll(t, s, nil)
	added := makeUsers(t, "cx", 300)
	srv.AddUsers(t, ou, added)

	proxy := srv.Proxy(t)
	cut := cfg
	cut.URL, cut.ServerName = proxy.URL, "127.0.0.1"
	cut.Retries = 1
	sc, _ := newSource(t, cut)
	n := 0
	res2, err := sc.Read(context.Background(), directory.Pass{Cookie: res.Cookie}, func(*directory.Entry) error {
		if n++; n == 50 {
			proxy.Cut()
		}
		return nil
	})
	if err == nil {
		t.Fatalf("Read succeeded through a cut connection (%d entries)", n)
	}
	if res2.Cookie != nil {
		t.Error("a failed pass returned a cookie")
	}
	if !errors.Is(err, ldapsource.ErrConnectionLost) {
		t.Errorf("error does not wrap ErrConnectionLost: %v", err)
	}
	t.Logf("after %d entries: %v", n, err)
	got, _ := readAll(t, s, res.Cookie)
	mails := map[string]bool{}
	for _, e := range got {
		mails[e.Mail] = true
	}
	for _, u := range added {
		if !mails[u.Mail] {
			t.Errorf("%s missing from the delta after the failed pass", u.Mail)
			break
		}
	}
}

// TestScope: several base DNs, an excluded OU, and nested group scoping.
func TestScope(t *testing.T) {
	srv := ldaptest.Samba(t)
	root := srv.NewOU(t)
	a := srv.NewOUNamed(t, "A", root)
	b := srv.NewOUNamed(t, "B", root)
	sub := srv.NewOUNamed(t, "Sub", a)
	other := srv.NewOUNamed(t, "Other", root)
	users := makeUsers(t, "s", 5)
	dnA := srv.AddUsers(t, a, users[0:2])
	srv.AddUsers(t, b, users[2:3])
	srv.AddUsers(t, sub, users[3:4])
	srv.AddUsers(t, other, users[4:5])
	cfg := adminConfig(srv, a)
	cfg.BaseDN = ldapsource.StringList{a, b, sub} // sub lies inside a: read once
	cfg.ExcludeOU = ldapsource.StringList{sub}
	s, _ := newSource(t, cfg)
	got, _ := readAll(t, s, nil)
	mails := map[string]bool{}
	for _, e := range got {
		mails[e.Mail] = true
	}
	want := map[string]bool{users[0].Mail: true, users[1].Mail: true, users[2].Mail: true}
	if fmt.Sprint(mails) != fmt.Sprint(want) {
		t.Errorf("read %v, want %v", mails, want)
	}

	inner := srv.AddGroup(t, other, "inner-"+filepath.Base(t.TempDir()), []string{dnA[0]})
	outer := srv.AddGroup(t, other, "outer-"+filepath.Base(t.TempDir()), []string{inner})
	cfg = adminConfig(srv, root)
	cfg.Groups = ldapsource.StringList{outer}
	s, _ = newSource(t, cfg)
	got, res := readAll(t, s, nil)
	if len(got) != 1 {
		t.Fatalf("group scope read %d entries, want 1", len(got))
	}
	for _, e := range got {
		if e.Mail != users[0].Mail {
			t.Errorf("group scope read %s, want %s (nested member)", e.Mail, users[0].Mail)
		}
	}
	if res.Cookie != nil {
		t.Error("group scope returned a cookie: deltas cannot see membership changes")
	}
}

// TestPrune removes values after backing them up; the default is a dry
// run.
func TestPrune(t *testing.T) {
	for _, server := range servers() {
		t.Run(server.name, func(t *testing.T) {
			srv := server.start(t)
			ou := srv.NewOU(t)
			certs, err := ldaptest.UserCerts("p@smimesync.test", 3)
			if err != nil {
				t.Fatal(err)
			}
			srv.AddUsers(t, ou, []ldaptest.UserSpec{{Name: "pruned", Mail: "p@smimesync.test", UserCertificate: certs}})
			cfg := adminConfig(srv, ou)
			dry, logs := newSource(t, cfg)
			got, _ := readAll(t, dry, nil)
			var e *directory.Entry
			for _, x := range got {
				e = x
			}
			if err := dry.Prune(context.Background(), e, "userCertificate", certs[:2]); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), "dry run") {
				t.Error("dry run not logged")
			}
			if got, _ := readAll(t, dry, nil); !sameValues(only(got).UserCertificate, certs) {
				t.Fatal("a dry run changed the directory")
			}

			no := false
			cfg.Prune = ldapsource.PruneConfig{BackupDir: t.TempDir(), DryRun: &no}
			s, _ := newSource(t, cfg)
			if err := s.Prune(context.Background(), e, "userCertificate", certs[:2]); err != nil {
				t.Fatal(err)
			}
			if got, _ := readAll(t, s, nil); !sameValues(only(got).UserCertificate, certs[2:]) {
				t.Errorf("after Prune the entry has %d values, want 1", len(only(got).UserCertificate))
			}
			files, _ := filepath.Glob(filepath.Join(cfg.Prune.BackupDir, e.ID+"-*.userCertificate"))
			var backed [][]byte
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				backed = append(backed, b)
			}
			if !sameValues(backed, certs[:2]) {
				t.Errorf("backups %v do not hold the removed values", files)
			}
			manifest, err := os.ReadFile(filepath.Join(cfg.Prune.BackupDir, "manifest.jsonl"))
			if err != nil || strings.Count(string(manifest), "\n") != 2 || !strings.Contains(string(manifest), e.DN) {
				t.Errorf("manifest: %v\n%s", err, manifest)
			}
			// Pruning values already gone is not an error.
			if err := s.Prune(context.Background(), e, "userCertificate", certs[:2]); err != nil {
				t.Errorf("second Prune: %v", err)
			}
			if err := s.Prune(context.Background(), e, "mail", [][]byte{[]byte("x")}); err == nil {
				t.Error("Prune of mail accepted")
			}
		})
	}
}

func only(m map[string]*directory.Entry) *directory.Entry {
	for _, e := range m {
		return e
	}
	return &directory.Entry{}
}

// TestBinds: the bind methods and transports against the real servers.
func TestBinds(t *testing.T) {
	samba := ldaptest.Samba(t)
	slapd := ldaptest.Slapd(t)
	sou := samba.NewOU(t)
	user := ldaptest.UserSpec{Name: fmt.Sprintf("bd%d", time.Now().UnixNano()%1e12), Password: "Binder#Passw0rd1", Mail: "binder@smimesync.test"}
	samba.AddUsers(t, sou, []ldaptest.UserSpec{user})
	lou := slapd.NewOU(t)
	slapd.AddUsers(t, lou, []ldaptest.UserSpec{{Name: "reader", Mail: "reader@smimesync.test", Password: "secret2"}})
	t.Setenv("SMIMESYNC_TEST_LDAP_PASSWORD", user.Password)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(user.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	closed := "ldap://127.0.0.1:1" // nothing listens: failover goes on
	cases := []struct {
		name string
		srv  *ldaptest.Server
		cfg  func(c *ldapsource.Config)
	}{
		{"samba/simple-env/starttls", samba, func(c *ldapsource.Config) {
			c.Bind = ldapsource.Bind{User: samba.BindName(sou, user), PasswordEnv: "SMIMESYNC_TEST_LDAP_PASSWORD"}
		}},
		{"samba/simple-file/ldaps", samba, func(c *ldapsource.Config) {
			c.URL = samba.LDAPSURL
			c.Bind = ldapsource.Bind{User: samba.BindName(sou, user), PasswordFile: pwFile}
		}},
		{"samba/kerberos", samba, func(c *ldapsource.Config) {
			c.Bind = ldapsource.Bind{Method: "kerberos", User: user.Name, Realm: samba.Realm, Password: user.Password,
				Krb5Conf: samba.Krb5Conf(t), SPN: ldaptest.LDAPServicePrincipal}
		}},
		{"samba/failover", samba, func(c *ldapsource.Config) {
			c.URLs = ldapsource.StringList{c.URL}
			c.URL = closed
		}},
		{"slapd/anonymous/plain", slapd, func(c *ldapsource.Config) {
			c.Bind = ldapsource.Bind{}
			c.AllowPlainLDAP = true
		}},
		{"slapd/simple/ldaps", slapd, func(c *ldapsource.Config) {
			c.URL = slapd.LDAPSURL
			c.Bind = ldapsource.Bind{User: slapd.BindName(lou, ldaptest.UserSpec{Name: "reader"}), Password: "secret2"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := sou
			if tc.srv == slapd {
				base = lou
			}
			cfg := adminConfig(tc.srv, base)
			tc.cfg(&cfg)
			s, _ := newSource(t, cfg)
			got, _ := readAll(t, s, nil)
			if len(got) != 1 {
				t.Errorf("read %d entries, want 1", len(got))
			}
		})
	}
	t.Run("samba/wrong-password", func(t *testing.T) {
		cfg := adminConfig(samba, sou)
		cfg.Bind.Password = "wrong"
		s, logs := newSource(t, cfg)
		_, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { return nil })
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Errorf("want invalid credentials, got %v", err)
		}
		if strings.Contains(logs.String(), "retrying") {
			t.Error("wrong credentials were retried (lockout risk)")
		}
	})
}
