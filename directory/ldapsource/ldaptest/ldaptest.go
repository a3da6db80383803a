// Package ldaptest runs real directory servers on loopback for tests: a
// throwaway Samba Active Directory domain controller and throwaway OpenLDAP
// slapd instances, seeded with users through LDAP.
//
// # Servers
//
// [Samba] returns the one Samba DC of the machine. Samba's LDAP ports are
// compiled in (389, 636), so every test binary on the machine shares it: the
// first caller provisions it under [SambaDir] (about 15 s, once per machine)
// and starts it, holding an exclusive flock on SambaDir+".lock" meanwhile;
// later callers, in this process or another, find it healthy and reuse it.
// The server is left running when the process ends, because test binaries of
// other packages may be using it at the same time (`go test ./...` runs them
// in parallel); CI machines run the suite once and are thrown away. Stop it
// with [StopSamba] or `kill $(cat /tmp/smimesync-ldaptest/samba/run/samba.pid)`.
// Tests isolate themselves by creating a fresh OU ([Server.NewOU]), removed
// when the test ends.
//
// [Slapd] starts a private slapd for the calling test on free ports (ready
// in about 0.1 s), stopped when the test ends; a test may kill it
// ([Server.Kill]).
//
// # Missing servers
//
// When the server binaries are not installed, the helpers skip the test with
// a message naming the Debian packages, unless the environment variable
// SMIMESYNC_REQUIRE_SERVERS=1 is set: then they fail it ([SkipOrFail]). CI
// sets it (see .ci/ldap-packages.sh for the packages).
package ldaptest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// RequireServersEnv is the environment variable that turns a missing server
// into a test failure instead of a skip.
const RequireServersEnv = "SMIMESYNC_REQUIRE_SERVERS"

// SkipOrFail skips t with why, or fails it when [RequireServersEnv] is "1".
func SkipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireServersEnv) == "1" {
		t.Fatalf("%s (and %s=1 requires the servers)", why, RequireServersEnv)
	}
	t.Skip(why)
}

// Kind says which server a [Server] is.
type Kind string

// Server kinds.
const (
	// KindSamba is a Samba Active Directory domain controller.
	KindSamba Kind = "samba"
	// KindSlapd is an OpenLDAP slapd with inetOrgPerson entries.
	KindSlapd Kind = "slapd"
)

// Server is a running directory server.
type Server struct {
	// Kind is the server's kind.
	Kind Kind
	// URL is the plain LDAP URL (StartTLS works on it).
	URL string
	// LDAPSURL is the LDAP-over-TLS URL.
	LDAPSURL string
	// CAFile is a PEM file with the CA that signed the server's TLS
	// certificate (issued for localhost and 127.0.0.1).
	CAFile string
	// CA is that CA.
	CA *x509.Certificate
	// BaseDN is the naming context (domain root, or the slapd suffix).
	BaseDN string
	// AdminDN and AdminPassword bind with full rights.
	AdminDN, AdminPassword string
	// Realm is the Kerberos realm and UPN suffix (Samba), or the mail domain.
	Realm string
	// Dir is the directory holding the server's files.
	Dir string

	kill func() error
	stop func() error
}

// userCertAttr is the attribute name the server accepts for adds.
func (s *Server) userCertAttr() string {
	if s.Kind == KindSlapd {
		return "userCertificate;binary" // Certificate syntax insists on ;binary
	}
	return "userCertificate"
}

// TLSConfig returns a client TLS configuration trusting the server's CA.
func (s *Server) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.CA)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Dial returns a connection bound as the administrator, closed when t ends.
func (s *Server) Dial(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := s.dialAdmin(s.URL)
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) dialAdmin(url string) (*ldap.Conn, error) {
	c, err := ldap.DialURL(url, ldap.DialWithTLSConfig(s.TLSConfig()),
		ldap.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	c.SetTimeout(2 * time.Minute)
	if err := c.Bind(s.AdminDN, s.AdminPassword); err != nil {
		c.Close()
		return nil, fmt.Errorf("bind %s as %s: %w", url, s.AdminDN, err)
	}
	return c, nil
}

// Kill ends the server abruptly (SIGKILL). Only a private server may be
// killed: killing the shared Samba fails the test.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if s.kill == nil {
		t.Fatalf("ldaptest: the %s server is shared and cannot be killed; use a Proxy", s.Kind)
	}
	if err := s.kill(); err != nil {
		t.Fatalf("ldaptest: kill %s: %v", s.Kind, err)
	}
}

