package azauth_test

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
)

// Signing in with a client secret against the token emulator; in production
// Endpoints stays empty and Cloud names the national cloud.
func ExampleConfig_Credential() {
	tokens := azauthtest.NewServer()
	defer tokens.Close()
	tokens.AddSecretApp("contoso.onmicrosoft.com", "11111111-1111-1111-1111-111111111111", "s3cret")

	cfg := azauth.Config{
		TenantID:  "contoso.onmicrosoft.com",
		ClientID:  "11111111-1111-1111-1111-111111111111",
		Auth:      azauth.Auth{Method: azauth.ClientSecret, SecretEnv: "SMIMESYNC_CLIENT_SECRET"},
		Endpoints: azauth.Endpoints{Login: tokens.URL},
	}
	cred, err := cfg.Credential(
		azauth.WithHTTPClient(tokens.Client()),
		azauth.WithGetenv(func(string) string { return "s3cret" }), // os.Getenv by default
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	ep, _ := cfg.ResolvedEndpoints()
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{ep.ExchangeScope()}})
	if err != nil {
		fmt.Println(err)
		return
	}
	claims, err := tokens.Verify(tok.Token, ep.Exchange)
	fmt.Println(claims.Audience, claims.AppID, err)
	// Output: https://outlook.office365.com 11111111-1111-1111-1111-111111111111 <nil>
}
