package azauth_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
)

// TestExplainSignIn: each refusal of the token endpoint becomes one line
// naming the AADSTS code and its fix; a login endpoint that does not
// answer is said to be unreachable, with no code.
func TestExplainSignIn(t *testing.T) {
	s, base, opts := emulator(t)
	s.AddSecretApp(tenant, clientID, "s3cret")
	certApp := "22222222-2222-2222-2222-222222222222"
	registered, _, err := azauthtest.NewClientCertificate("registered")
	if err != nil {
		t.Fatal(err)
	}
	s.AddCertificateApp(tenant, certApp, registered)
	_, impostor, err := azauthtest.NewClientCertificate("impostor")
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "impostor.pem")
	if err := os.WriteFile(certFile, impostor, 0o600); err != nil {
		t.Fatal(err)
	}
	// A loopback port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name     string
		cfg      func(azauth.Config) azauth.Config
		secret   string
		code     string
		fixWords string
	}{
		{"wrong secret", func(c azauth.Config) azauth.Config { return c }, "guess", "AADSTS7000215", "Value (not its Secret ID)"},
		{"unknown app", func(c azauth.Config) azauth.Config { c.ClientID = "99999999-9999-9999-9999-999999999999"; return c }, "s3cret", "AADSTS700016", "check client_id and tenant_id"},
		{"unknown tenant", func(c azauth.Config) azauth.Config { c.TenantID = "fabrikam.example"; return c }, "s3cret", "AADSTS90002", "check tenant_id"},
		{"certificate of someone else", func(c azauth.Config) azauth.Config {
			c.ClientID = certApp
			c.Auth = azauth.Auth{Method: azauth.ClientCertificate, CertificateFile: certFile}
			return c
		}, "", "AADSTS700027", "upload the certificate"},
		{"login unreachable", func(c azauth.Config) azauth.Config { c.Endpoints.Login = closed; return c }, "s3cret", "", "cannot be reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := append([]azauth.Option{azauth.WithGetenv(func(string) string { return tt.secret })}, opts...)
			cred, err := tt.cfg(base).Credential(o...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = getToken(t, cred, resource+"/.default")
			if err == nil {
				t.Fatal("got a token, want a refusal")
			}
			got := azauth.ExplainSignIn(err)
			var se *azauth.SignInError
			if !errors.As(got, &se) || !errors.Is(got, azauth.ErrSignIn) {
				t.Fatalf("ExplainSignIn = %T %v, want a *SignInError wrapping ErrSignIn", got, got)
			}
			msg := got.Error()
			if se.Code != tt.code {
				t.Errorf("Code = %q, want %q (%s)", se.Code, tt.code, msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("the error runs to several lines:\n%s", msg)
			}
			if tt.code != "" && strings.Count(msg, tt.code) != 1 {
				t.Errorf("the code %s should appear once: %s", tt.code, msg)
			}
			if !strings.Contains(msg, tt.fixWords) {
				t.Errorf("%q does not say %q", msg, tt.fixWords)
			}
			if !errors.Is(got, err) {
				t.Error("the credential's own error is no longer wrapped")
			}
		})
	}
	if err := azauth.ExplainSignIn(nil); err != nil {
		t.Errorf("ExplainSignIn(nil) = %v", err)
	}
	other := errors.New("something else")
	if got := azauth.ExplainSignIn(other); got != other {
		t.Errorf("ExplainSignIn(other) = %v, want it unchanged", got)
	}
}