var unsafeRDN = regexp.MustCompile(`[^A-Za-z0-9-]+`)

// NewOU creates an organizational unit directly under BaseDN, named after
// the test with a random suffix, and returns its DN. The OU and everything
// under it are deleted when t ends.
func (s *Server) NewOU(t testing.TB) string {
	t.Helper()
	name := unsafeRDN.ReplaceAllString(t.Name(), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	name += "-" + randHex(4)
	return s.NewOUNamed(t, name, s.BaseDN)
}

// NewOUNamed creates OU=name under parent and returns its DN; it is deleted
// with its subtree when t ends.
func (s *Server) NewOUNamed(t testing.TB, name, parent string) string {
	t.Helper()
	dn := "OU=" + ldap.EscapeDN(name) + "," + parent
	c := s.Dial(t)
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"top", "organizationalUnit"})
	req.Attribute("ou", []string{name})
	req.Attribute("description", []string{ownerTag()})
	if err := c.Add(req); err != nil {
		t.Fatalf("ldaptest: add %s: %v", dn, err)
	}
	t.Cleanup(func() {
		if err := s.DeleteTree(dn); err != nil {
			t.Logf("ldaptest: cleanup of %s: %v", dn, err)
		}
	})
	return dn
}

// DeleteTree removes dn and everything under it (nothing when dn does not
// exist), as the OUs of [Server.NewOU] are removed when their test ends:
// one entry at a time, deepest first, with a few connections in parallel.
// Samba's subtree-delete control would do it in one request, but as one
// transaction: for an OU of 2,000 users it ran past the two-minute client
// timeout without finishing, and held the DC's write lock meanwhile, so
// that every other test's writes timed out too.
func (s *Server) DeleteTree(dn string) error {
	c, err := s.dialAdmin(s.URL)
	if err != nil {
		if s.kill != nil {
			return nil // a private server already gone takes its data with it
		}
		return err
	}
	defer c.Close()
	res, err := c.SearchWithPaging(ldap.NewSearchRequest(dn, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", []string{"1.1"}, nil), 1000)
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil
		}
		return err
	}
	// By depth (the number of RDNs), deepest first: the entries of one
	// depth do not contain each other.
	byDepth := map[int][]string{}
	var depths []int
	for _, e := range res.Entries {
		d := strings.Count(e.DN, ",")
		if len(byDepth[d]) == 0 {
			depths = append(depths, d)
		}
		byDepth[d] = append(byDepth[d], e.DN)
	}
	slices.Sort(depths)
	slices.Reverse(depths)
	for _, d := range depths {
		if err := s.deleteAll(c, byDepth[d]); err != nil {
			return err
		}
	}
	return nil
}

// deleteAll deletes dns, which do not contain each other, with up to four
// connections (c and three more).
func (s *Server) deleteAll(c *ldap.Conn, dns []string) error {
	workers := min(4, (len(dns)+49)/50)
	next := make(chan string)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			conn := c
			if w > 0 {
				var err error
				if conn, err = s.dialAdmin(s.URL); err != nil {
					errc <- err
					for range next {
					}
					return
				}
				defer conn.Close()
			}
			for d := range next {
				if err := conn.Del(ldap.NewDelRequest(d, nil)); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
					errc <- fmt.Errorf("delete %s: %w", d, err)
					for range next {
					}
					return
				}
			}
		}(w)
	}
	for _, d := range dns {
		next <- d
	}
	close(next)
	wg.Wait()
	close(errc)
	return errors.Join(collect(errc)...)
}

