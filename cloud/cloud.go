// Package cloud defines where smimesync publishes certificates: the [Sink]
// interface, the types it speaks, and [FileSink], a sink that keeps what each
// recipient carries in a JSON file (for the demo and for dry runs).
//
// Sinks for Microsoft's services live in sub-packages: exchange writes
// UserCertificate and UserSMimeCertificate on Exchange Online recipients,
// graph finds Entra ID users and writes certificate-based sign-in bindings.
// Each has an emulator for tests in a sub-package of its own.
package cloud

import (
	"context"
	"errors"
	"fmt"

	"github.com/smimesync/go-smimesync/directory"
)

// Attribute names, as smimesync reports them and sinks receive them.
const (
	// AttrUserCertificate is userCertificate: DER X.509 certificates.
	AttrUserCertificate = "userCertificate"
	// AttrUserSMIMECertificate is userSMIMECertificate: CMS SignedData blobs.
	AttrUserSMIMECertificate = "userSMIMECertificate"
)

// Recipient is a cloud object that can carry a user's certificates, as a
// [Sink] found it.
type Recipient struct {
	// ID is the sink's own stable identifier (an Exchange GUID, an Entra
	// object id, an address for a file sink).
	ID string `json:"id"`
	// Name is what a person recognises: the primary SMTP address or UPN.
	Name string `json:"name,omitempty"`
	// Kind is the sink's type for the object ("UserMailbox", "MailUser",
	// "MailContact", "User").
	Kind string `json:"kind,omitempty"`
	// ReadOnly, when not empty, says why the sink cannot write this
	// recipient (for example "directory-synced: only Entra Connect may
	// change it"). The Syncer skips such recipients as
	// smimesync.SkipReadOnly, with this text as the Change's Detail.
	ReadOnly string `json:"read_only,omitempty"`
}

// Certificates is a set of certificate values, per attribute, as raw bytes.
// Order carries no meaning.
type Certificates struct {
	// UserCertificate holds DER X.509 certificates.
	UserCertificate [][]byte `json:"userCertificate"`
	// UserSMIMECertificate holds CMS SignedData blobs.
	UserSMIMECertificate [][]byte `json:"userSMIMECertificate"`
}

// Len returns the number of values in both attributes.
func (c Certificates) Len() int { return len(c.UserCertificate) + len(c.UserSMIMECertificate) }

// A Sink publishes certificates to recipients.
//
// Find returns the recipient that should carry the certificates of entry, or
// an error wrapping [ErrNotFound] when there is none. A recipient that exists
// but cannot be written is returned with ReadOnly set, not as an error.
//
// Current returns the certificates the recipient carries now. A sink that
// cannot read them back faithfully returns an error wrapping
// [ErrUnreadable]; the caller then relies on what it last published.
//
// Write replaces the recipient's certificates with c: values not in c are
// removed. Writing the set the recipient already carries must be harmless.
// A refusal because the object is not writable wraps [ErrNotWritable].
//
// All methods must be safe for concurrent use.
type Sink interface {
	Find(ctx context.Context, entry *directory.Entry) (*Recipient, error)
	Current(ctx context.Context, r *Recipient) (Certificates, error)
	Write(ctx context.Context, r *Recipient, c Certificates) error
}

var (
	// ErrNotFound means no cloud recipient matches a directory entry.
	ErrNotFound = errors.New("cloud: recipient not found")
	// ErrUnreadable means a sink cannot read back what a recipient carries.
	ErrUnreadable = errors.New("cloud: certificates cannot be read back")
	// ErrNotWritable means the service refused a write because the object
	// may not be changed by this client (for example a directory-synced
	// object).
	ErrNotWritable = errors.New("cloud: recipient is not writable")
)

// NotWritableError is returned by a sink's Write when the service refuses to
// change a recipient. It wraps [ErrNotWritable].
type NotWritableError struct {
	// Recipient names the recipient (its Name, or ID).
	Recipient string
	// Reason is the service's explanation.
	Reason string
}

func (e *NotWritableError) Error() string {
	return fmt.Sprintf("cloud: recipient %s is not writable: %s", e.Recipient, e.Reason)
}

// Unwrap returns [ErrNotWritable].
func (e *NotWritableError) Unwrap() error { return ErrNotWritable }

// ErrUnavailable is wrapped by a sink's error that concerns the whole run,
// not the one recipient it was met on: the sign-in was refused, the tenant
// does not exist, the endpoint cannot be reached. Every other call would
// fail the same way, so the Syncer stops the pass at the first one and
// reports it once, instead of once per user. Make one with [Unavailable].
var ErrUnavailable = errors.New("cloud: the service cannot be used")

// unavailableError marks err as run-wide; its text is err's own.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// Unavailable returns err marked as run-wide: errors.Is(result,
// [ErrUnavailable]) holds, err stays reachable with errors.Is and
// errors.As, and the text is err's own. Unavailable(nil) is nil.
func Unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return &unavailableError{err: err}
}

// A Preparer is a [Sink] that can make sure, before a pass, that it can use
// its service at all: typically it gets a token, so that a refused sign-in
// fails the pass even when the directory brought no change to publish.
// The Syncer calls Prepare at the start of every Plan; an error (which
// should wrap [ErrUnavailable]) ends the pass before the directory is read.
// Prepare must be cheap when nothing changed (a cached token).
type Preparer interface {
	Prepare(ctx context.Context) error
}

// A ConcurrencyHinter is a [Sink] that says how many calls at once suit
// it: a sink that packs concurrent calls into batch requests needs enough
// of them to fill a batch, and one that bounds its requests in flight
// gains nothing from more callers than that bound. A Syncer whose own
// Concurrency is 0 makes PreferredConcurrency calls at once (bounded by
// its maximum); a value of 0 or less leaves the Syncer's default.
type ConcurrencyHinter interface {
	PreferredConcurrency() int
}
