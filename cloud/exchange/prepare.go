package exchange

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// Prepare implements [cloud.Preparer]: it gets a token for the Exchange
// endpoint, so that a refused sign-in (a wrong or expired secret, an
// unknown tenant) fails the pass even when nothing is to be published.
// The credential caches its token, so a pass with a valid token sends
// nothing. The error wraps [ErrUnauthorized], [cloud.ErrUnavailable] and
// [azauth.ErrSignIn], and says in one line which AADSTS code Microsoft
// Entra gave and what to do about it.
func (s *Sink) Prepare(ctx context.Context) error {
	if _, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}}); err != nil {
		return s.tokenError(ctx, err)
	}
	return nil
}

// tokenError is the error of a failed token request: a cancelled context
// as it is, anything else explained by azauth and marked run-wide.
func (s *Sink) tokenError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &tokenError{scope: s.scope, err: azauth.ExplainSignIn(err)}
}

// tokenError says that no token could be had for scope.
type tokenError struct {
	scope string
	err   error
}

func (e *tokenError) Error() string {
	return "exchange: getting a token for " + e.scope + ": " + e.err.Error()
}

func (e *tokenError) Unwrap() []error {
	return []error{ErrUnauthorized, cloud.ErrUnavailable, e.err}
}