// UserSpec describes a user to add.
type UserSpec struct {
	// Name is the RDN value and the account name (sAMAccountName on Samba,
	// at most 20 characters; uid on slapd). Required.
	Name string
	// Mail is the mail attribute.
	Mail string
	// UPN is userPrincipalName (Samba only); empty means Name@Realm.
	UPN string
	// ProxyAddresses are proxyAddresses values (Samba only).
	ProxyAddresses []string
	// UserCertificate and UserSMIMECertificate are the raw values.
	UserCertificate, UserSMIMECertificate [][]byte
	// Password, when set, makes the user able to bind (Samba: an enabled
	// account with this password, set over LDAPS; slapd: userPassword).
	Password string
}

// UserDN returns the DN spec gets under ou.
func (s *Server) UserDN(ou string, spec UserSpec) string {
	if s.Kind == KindSlapd {
		return "uid=" + ldap.EscapeDN(spec.Name) + "," + ou
	}
	return "CN=" + ldap.EscapeDN(spec.Name) + "," + ou
}

// BindName returns the name a user added with a Password binds as.
func (s *Server) BindName(ou string, spec UserSpec) string {
	if s.Kind == KindSamba {
		if spec.UPN != "" {
			return spec.UPN
		}
		return spec.Name + "@" + strings.ToLower(s.Realm)
	}
	return s.UserDN(ou, spec)
}

func (s *Server) addRequest(ou string, u UserSpec) *ldap.AddRequest {
	req := ldap.NewAddRequest(s.UserDN(ou, u), nil)
	if s.Kind == KindSlapd {
		req.Attribute("objectClass", []string{"inetOrgPerson"})
		req.Attribute("uid", []string{u.Name})
		req.Attribute("cn", []string{u.Name})
		req.Attribute("sn", []string{u.Name})
		if u.Password != "" {
			req.Attribute("userPassword", []string{u.Password})
		}
	} else {
		req.Attribute("objectClass", []string{"user"})
		req.Attribute("sAMAccountName", []string{u.Name})
		upn := u.UPN
		if upn == "" {
			upn = u.Name + "@" + strings.ToLower(s.Realm)
		}
		req.Attribute("userPrincipalName", []string{upn})
		if len(u.ProxyAddresses) > 0 {
			req.Attribute("proxyAddresses", u.ProxyAddresses)
		}
		if u.Password != "" {
			req.Attribute("unicodePwd", []string{UnicodePwd(u.Password)})
			req.Attribute("userAccountControl", []string{"512"})
		}
	}
	if u.Mail != "" {
		req.Attribute("mail", []string{u.Mail})
	}
	if len(u.UserCertificate) > 0 {
		req.Attribute(s.userCertAttr(), byteValues(u.UserCertificate))
	}
	if len(u.UserSMIMECertificate) > 0 {
		req.Attribute("userSMIMECertificate", byteValues(u.UserSMIMECertificate))
	}
	return req
}

// UnicodePwd encodes a password as AD's unicodePwd value: the quoted
// password in UTF-16LE.
func UnicodePwd(pw string) string {
	q := `"` + pw + `"`
	b := make([]byte, 0, 2*len(q))
	for _, r := range q {
		b = append(b, byte(r), byte(r>>8))
	}
	return string(b)
}

func byteValues(vs [][]byte) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// AddUsers adds the users under ou with several connections at once and
// returns their DNs in the order of users.
func (s *Server) AddUsers(t testing.TB, ou string, users []UserSpec) []string {
	t.Helper()
	dns, err := s.addUsers(context.Background(), ou, users)
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	return dns
}

