package exchange

import (
	"errors"
	"fmt"
	"strings"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
)

var (
	// ErrUnauthorized is wrapped when the endpoint refuses the token (401)
	// or the credential cannot get one.
	ErrUnauthorized = errors.New("exchange: not authorized")
	// ErrLimit is wrapped by a [*LimitError]: a write that the service
	// would refuse for its size, refused before it is sent.
	ErrLimit = errors.New("exchange: over the service's limit")
	// ErrRetriesExhausted is wrapped when a call still fails after
	// RetryPolicy.MaxTries attempts; the last failure is wrapped too.
	ErrRetriesExhausted = errors.New("exchange: retries exhausted")
	// ErrRedirect is wrapped when the endpoint redirects a call somewhere
	// the sink will not follow: to a host outside the configured cloud (a
	// [*azauth.TokenHostError], naming it, is wrapped too), without a
	// Location, or too many times.
	ErrRedirect = errors.New("exchange: redirect not followed")
	// ErrReadBackMismatch is wrapped by a [*ReadBackMismatchError].
	ErrReadBackMismatch = errors.New("exchange: a write read back other bytes than were written")
	// ErrConfig is wrapped by a [*ConfigError]: a configuration that
	// cannot work.
	ErrConfig = errors.New("exchange: invalid configuration")
)

// ConfigError names the configuration field at fault. It wraps
// [ErrConfig] and, when the fault was found by the azauth package (the
// tenant, sign-in, cloud or endpoints), azauth's own error as Err: both
// errors.Is(err, ErrConfig) and errors.Is(err, azauth.ErrConfig) hold for
// it then.
type ConfigError struct {
	// Field is the YAML name of the field, relative to the sink's
	// section ("lookup", "auth.secret_env").
	Field string
	// Reason says what is wrong with it.
	Reason string
	// Err is the error the fault was found as, if any (an
	// [*azauth.ConfigError]).
	Err error
}

// Error names the field and the reason.
func (e *ConfigError) Error() string { return fmt.Sprintf("exchange: %s: %s", e.Field, e.Reason) }

// Is reports whether target is [ErrConfig].
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// Unwrap returns Err (nil when the sink found the fault itself).
func (e *ConfigError) Unwrap() error { return e.Err }

// configError returns err as a [*ConfigError] when it is an
// [*azauth.ConfigError], and unchanged otherwise.
func configError(err error) error {
	var ae *azauth.ConfigError
	if errors.As(err, &ae) {
		return &ConfigError{Field: ae.Field, Reason: ae.Reason, Err: err}
	}
	return err
}

// ReadBackMismatchError is a write that the service accepted but read back
// with other values than were sent: the bytes were encoded in a way the
// service understands differently. It wraps [ErrReadBackMismatch]. Once
// a sink has seen one, it refuses every later write with it.
type ReadBackMismatchError struct {
	// Recipient names the recipient written.
	Recipient string
	// Attribute is "UserCertificate" or "UserSMimeCertificate".
	Attribute string
	// Wrote and Read are the SHA-256 fingerprints (hex) of the values
	// written and of those read back.
	Wrote, Read []string
}

func (e *ReadBackMismatchError) Error() string {
	return fmt.Sprintf("exchange: %s: %s was written as [%s] but reads back as [%s]: the service stores other bytes than smimesync sends (a wrong byte encoding); no more writes are sent",
		e.Recipient, e.Attribute, strings.Join(e.Wrote, " "), strings.Join(e.Read, " "))
}

// Unwrap returns [ErrReadBackMismatch].
func (e *ReadBackMismatchError) Unwrap() error { return ErrReadBackMismatch }

// CmdletError is a cmdlet's failure as the endpoint reports it: an OData
// error, or @adminapi.errors in a 200 answer. A 404 wraps
// [cloud.ErrNotFound]; a refusal to write a directory-synced object is
// reported as [*cloud.NotWritableError] instead.
type CmdletError struct {
	// Cmdlet is the cmdlet called ("Set-Mailbox").
	Cmdlet string
	// Identity is its -Identity parameter, if any.
	Identity string
	// Status is the HTTP status (200 for @adminapi.errors).
	Status int
	// Code is the OData error code ("NotFound", "BadRequest").
	Code string
	// ErrorID and Class are the first two fields of the detail message
	// ("Ex6F9304", "…ManagementObjectNotFoundException"), when given.
	ErrorID, Class string
	// Message is the service's explanation.
	Message string
	// RequestID is the client-request-id the call was sent with.
	RequestID string
}

func (e *CmdletError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exchange: %s", e.Cmdlet)
	if e.Identity != "" {
		fmt.Fprintf(&b, " -Identity %s", e.Identity)
	}
	fmt.Fprintf(&b, ": %d %s: %s", e.Status, e.Code, e.Message)
	if e.Class != "" {
		fmt.Fprintf(&b, " (%s)", e.Class)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [client-request-id %s]", e.RequestID)
	}
	return b.String()
}

// Is reports a 404 as [cloud.ErrNotFound].
func (e *CmdletError) Is(target error) bool {
	return target == cloud.ErrNotFound && (e.Status == 404 || e.Code == "NotFound")
}

// LimitError is a write refused before it was sent because the service
// would refuse it. It wraps [ErrLimit].
type LimitError struct {
	// Recipient names the recipient.
	Recipient string
	// Attribute is "UserCertificate" or "UserSMimeCertificate".
	Attribute string
	// What says which limit: "values" or "bytes".
	What string
	// Got and Limit are the count or size, and its limit.
	Got, Limit int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("exchange: %s: %s would hold %d %s, the service allows %d", e.Recipient, e.Attribute, e.Got, e.What, e.Limit)
}

// Unwrap returns [ErrLimit].
func (e *LimitError) Unwrap() error { return ErrLimit }

// writeScopeTexts are what the service says when it refuses to change a
// directory-synced object (FACTS.md).
var writeScopeTexts = []string{
	"out of the current user's write scope",
	"being synchronized from your on-premises organization",
}

func isWriteScope(msg string) bool {
	for _, t := range writeScopeTexts {
		if strings.Contains(msg, t) {
			return true
		}
	}
	return false
}
