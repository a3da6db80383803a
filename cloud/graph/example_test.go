package graph_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/graph"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// exampleCertificate issues a certificate for alice@contoso.com from a CA
// named DC=com, DC=contoso, CN=Contoso Mail CA, with serial 0x2a.
func exampleCertificate() *x509.Certificate {
	caName := pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
		{Type: []int{0, 9, 2342, 19200300, 100, 1, 25}, Value: "com"},
		{Type: []int{0, 9, 2342, 19200300, 100, 1, 25}, Value: "contoso"},
		{Type: []int{2, 5, 4, 3}, Value: "Contoso Mail CA"},
	}}
	ca, err := testpki.New("", testpki.Subject(caName))
	if err != nil {
		panic(err)
	}
	c, err := ca.Issue(testpki.SerialNumber(42), testpki.CommonName("Alice"), testpki.Email("alice@contoso.com"))
	if err != nil {
		panic(err)
	}
	return c.X509()
}

func ExampleCertificateUserID() {
	c := exampleCertificate()
	for _, f := range []graph.Format{graph.FormatIssuerSerial, graph.FormatRFC822} {
		v, err := graph.CertificateUserID(c, f)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(v)
	}
	// Output:
	// X509:<I>DC=com,DC=contoso,CN=Contoso Mail CA<SR>2a
	// X509:<RFC822>alice@contoso.com
}

// ExampleNew wires the sink to a tenant: here the token and Graph
// emulators; in production the same azauth configuration with a real
// tenant, client id and secret, and no endpoint overrides.
func ExampleNew() {
	tokens := azauthtest.NewServer()
	defer tokens.Close()
	tokens.AddSecretApp("contoso.onmicrosoft.com", "11111111-1111-1111-1111-111111111111", "s3cret")
	tenant := graphtest.NewServer(graphtest.Config{Tokens: tokens, Users: []graphtest.User{
		{ID: "5e1f…", UserPrincipalName: "alice@contoso.com", CertificateUserIDs: []string{"X509:<PN>alice@contoso.com"}},
	}})
	defer tenant.Close()

	auth := azauth.Config{
		TenantID:  "contoso.onmicrosoft.com",
		ClientID:  "11111111-1111-1111-1111-111111111111",
		Auth:      azauth.Auth{Method: azauth.ClientSecret, SecretEnv: "SMIMESYNC_CLIENT_SECRET"},
		Endpoints: azauth.Endpoints{Login: tokens.URL, Graph: tenant.URL},
	}
	cred, err := auth.Credential(azauth.WithHTTPClient(tokens.Client()),
		azauth.WithGetenv(func(string) string { return "s3cret" }))
	if err != nil {
		fmt.Println(err)
		return
	}
	endpoints, _ := auth.ResolvedEndpoints()
	sink, err := graph.New(graph.Config{
		CertificateUserIDs: graph.CertificateUserIDs{Format: graph.FormatIssuerSerial},
		Credential:         cred,
		Endpoints:          endpoints,
		HTTPClient:         tenant.Client(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	r, err := sink.Find(ctx, &directory.Entry{ID: "CN=Alice", DN: "CN=Alice", UserPrincipalName: "alice@contoso.com"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := sink.Write(ctx, r, cloud.Certificates{UserCertificate: [][]byte{exampleCertificate().Raw}}); err != nil {
		fmt.Println(err)
		return
	}
	u, _ := tenant.User(r.ID)
	fmt.Println(r.Name, r.Kind)
	for _, v := range u.CertificateUserIDs {
		fmt.Println(v)
	}
	// Output:
	// alice@contoso.com User
	// X509:<PN>alice@contoso.com
	// X509:<I>DC=com,DC=contoso,CN=Contoso Mail CA<SR>2a
}
