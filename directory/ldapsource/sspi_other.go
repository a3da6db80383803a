//go:build !windows

package ldapsource

import (
	"errors"
	"net/url"

	"github.com/go-ldap/ldap/v3"
)

// sspiBind fails: SSPI exists on Windows only (Validate says so first).
func (s *Source) sspiBind(*ldap.Conn, *url.URL, string) error {
	return &bindConfigError{errors.New("bind sspi works on Windows only")}
}