func (s *Server) addUsers(ctx context.Context, ou string, users []UserSpec) ([]string, error) {
	workers := 4
	if len(users) < workers {
		workers = len(users)
	}
	dns := make([]string, len(users))
	next := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var plain, secure *ldap.Conn
			defer func() {
				for _, c := range []*ldap.Conn{plain, secure} {
					if c != nil {
						c.Close()
					}
				}
			}()
			for i := range next {
				u := users[i]
				var c **ldap.Conn
				url := s.URL
				if u.Password != "" && s.Kind == KindSamba {
					c, url = &secure, s.LDAPSURL // Samba sets passwords only over TLS
				} else {
					c = &plain
				}
				if *c == nil {
					conn, err := s.dialAdmin(url)
					if err != nil {
						errc <- err
						cancel()
						return
					}
					*c = conn
				}
				req := s.addRequest(ou, u)
				err := (*c).Add(req)
				if err != nil && s.Kind == KindSamba && ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) &&
					strings.Contains(err.Error(), "already in use") {
					// An account of this name left by a test that was
					// killed before its cleanup: names are unique in the
					// domain, not in the OU.
					if err = s.removeStale(*c, u.Name); err == nil {
						err = (*c).Add(req)
					}
				}
				if err != nil {
					errc <- fmt.Errorf("add %s: %w", req.DN, err)
					cancel()
					return
				}
				dns[i] = req.DN
			}
		}()
	}
feed:
	for i := range users {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errc)
	if err := errors.Join(collect(errc)...); err != nil {
		return dns, err
	}
	return dns, s.settle(ctx, ou)
}

// settle waits, on slapd, until a content-sync cookie covers every entry
// under ou. slapd answers an add before its content-sync provider counts
// it, and after concurrent adds its cookie can stay behind the newest
// entryCSN until the next write: a cookie taken then would make the next
// delta send those entries again (a duplicate, which the delta tests
// would take for a change). So settle writes once more, to ou itself,
// and waits for the cookie to reach that write. Samba needs no wait.
func (s *Server) settle(ctx context.Context, ou string) error {
	if s.Kind != KindSlapd {
		return nil
	}
	c, err := s.dialAdmin(s.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	m := ldap.NewModifyRequest(ou, nil)
	m.Replace("businessCategory", []string{"settled " + randHex(4)})
	if err := c.Modify(m); err != nil {
		return fmt.Errorf("settle %s: %w", ou, err)
	}
	res, err := c.Search(ldap.NewSearchRequest(ou, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"entryCSN"}, nil))
	if err != nil {
		return fmt.Errorf("read the entryCSN of %s: %w", ou, err)
	}
	if len(res.Entries) != 1 {
		return fmt.Errorf("read the entryCSN of %s: %d entries", ou, len(res.Entries))
	}
	newest := res.Entries[0].GetAttributeValue("entryCSN")
	for deadline := time.Now().Add(10 * time.Second); ; {
		r, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=ldaptestNoSuchClass)", []string{"1.1"},
			[]ldap.Control{ldap.NewControlSyncRequest(ldap.SyncRequestModeRefreshOnly, nil, false)}))
		if err != nil {
			return fmt.Errorf("content sync of %s: %w", s.BaseDN, err)
		}
		cookie := ""
		if d, ok := ldap.FindControl(r.Controls, ldap.ControlTypeSyncDone).(*ldap.ControlSyncDone); ok {
			cookie = string(d.Cookie)
		}
		_, csn, _ := strings.Cut(cookie, "csn=")
		if slices.ContainsFunc(strings.Split(csn, ";"), func(v string) bool { return v >= newest }) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no content-sync cookie of %s reached %s in 10 s (last %q)", s.BaseDN, newest, cookie)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ownerTag names the process that made an OU, in its description: its
// pid, host name and pid namespace (two containers may share a host name
// and the DC, each with its own pids).
func ownerTag() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("ldaptest pid=%d host=%s ns=%s", os.Getpid(), host, pidNamespace())
}

