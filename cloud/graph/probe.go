package graph

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// RequiredRoles are the application permissions (Microsoft Graph, granted
// with admin consent) the sink's token must carry in its roles claim: one
// to read users (the listing and per-user reads, with authorizationInfo),
// one to change them (PATCH /users/{id} with
// authorizationInfo.certificateUserIds).
//
// Unconfirmed: Microsoft documents User.ReadWrite.All for updating a user;
// whether certificateUserIds needs a narrower or further permission is
// not confirmed. Writing it for a cloud-only user also needs the Entra
// role Privileged Authentication Administrator for the app, which no token
// shows. This is the only list of them.
var RequiredRoles = []azauth.Role{
	{Name: "User.Read.All", Or: []string{"User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"},
		API: "Microsoft Graph", For: "finding users (GET /users with authorizationInfo)"},
	{Name: "User.ReadWrite.All", Or: []string{"Directory.ReadWrite.All"},
		API: "Microsoft Graph", For: "writing certificateUserIds (PATCH /users/{id})"},
}

// Token asks the credential for a token for the Graph endpoint, as every
// request does, and returns what it says, read without verifying the
// signature (see [azauth.ReadClaims]).
func (s *Sink) Token(ctx context.Context) (azauth.TokenClaims, error) {
	scope := s.cfg.Endpoints.GraphScope()
	tok, err := s.cfg.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		return azauth.TokenClaims{}, fmt.Errorf("graph: getting a token for %s: %w", scope, err)
	}
	return azauth.ReadClaims(tok.Token)
}

// Ping reads one user with authorizationInfo
// (GET /users?$top=1&$select=id,authorizationInfo): a harmless read that
// needs the token and a permission to read users. A refusal is a
// [*ServiceError].
func (s *Sink) Ping(ctx context.Context) error {
	top := int32(1)
	_, err := s.users.Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Select: []string{"id", "authorizationInfo"}, Top: &top},
	})
	if err != nil {
		return fmt.Errorf("graph: reading one user: %w", serviceError("GET users", err))
	}
	return nil
}
