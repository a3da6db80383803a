package graph

import (
	"errors"
	"fmt"
	"strings"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// Sentinels the sink's errors wrap.
var (
	// ErrConfig is wrapped by every error about a configuration that
	// cannot work.
	ErrConfig = errors.New("graph: invalid configuration")
	// ErrAmbiguous means more than one Entra user matches a directory
	// entry at the same rank (two users with the entry's UPN, mail or
	// proxy address); the sink does not guess.
	ErrAmbiguous = errors.New("graph: more than one user matches")
	// ErrThrottled means Graph kept answering 429 for one request past
	// RetryPolicy.MaxThrottled.
	ErrThrottled = errors.New("graph: throttled")
	// ErrValueInUse means a certificateUserIds value is already held by
	// another user of the tenant (values are unique in a tenant).
	ErrValueInUse = errors.New("graph: certificateUserIds value held by another user")
	// ErrNoValue means a certificate yields no value in the configured
	// format (no subject key identifier, no e-mail address, too long).
	ErrNoValue = errors.New("graph: certificate yields no certificateUserIds value")
)

// ConfigError names the configuration field at fault. It wraps
// [ErrConfig] and, when the fault was found by the azauth package (the
// endpoints), azauth's own error as Err.
type ConfigError struct {
	// Field is the YAML name of the field ("certificate_user_ids.format").
	Field string
	// Reason says what is wrong with it.
	Reason string
	// Err is the error the fault was found as, if any (an
	// [*azauth.ConfigError]).
	Err error
}

// Error names the field and the reason.
func (e *ConfigError) Error() string { return fmt.Sprintf("graph: %s: %s", e.Field, e.Reason) }

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

// ServiceError is an error answer from Graph to one request.
//
// It wraps a sentinel a caller can test with errors.Is: [ErrThrottled] for
// 429, [ErrValueInUse] for a uniqueness conflict, [cloud.ErrNotFound] for
// 404, [cloud.ErrNotWritable] for a refused write to a directory-synced
// user; nothing otherwise.
type ServiceError struct {
	// Op says what was asked ("PATCH user 0c1…", "GET users").
	Op string
	// Status is the HTTP status.
	Status int
	// Code is the Graph error's code ("Request_BadRequest").
	Code string
	// Message is the Graph error's message.
	Message string
	// ClientRequestID is the client-request-id of the request, for
	// Microsoft support.
	ClientRequestID string
}

// Error names the request, the status and Graph's code and message.
func (e *ServiceError) Error() string {
	s := fmt.Sprintf("graph: %s: %d %s: %s", e.Op, e.Status, e.Code, e.Message)
	if e.ClientRequestID != "" {
		s += " (client-request-id " + e.ClientRequestID + ")"
	}
	return s
}

// Unwrap returns the sentinel the answer stands for, or nil.
func (e *ServiceError) Unwrap() error {
	switch {
	case e.Status == 429:
		return ErrThrottled
	case e.Status == 404:
		return cloud.ErrNotFound
	case isSyncedRefusal(e.Message):
		return cloud.ErrNotWritable
	case isValueInUse(e.Message):
		return ErrValueInUse
	}
	return nil
}

// isSyncedRefusal recognises Graph's refusal to write a property of a
// directory-synced object ("Unable to update the specified properties for
// on-premises mastered Directory Sync objects or objects currently
// undergoing migration.", 400 Request_BadRequest). Unconfirmed for
// certificateUserIds: it is the message Graph gives for other properties
// of synced users; the sink does not rely on it alone, since it refuses to
// write a user the lookup saw with onPremisesSyncEnabled.
func isSyncedRefusal(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "on-premises mastered") || strings.Contains(m, "directory sync objects")
}

// isValueInUse recognises Graph's refusal of a value another user holds.
// Unconfirmed: the wording is the one Graph uses for other unique
// properties ("Another object with the same value for property
// userPrincipalName already exists."), with certificateUserIds named.
func isValueInUse(msg string) bool {
	return strings.Contains(msg, "same value for property") && strings.Contains(strings.ToLower(msg), "certificateuserids")
}

// AmbiguousError says which users match a directory entry at the same rank.
// It wraps [ErrAmbiguous].
type AmbiguousError struct {
	// Entry names the directory entry (its DN).
	Entry string
	// Key is how they matched ("userPrincipalName alice@example.com").
	Key string
	// Users are the matching users' ids.
	Users []string
}

// Error names the entry, the key and the users.
func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("graph: entry %s: %d users match by %s: %s", e.Entry, len(e.Users), e.Key, strings.Join(e.Users, ", "))
}

// Unwrap returns [ErrAmbiguous].
func (e *AmbiguousError) Unwrap() error { return ErrAmbiguous }

// CertificateError says why one certificate yields no certificateUserIds
// value. It wraps [ErrNoValue] or the parser's error.
type CertificateError struct {
	// Fingerprint is the SHA-256 of the certificate's DER, hex.
	Fingerprint string
	// Err is the cause.
	Err error
}

// Error names the certificate by fingerprint, and the cause.
func (e *CertificateError) Error() string {
	return fmt.Sprintf("graph: certificate %s: %v", e.Fingerprint, e.Err)
}

// Unwrap returns the cause.
func (e *CertificateError) Unwrap() error { return e.Err }
