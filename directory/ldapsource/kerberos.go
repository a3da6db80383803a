package ldapsource

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"github.com/go-ldap/ldap/v3/gssapi"
	"github.com/jcmturner/gokrb5/v8/client"
)

// kerberosBind binds with SASL GSSAPI using gokrb5 (pure Go, every
// platform): a keytab, a password, or the credentials cache.
func (s *Source) kerberosBind(c *ldap.Conn, u *url.URL, pw string) error {
	b := &s.cfg.Bind
	krb5conf := b.Krb5Conf
	if krb5conf == "" {
		krb5conf = os.Getenv("KRB5_CONFIG")
	}
	if krb5conf == "" {
		krb5conf = "/etc/krb5.conf"
	}
	var (
		kc  *gssapi.Client
		err error
	)
	settings := []func(*client.Settings){client.DisablePAFXFAST(true)}
	switch {
	case b.Keytab != "":
		kc, err = gssapi.NewClientWithKeytab(b.User, b.Realm, b.Keytab, krb5conf, settings...)
	case pw != "":
		kc, err = gssapi.NewClientWithPassword(b.User, b.Realm, pw, krb5conf, settings...)
	default:
		cc := strings.TrimPrefix(os.Getenv("KRB5CCNAME"), "FILE:")
		if cc == "" {
			cc = fmt.Sprintf("/tmp/krb5cc_%d", os.Getuid())
		}
		kc, err = gssapi.NewClientFromCCache(cc, krb5conf, settings...)
	}
	if err != nil {
		return &bindConfigError{fmt.Errorf("kerberos: %w", err)}
	}
	defer kc.Close()
	return c.GSSAPIBind(kc, s.spn(u), "")
}
