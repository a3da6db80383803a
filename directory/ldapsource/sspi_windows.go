//go:build windows

package ldapsource

import (
	"fmt"
	"net/url"

	"github.com/go-ldap/ldap/v3"
	"github.com/go-ldap/ldap/v3/gssapi"
)

// sspiBind binds with Kerberos through Windows SSPI: as the running
// account (a service account needs no stored password), or as User with
// the given password.
func (s *Source) sspiBind(c *ldap.Conn, u *url.URL, pw string) error {
	b := &s.cfg.Bind
	var (
		kc  *gssapi.SSPIClient
		err error
	)
	if b.User != "" && pw != "" {
		domain, user := ntlmUser(b.User, b.Domain)
		kc, err = gssapi.NewSSPIClientWithUserCredentials(domain, user, pw)
	} else {
		kc, err = gssapi.NewSSPIClient()
	}
	if err != nil {
		return &bindConfigError{fmt.Errorf("sspi: %w", err)}
	}
	defer kc.Close()
	return c.GSSAPIBind(kc, s.spn(u), "")
}
