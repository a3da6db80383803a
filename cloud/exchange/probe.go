package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// RequiredRoles are the application permissions the sink's token must
// carry in its roles claim: Exchange.ManageAsApp, granted with admin
// consent under "Office 365 Exchange Online" (FACTS.md). The permission
// alone is not enough: the app's service principal also needs an Exchange
// role, which no token shows (the Entra role Exchange Recipient
// Administrator, or a custom role group holding it); the harmless read
// [Sink.Ping] tells that part.
var RequiredRoles = []azauth.Role{{
	Name: "Exchange.ManageAsApp",
	API:  "Office 365 Exchange Online",
	For:  "app-only calls to the Exchange Online admin endpoint",
}}

// ErrNotProbed is wrapped by the error [Sink.ProbeRoundTrip] returns when
// it wrote nothing: the recipient's certificates could not be read (and
// writing them back unread could clear them), the recipient cannot be
// written, or it holds no certificate to round-trip.
var ErrNotProbed = errors.New("exchange: nothing written")

// Token asks the credential for a token for the Exchange endpoint, as
// every call does, and returns what it says, read without verifying the
// signature (see [azauth.ReadClaims]): which application permissions it
// carries, for whom and until when. A refused sign-in gives an error
// wrapping [ErrUnauthorized].
func (s *Sink) Token(ctx context.Context) (azauth.TokenClaims, error) {
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
	if err != nil {
		return azauth.TokenClaims{}, fmt.Errorf("exchange: getting a token for %s: %w: %w", s.scope, ErrUnauthorized, err)
	}
	return azauth.ReadClaims(tok.Token)
}

// Ping runs Get-Recipient -ResultSize 1, a harmless read that needs the
// token, the tenant, and an Exchange role that lets the app read
// recipients. Regional redirects are followed as for every call (see
// [Sink.Endpoint]).
func (s *Sink) Ping(ctx context.Context) error {
	return s.invoke(ctx, "Get-Recipient", map[string]any{"ResultSize": 1}, false, func([]json.RawMessage) error { return nil })
}

// Endpoint returns the scheme://host:port the sink sends its calls to: the
// configured Exchange endpoint, or the tenant's regional host once a
// redirect named it (Stats.Redirects counts them).
func (s *Sink) Endpoint() string { return s.endpoint() }

// RoundTrip is what [Sink.ProbeRoundTrip] did.
type RoundTrip struct {
	// Recipient names the recipient; Kind is its type.
	Recipient, Kind string
	// Before are the SHA-256 fingerprints (hex, sorted) of the values the
	// recipient held, UserCertificate then UserSMimeCertificate; After
	// those read back after the write.
	Before, After []string
	// Written reports whether the values were written back.
	Written bool
}

// RoundTrips reports whether the values read back after the write are
// those that were written.
func (rt *RoundTrip) RoundTrips() bool { return rt.Written && slices.Equal(rt.Before, rt.After) }

// ProbeRoundTrip tells whether the sink's byte encoding round-trips, on a
// recipient of the administrator's choosing (identity: an address or
// GUID): it reads the recipient's certificates, writes them back
// unchanged with Set-Mailbox, Set-MailUser or Set-MailContact, as a sync
// would, and reads them again.
//
// It writes only what it read: a recipient whose certificates cannot be
// read (the answer carries no bytes, or the call fails), that is
// directory-synced, or that holds none, is left alone, with an error
// wrapping [ErrNotProbed]. A write whose values read back otherwise gives
// a [*ReadBackMismatchError], with the RoundTrip filled in.
func (s *Sink) ProbeRoundTrip(ctx context.Context, identity string) (*RoundTrip, error) {
	r, err := s.getRecipient(ctx, identity)
	if err != nil {
		return nil, fmt.Errorf("exchange: finding %s: %w: %w", identity, ErrNotProbed, err)
	}
	rt := &RoundTrip{Recipient: name(r), Kind: r.Kind}
	if r.ReadOnly != "" {
		return rt, fmt.Errorf("exchange: %s: %w: %s", name(r), ErrNotProbed, r.ReadOnly)
	}
	noun, err := s.noun(ctx, r)
	if err != nil {
		return rt, fmt.Errorf("%w: %w", ErrNotProbed, err)
	}
	before, err := s.read(ctx, r, noun)
	if err != nil {
		return rt, fmt.Errorf("exchange: %s: %w: its certificates cannot be read, and writing them back unread could clear them: %w", name(r), ErrNotProbed, err)
	}
	rt.Before = certFingerprints(before)
	if len(rt.Before) == 0 {
		return rt, fmt.Errorf("exchange: %s: %w: it holds no certificate, so a round trip would not test the byte encoding", name(r), ErrNotProbed)
	}
	params := map[string]any{"Identity": r.ID}
	setByteArrays(params, "UserCertificate", before.UserCertificate)
	setByteArrays(params, "UserSMimeCertificate", before.UserSMIMECertificate)
	if err := s.invoke(ctx, "Set-"+noun, params, true, func([]json.RawMessage) error { return nil }); err != nil {
		var ce *CmdletError
		if errors.As(err, &ce) && isWriteScope(ce.Message) {
			return rt, &cloud.NotWritableError{Recipient: name(r), Reason: ce.Message}
		}
		return rt, fmt.Errorf("exchange: writing %s back: %w", name(r), err)
	}
	rt.Written = true
	after, err := s.read(ctx, r, noun)
	if err != nil {
		return rt, fmt.Errorf("exchange: %s: written back, but not readable again: %w", name(r), err)
	}
	rt.After = certFingerprints(after)
	for _, a := range []struct {
		attr       string
		wrote, got [][]byte
	}{
		{"UserCertificate", before.UserCertificate, after.UserCertificate},
		{"UserSMimeCertificate", before.UserSMIMECertificate, after.UserSMIMECertificate},
	} {
		if w, g := fingerprintsOf(a.wrote), fingerprintsOf(a.got); !slices.Equal(w, g) {
			return rt, &ReadBackMismatchError{Recipient: name(r), Attribute: a.attr, Wrote: w, Read: g}
		}
	}
	return rt, nil
}

// certFingerprints returns the fingerprints of c's values, each attribute's
// sorted, UserCertificate first.
func certFingerprints(c cloud.Certificates) []string {
	return append(fingerprintsOf(c.UserCertificate), fingerprintsOf(c.UserSMIMECertificate)...)
}
