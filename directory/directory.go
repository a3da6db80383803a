// Package directory defines what smimesync reads from an on-premises
// directory: the [Entry] a source yields for each user or contact, and the
// [Source] interface that streams them.
//
// Implementations live beside the interface: [LDIFFile] reads an RFC 2849
// LDIF file (the embedded default for the demo and for tests), and the
// ldapsource sub-package reads Active Directory and OpenLDAP over LDAP.
package directory

import (
	"context"
	"errors"
	"strings"
)

// Entry is one directory object as a [Source] yields it: the identity
// smimesync needs to find the cloud recipient, and the raw certificate
// values exactly as the directory stores them.
type Entry struct {
	// ID is stable across renames and moves: Active Directory's objectGUID
	// as a GUID string (for example "f1e2d3c4-…"), or OpenLDAP's entryUUID.
	// Sources that have neither (an LDIF file without them) use the DN.
	ID string `json:"id"`
	// DN is the entry's distinguished name.
	DN string `json:"dn"`
	// UserPrincipalName is AD's userPrincipalName, empty when absent.
	UserPrincipalName string `json:"userPrincipalName,omitempty"`
	// Mail is the primary SMTP address (the mail attribute).
	Mail string `json:"mail,omitempty"`
	// ProxyAddresses holds the proxyAddresses values as stored
	// ("SMTP:primary@…", "smtp:alias@…", "X500:…").
	ProxyAddresses []string `json:"proxyAddresses,omitempty"`
	// UserCertificate holds the raw userCertificate values (DER X.509).
	UserCertificate [][]byte `json:"userCertificate,omitempty"`
	// UserSMIMECertificate holds the raw userSMIMECertificate values
	// (CMS SignedData, or Outlook's non-ASN.1 security-settings blob).
	UserSMIMECertificate [][]byte `json:"userSMIMECertificate,omitempty"`
	// Deleted is true when the source reports the object as deleted (a
	// DirSync tombstone, a content-sync delete). Only ID and DN are then
	// meaningful.
	Deleted bool `json:"deleted,omitempty"`
	// Source names the source the entry came from, when several are read
	// in one pass; empty otherwise.
	Source string `json:"source,omitempty"`
}

// Addresses returns the SMTP addresses the entry owns, lower-cased and
// without duplicates: Mail first, then every proxyAddresses value whose
// prefix is "smtp:" in any case. userPrincipalName is not an address and is
// not included.
func (e *Entry) Addresses() []string {
	var out []string
	seen := map[string]bool{}
	add := func(a string) {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" || seen[a] {
			return
		}
		seen[a] = true
		out = append(out, a)
	}
	add(e.Mail)
	for _, p := range e.ProxyAddresses {
		if len(p) > 5 && strings.EqualFold(p[:5], "smtp:") {
			add(p[5:])
		}
	}
	return out
}

// Pass says what a [Source] is asked to read.
type Pass struct {
	// Cookie is what the previous pass's [Result] returned, or nil for a
	// full pass. It is opaque to everyone but the source that made it.
	Cookie []byte
}

// Result is what a [Source] tells at the end of a pass that completed.
type Result struct {
	// Cookie is to be handed back in the next [Pass] for a delta; nil when
	// the source has no delta mechanism (every pass is full).
	Cookie []byte
	// Full is true when the pass read every entry in scope: because no
	// cookie was given, or because the source fell back to a full read (a
	// stale or refused cookie). Entries not seen in a full pass are no
	// longer in scope.
	Full bool
}

// A Source streams directory entries.
//
// Read calls yield once per entry in scope, in an order of the source's
// choosing, and must not hold more than a bounded number of entries in
// memory. If yield returns an error, Read stops and returns it (wrapped or
// as is). A Read that returns an error did not complete: its caller must not
// keep any cookie from it, and the next pass is asked with the previous
// cookie again. The *Entry handed to yield is owned by the callee and is not
// touched by the source afterwards.
type Source interface {
	Read(ctx context.Context, p Pass, yield func(*Entry) error) (Result, error)
}

// A Pruner removes values from the directory itself: the write-back that
// lets an organisation whose users are exported by Microsoft's own sync tool
// keep expired and surplus certificates out of the cloud. It is an optional
// capability of a source (found by type assertion) and is never used unless
// the caller asks for it. values are raw values of attr (one of
// "userCertificate" or "userSMIMECertificate") as the source yielded them.
type Pruner interface {
	Prune(ctx context.Context, e *Entry, attr string, values [][]byte) error
}

// ErrStaleCookie may be wrapped by a source that cannot continue from the
// cookie it was given and is not able to fall back to a full pass on its
// own. Callers answer it by asking again with a nil cookie.
var ErrStaleCookie = errors.New("directory: delta cookie is stale or refused")
