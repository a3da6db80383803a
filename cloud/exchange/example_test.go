package exchange_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory"
)

// A sink against the emulators: in production only the identity, Auth and
// Cloud are set, and the secret comes from the environment.
func ExampleNew() {
	tokens := azauthtest.NewServer()
	defer tokens.Close()
	tokens.AddSecretApp("contoso.onmicrosoft.com", "11111111-1111-1111-1111-111111111111", "s3cret")
	exo := exchangetest.NewServer(exchangetest.Config{Tokens: tokens, TenantID: "contoso.onmicrosoft.com"})
	defer exo.Close()
	exo.Add(exchangetest.Recipient{Guid: "0a000000-0000-0000-0000-000000000001", PrimarySmtpAddress: "alice@contoso.com"})

	secretFile := writeSecret("s3cret")
	defer os.Remove(secretFile)
	sink, err := exchange.New(exchange.Config{
		Config: azauth.Config{
			TenantID:  "contoso.onmicrosoft.com",
			ClientID:  "11111111-1111-1111-1111-111111111111",
			Auth:      azauth.Auth{SecretFile: secretFile},
			Endpoints: azauth.Endpoints{Login: tokens.URL, Exchange: exo.URL},
		},
		HTTPClient: tokens.Client(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	r, err := sink.Find(ctx, &directory.Entry{DN: "CN=Alice", Mail: "alice@contoso.com"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Name, r.Kind)
	err = sink.Write(ctx, r, cloud.Certificates{UserCertificate: [][]byte{{0x30, 0x03, 0x02, 0x01, 0x01}}})
	fmt.Println("write:", err)
	c, err := sink.Current(ctx, r)
	fmt.Println("read back:", len(c.UserCertificate), "certificate,", errors.Is(err, cloud.ErrUnreadable))
	// Output:
	// alice@contoso.com UserMailbox
	// write: <nil>
	// read back: 1 certificate, false
}

// writeSecret puts a secret in a temporary file, as a secret_file would be.
func writeSecret(s string) string {
	f, err := os.CreateTemp("", "secret")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	_, _ = f.WriteString(s)
	return f.Name()
}
