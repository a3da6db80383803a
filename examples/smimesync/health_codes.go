package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/go-ldap/ldap/v3"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/smimesync"
)

// The short codes /healthz gives for a pass's error. The error's text
// (with its host names, bind account and addresses) goes to the log only:
// /healthz may be read by anyone who reaches the port.
const (
	codeGuard             = "guard"              // the mass-change guard stopped the run
	codeState             = "state"              // the state cannot be read, written or locked
	codeCancelled         = "cancelled"          // stopped by a shutdown
	codeSourceUnreachable = "source-unreachable" // no connection to the directory, or it stopped answering
	codeSourceTLS         = "source-tls"         // the directory's certificate was refused
	codeBindRefused       = "bind-refused"       // the directory refused the bind
	codeSourceData        = "source-data"        // the source's data cannot be read (LDIF)
	codeSource            = "source-error"       // any other failure while reading the source
	codeSinkAuth          = "sink-auth"          // the cloud refused the credentials or the token ("sink-auth:AADSTS7000215" when sign-in named its code)
	codeSinkThrottled     = "sink-throttled"     // the cloud kept throttling, or retries ran out
	codeSinkUnreachable   = "sink-unreachable"   // no connection to the cloud
	codeWritesFailed      = "writes-failed"      // some writes or lookups failed
	codeError             = "error"              // anything else
)

// planError marks an error of planning, which reads the state and the
// source (lookups in the sink do not fail a plan), from one of applying.
type planError struct{ err error }

func (e *planError) Error() string { return e.err.Error() }
func (e *planError) Unwrap() error { return e.err }

// errorCode is err's short code for /healthz; "" for nil.
func errorCode(err error) string {
	if err == nil {
		return ""
	}
	var (
		pe    *planError
		le    *ldap.Error
		ue    x509.UnknownAuthorityError
		he    x509.HostnameError
		ce    x509.CertificateInvalidError
		tve   *tls.CertificateVerificationError
		re    *azcore.ResponseError
		afe   *azidentity.AuthenticationFailedError
		opErr *net.OpError
		dnsE  *net.DNSError
		sie   *azauth.SignInError
	)
	planning := errors.As(err, &pe)
	switch {
	case errors.Is(err, smimesync.ErrGuardTripped):
		return codeGuard
	case errors.Is(err, smimesync.ErrStateUnreadable), errors.Is(err, smimesync.ErrStateUnwritable),
		errors.Is(err, smimesync.ErrLocked), errors.Is(err, smimesync.ErrStalePlan), errors.Is(err, smimesync.ErrSymlink):
		return codeState
	case errors.Is(err, context.Canceled):
		return codeCancelled
	case errors.As(err, &sie) && sie.Code != "":
		// The AADSTS code names the fix (azauth.SignInFixes) and holds no
		// host, account or address.
		return codeSinkAuth + ":" + sie.Code
	case errors.Is(err, exchange.ErrUnauthorized), errors.As(err, &afe):
		return codeSinkAuth
	case errors.As(err, &re) && (re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden):
		return codeSinkAuth
	case errors.Is(err, exchange.ErrLimit), errors.Is(err, exchange.ErrRetriesExhausted):
		return codeSinkThrottled
	case errors.Is(err, smimesync.ErrChangesFailed):
		return codeWritesFailed
	case !planning:
	case errors.As(err, &le) && (le.ResultCode == ldap.LDAPResultInvalidCredentials ||
		le.ResultCode == ldap.LDAPResultInappropriateAuthentication || le.ResultCode == ldap.LDAPResultStrongAuthRequired ||
		le.ResultCode == ldap.LDAPResultConfidentialityRequired):
		return codeBindRefused
	case errors.As(err, &ue), errors.As(err, &he), errors.As(err, &ce), errors.As(err, &tve):
		return codeSourceTLS
	case errors.Is(err, ldapsource.ErrTimeout), errors.Is(err, ldapsource.ErrConnectionLost),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &opErr), errors.As(err, &dnsE):
		return codeSourceUnreachable
	case errors.Is(err, directory.ErrLDIFSyntax), errors.Is(err, directory.ErrLDIFUnsupported), errors.Is(err, directory.ErrLDIFTooLarge):
		return codeSourceData
	default:
		return codeSource
	}
	// Applying.
	switch {
	case errors.As(err, &opErr), errors.As(err, &dnsE), errors.Is(err, context.DeadlineExceeded):
		return codeSinkUnreachable
	}
	return codeError
}