// removeStale deletes the account named name (sAMAccountName) when it is a
// leftover: it lives in an OU of [Server.NewOU] made on this host, in this
// pid namespace, by a process that is gone (a test killed before its
// cleanup). Account names are unique in the domain, not in the OU. Any
// other holder is an error.
func (s *Server) removeStale(c *ldap.Conn, name string) error {
	res, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(sAMAccountName="+ldap.EscapeFilter(name)+")", []string{"1.1"}, nil))
	if err != nil {
		return err
	}
	for _, e := range res.Entries {
		d, err := ldap.ParseDN(e.DN)
		if err != nil || len(d.RDNs) < 2 {
			return fmt.Errorf("account %s already exists, as %s", name, e.DN)
		}
		parent := (&ldap.DN{RDNs: d.RDNs[1:]}).String()
		r, err := c.Search(ldap.NewSearchRequest(parent, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=organizationalUnit)", []string{"description"}, nil))
		if err != nil || len(r.Entries) != 1 {
			return fmt.Errorf("account %s already exists, as %s", name, e.DN)
		}
		owner := r.Entries[0].GetAttributeValue("description")
		var pid int
		var host, ns string
		mine, _ := os.Hostname()
		if _, err := fmt.Sscanf(owner, "ldaptest pid=%d host=%s ns=%s", &pid, &host, &ns); err != nil ||
			host != mine || ns != pidNamespace() || processAlive(pid) {
			return fmt.Errorf("account %s already exists, as %s (OU owner: %q)", name, e.DN, owner)
		}
		if err := c.Del(ldap.NewDelRequest(e.DN, nil)); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return fmt.Errorf("remove the leftover %s: %w", e.DN, err)
		}
	}
	return nil
}

func collect(c chan error) []error {
	var out []error
	for err := range c {
		out = append(out, err)
	}
	return out
}

// SetCertificates replaces the user's userCertificate values.
func (s *Server) SetCertificates(t testing.TB, dn string, certs [][]byte) {
	t.Helper()
	c := s.Dial(t)
	req := ldap.NewModifyRequest(dn, nil)
	if len(certs) == 0 {
		req.Delete(s.userCertAttr(), nil)
	} else {
		req.Replace(s.userCertAttr(), byteValues(certs))
	}
	if err := c.Modify(req); err != nil {
		t.Fatalf("ldaptest: modify %s: %v", dn, err)
	}
}

// Delete deletes the entry dn.
func (s *Server) Delete(t testing.TB, dn string) {
	t.Helper()
	if err := s.Dial(t).Del(ldap.NewDelRequest(dn, nil)); err != nil {
		t.Fatalf("ldaptest: delete %s: %v", dn, err)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}

// AddGroup adds a group named name under ou with the given member DNs and
// returns its DN (Samba: a global security group; slapd: groupOfNames).
func (s *Server) AddGroup(t testing.TB, ou, name string, members []string) string {
	t.Helper()
	var req *ldap.AddRequest
	if s.Kind == KindSamba {
		req = ldap.NewAddRequest("CN="+ldap.EscapeDN(name)+","+ou, nil)
		req.Attribute("objectClass", []string{"group"})
		req.Attribute("sAMAccountName", []string{name})
	} else {
		req = ldap.NewAddRequest("cn="+ldap.EscapeDN(name)+","+ou, nil)
		req.Attribute("objectClass", []string{"groupOfNames"})
		req.Attribute("cn", []string{name})
		if len(members) == 0 {
			members = []string{""} // groupOfNames needs a member
		}
	}
	if len(members) > 0 {
		req.Attribute("member", members)
	}
	if err := s.Dial(t).Add(req); err != nil {
		t.Fatalf("ldaptest: add group %s: %v", req.DN, err)
	}
	return req.DN
}

// Krb5Conf writes a krb5.conf for the Samba DC's realm (its KDC on
// 127.0.0.1:88, over TCP) into a temporary directory and returns its
// path. The LDAP service principal is [LDAPServicePrincipal].
func (s *Server) Krb5Conf(t testing.TB) string {
	t.Helper()
	if s.Kind != KindSamba {
		t.Fatalf("ldaptest: only the Samba DC runs a KDC")
	}
	conf := fmt.Sprintf(`[libdefaults]
	default_realm = %[1]s
	dns_lookup_kdc = false
	dns_lookup_realm = false
	udp_preference_limit = 1
	default_tkt_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
	default_tgs_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
	permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96

[realms]
	%[1]s = {
		kdc = 127.0.0.1:88
	}

[domain_realm]
	.%[2]s = %[1]s
	%[2]s = %[1]s
`, s.Realm, strings.ToLower(s.Realm))
	path := filepath.Join(t.TempDir(), "krb5.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// LDAPServicePrincipal is the Samba DC's LDAP service principal, for
// Kerberos binds.
const LDAPServicePrincipal = "ldap/smimesyncdc.smimesync.test"
