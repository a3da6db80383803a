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
