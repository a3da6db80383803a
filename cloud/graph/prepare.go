package graph

import (
	"context"
	"errors"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// Prepare implements [cloud.Preparer]: it gets a token for the Graph
// endpoint, so that a refused sign-in fails the pass even when nothing is
// to be published. The credential caches its token, so a pass with a
// valid token sends nothing. The error wraps [cloud.ErrUnavailable] and
// [azauth.ErrSignIn], and says in one line which AADSTS code Microsoft
// Entra gave and what to do about it.
func (s *Sink) Prepare(ctx context.Context) error {
	_, err := s.cfg.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.cfg.Endpoints.GraphScope()}})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return signInError(err)
	}
	return nil
}

// signInError is the error of a failed token request, explained by azauth
// and marked run-wide.
func signInError(err error) error {
	return cloud.Unavailable(&tokenError{err: azauth.ExplainSignIn(err)})
}

// tokenError says that no token could be had for Graph.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "graph: getting a token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// isTokenFailure reports whether err is the credential's failure to get a
// token, as kiota hands it up.
func isTokenFailure(err error) bool {
	var afe *azidentity.AuthenticationFailedError
	return errors.As(err, &afe) || errors.Is(err, azauth.ErrSignIn)
}
