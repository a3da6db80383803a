package ldapsource

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"syscall"

	"github.com/go-ldap/ldap/v3"
)

// What went wrong at one URL, as [ConnectError] tells it.
const (
	failNetwork = iota // nothing answered: refused, unreachable, timed out
	failTLS            // TLS could not be set up
	failBind           // the server refused the credentials
	failOther
)

// failure classifies one URL's error.
func failure(err error) int {
	var ue *urlError
	if errors.As(err, &ue) && ldapsOnPlainPort(ue.url) {
		return failTLS
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var ve *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	switch {
	case ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication,
		ldap.LDAPResultStrongAuthRequired, ldap.LDAPResultConfidentialityRequired, ldap.LDAPResultAuthMethodNotSupported):
		return failBind
	case errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci), errors.As(err, &ve), errors.As(err, &rh),
		notTLS(err):
		return failTLS
	case ldap.IsErrorWithCode(err, ldap.ErrorNetwork):
		return failNetwork
	}
	return failOther
}

// headline is ConnectError's first words for errors of one kind.
var headline = map[int]string{
	failNetwork: "no directory server reachable",
	failTLS:     "no secure connection to the directory",
	failBind:    "the directory refused the bind",
	failOther:   "no directory server could be used",
}

// adDataCodes are the sub-codes Active Directory gives in the diagnostic
// message of a refused bind (LDAP result 49, "AcceptSecurityContext error,
// data 52e"), as Microsoft documents them for LDAP binds (the Win32
// errors ERROR_NO_SUCH_USER, ERROR_LOGON_FAILURE, ERROR_INVALID_LOGON_HOURS,
// ERROR_INVALID_WORKSTATION, ERROR_PASSWORD_EXPIRED, ERROR_ACCOUNT_DISABLED,
// ERROR_ACCOUNT_EXPIRED, ERROR_PASSWORD_MUST_CHANGE, ERROR_ACCOUNT_LOCKED_OUT).
var adDataCodes = map[string]string{
	"525": "the bind user does not exist: check bind.user",
	"52e": "the password is wrong (or bind.user names another account): check the password in bind.password_env or bind.password_file",
	"530": "the bind account may not log on at this time (logon hours)",
	"531": "the bind account may not log on from this computer (log on to workstations)",
	"532": "the bind account's password has expired: set a new one",
	"533": "the bind account is disabled: enable it",
	"568": "the bind account is in too many groups (token too large)",
	"701": "the bind account has expired: extend its expiry date",
	"773": "the bind account must change its password at next logon: set a new password and clear that flag",
	"775": "the bind account is locked out: unlock it, and check for a wrong password configured elsewhere",
}

var adData = regexp.MustCompile(`data ([0-9a-fA-F]{3,4})\b`)

// tlsOnPlainPort is the hint for ldaps:// to a port that speaks plain LDAP.
const tlsOnPlainPort = "ldaps:// needs the LDAPS port (636); on port 389 use ldap://, which smimesync secures with StartTLS"

// ldapsOnPlainPort reports whether rawURL is ldaps:// to port 389.
func ldapsOnPlainPort(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && strings.EqualFold(u.Scheme, "ldaps") && u.Port() == "389"
}

// hint says what to change for err met at rawURL, or "".
func hint(rawURL string, err error) string {
	if ldapsOnPlainPort(rawURL) && !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		return "port 389 serves plain LDAP, not TLS: " + tlsOnPlainPort
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var le *ldap.Error
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		if errors.As(err, &le) && le.Err != nil {
			if m := adData.FindStringSubmatch(le.Err.Error()); m != nil {
				if h, ok := adDataCodes[strings.ToLower(m[1])]; ok {
					return fmt.Sprintf("LDAP result 49, AD data %s: %s", strings.ToLower(m[1]), h)
				}
			}
		}
		return "LDAP result 49 (invalid credentials): check bind.user and its password"
	case ldap.IsErrorAnyOf(err, ldap.LDAPResultStrongAuthRequired, ldap.LDAPResultConfidentialityRequired):
		return "the server wants a signed or encrypted connection: use ldaps:// or StartTLS (ldap:// without allow_plain_ldap)"
	case errors.As(err, &ua):
		return "the server's certificate is signed by a CA this machine does not trust: set ca_file to the PEM file of the CA that issued it"
	case errors.As(err, &hn):
		return "the server's certificate does not name this host: connect by a name it holds, or set server_name"
	case notTLS(err):
		return "the server did not answer in TLS: " + tlsOnPlainPort
	case strings.HasPrefix(strings.ToLower(rawURL), "ldaps:") && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)):
		return "the server closed the connection during the TLS handshake; if this port serves plain LDAP: " + tlsOnPlainPort
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listens there: check the host and port in url (389 for ldap://, 636 for ldaps://) and any firewall"
	}
	return ""
}

// notTLS reports whether err is a TLS handshake that met something other
// than TLS (an LDAP server on its plain port).
func notTLS(err error) bool {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "first record does not look like a TLS handshake")
}

// noSuchBase turns a search of base that the server answered with LDAP
// result 32 (noSuchObject) into a configuration error naming base_dn: the
// base DN does not exist (a typo, an OU since renamed).
func noSuchBase(base, url string, err error) error {
	var le *ldap.Error
	if !errors.As(err, &le) || le.ResultCode != ldap.LDAPResultNoSuchObject {
		return nil
	}
	matched := ""
	if le.MatchedDN != "" {
		matched = fmt.Sprintf("; the closest entry that exists is %s", le.MatchedDN)
	}
	return &ConfigError{Field: "base_dn", Reason: fmt.Sprintf("base DN %s does not exist on %s (LDAP result 32, no such object%s): check base_dn for a typo", base, url, matched), Err: err}
}
