package service

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

// Code is the short code /healthz gives for a pass's error.
type Code string

// The short codes /healthz gives for a pass's error. The error's text
// (with its host names, bind account and addresses) goes to the log only:
// /healthz may be read by anyone who reaches the port.
const (
	CodeGuard             Code = "guard"              // the mass-change guard stopped the run
	CodeState             Code = "state"              // the state cannot be read, written or locked
	CodeCancelled         Code = "cancelled"          // stopped by a shutdown
	CodeSourceUnreachable Code = "source-unreachable" // no connection to the directory, or it stopped answering
	CodeSourceTLS         Code = "source-tls"         // the directory's certificate was refused
	CodeBindRefused       Code = "bind-refused"       // the directory refused the bind
	CodeSourceData        Code = "source-data"        // the source's data cannot be read (LDIF)
	CodeSource            Code = "source-error"       // any other failure while reading the source
	CodeSinkAuth          Code = "sink-auth"          // the cloud refused the credentials or the token ("sink-auth:AADSTS7000215" when sign-in named its code)
	CodeSinkThrottled     Code = "sink-throttled"     // the cloud kept throttling, or retries ran out
	CodeSinkUnreachable   Code = "sink-unreachable"   // no connection to the cloud
	CodeWritesFailed      Code = "writes-failed"      // some writes or lookups failed
	CodeError             Code = "error"              // anything else
)

// planError marks an error of planning, which reads the state and the
// source (lookups in the sink do not fail a plan), from one of applying.
type planError struct{ err error }

func (e *planError) Error() string { return e.err.Error() }
func (e *planError) Unwrap() error { return e.err }

// ErrorCode is err's short code for /healthz; "" for nil. It tells a
// failure of planning (reading the state and the source: the Service marks
// those) from one of applying (the sink), and reads the sentinel and typed
// errors of the sources and sinks of this module. A sign-in refused with an
// AADSTS code gives "sink-auth:AADSTS…".
func ErrorCode(err error) Code {
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
		return CodeGuard
	case errors.Is(err, smimesync.ErrStateUnreadable), errors.Is(err, smimesync.ErrStateUnwritable),
		errors.Is(err, smimesync.ErrLocked), errors.Is(err, smimesync.ErrStalePlan), errors.Is(err, smimesync.ErrSymlink):
		return CodeState
	case errors.Is(err, context.Canceled):
		return CodeCancelled
	case errors.As(err, &sie) && sie.Code != "":
		// The AADSTS code names the fix (azauth.SignInFixes) and holds no
		// host, account or address.
		return CodeSinkAuth + ":" + Code(sie.Code)
	case errors.Is(err, exchange.ErrUnauthorized), errors.As(err, &afe):
		return CodeSinkAuth
	case errors.As(err, &re) && (re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden):
		return CodeSinkAuth
	case errors.Is(err, exchange.ErrLimit), errors.Is(err, exchange.ErrRetriesExhausted):
		return CodeSinkThrottled
	case errors.Is(err, smimesync.ErrChangesFailed):
		return CodeWritesFailed
	case !planning:
	case errors.As(err, &le) && (le.ResultCode == ldap.LDAPResultInvalidCredentials ||
		le.ResultCode == ldap.LDAPResultInappropriateAuthentication || le.ResultCode == ldap.LDAPResultStrongAuthRequired ||
		le.ResultCode == ldap.LDAPResultConfidentialityRequired):
		return CodeBindRefused
	case errors.As(err, &ue), errors.As(err, &he), errors.As(err, &ce), errors.As(err, &tve):
		return CodeSourceTLS
	case errors.Is(err, ldapsource.ErrTimeout), errors.Is(err, ldapsource.ErrConnectionLost),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &opErr), errors.As(err, &dnsE):
		return CodeSourceUnreachable
	case errors.Is(err, directory.ErrLDIFSyntax), errors.Is(err, directory.ErrLDIFUnsupported), errors.Is(err, directory.ErrLDIFTooLarge):
		return CodeSourceData
	default:
		return CodeSource
	}
	// Applying.
	switch {
	case errors.As(err, &opErr), errors.As(err, &dnsE), errors.Is(err, context.DeadlineExceeded):
		return CodeSinkUnreachable
	}
	return CodeError
}
