package azauth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.yaml.in/yaml/v3"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
)

const (
	tenant   = "00000000-0000-0000-0000-000000000001"
	clientID = "11111111-1111-1111-1111-111111111111"
	resource = "https://outlook.office365.com"
)

func TestYAMLConfigs(t *testing.T) {
	b, err := os.ReadFile("testdata/configs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfgs map[string]azauth.Config
	if err := yaml.Unmarshal(b, &cfgs); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		method   azauth.Method
		login    string
		exchange string
		graph    string
	}{
		"worldwide_secret":     {azauth.ClientSecret, "https://login.microsoftonline.com", "https://outlook.office365.com", "https://graph.microsoft.com"},
		"gcc_high_certificate": {azauth.ClientCertificate, "https://login.microsoftonline.us", "https://outlook.office365.us", "https://graph.microsoft.us"},
		"china_override":       {azauth.ManagedIdentity, "https://login.chinacloudapi.cn", "https://exchange.example.cn", "https://microsoftgraph.chinacloudapi.cn"},
	}
	if len(cfgs) != len(want) {
		t.Fatalf("got %d configs, want %d", len(cfgs), len(want))
	}
	for name, w := range want {
		c, ok := cfgs[name]
		if !ok {
			t.Errorf("%s: missing", name)
			continue
		}
		ep, err := c.ResolvedEndpoints()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.Auth.Method != w.method || ep.Login != w.login || ep.Exchange != w.exchange || ep.Graph != w.graph {
			t.Errorf("%s: method %q endpoints %+v, want %q %s %s %s", name, c.Auth.Method, ep, w.method, w.login, w.exchange, w.graph)
		}
	}
	if got := cfgs["worldwide_secret"].Endpoints; got != (azauth.Endpoints{}) {
		t.Errorf("worldwide_secret endpoints override = %+v, want empty", got)
	}
}

func TestScopes(t *testing.T) {
	for _, c := range []azauth.Cloud{"", azauth.Worldwide, azauth.USGovHigh, azauth.USGovDoD, azauth.China} {
		ep, err := c.Endpoints()
		if err != nil {
			t.Fatalf("%q: %v", c, err)
		}
		if ep.ExchangeScope() != ep.Exchange+"/.default" || ep.GraphScope() != ep.Graph+"/.default" {
			t.Errorf("%q: scopes %s %s", c, ep.ExchangeScope(), ep.GraphScope())
		}
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := azauth.WithGetenv(func(string) string { return "" })
	tests := []struct {
		name    string
		cfg     azauth.Config
		field   string // "" when the error is not a *ConfigError
		wantErr error
	}{
		{"unknown cloud", azauth.Config{TenantID: tenant, ClientID: clientID, Cloud: "moon"}, "cloud", azauth.ErrConfig},
		{"endpoint with path", azauth.Config{TenantID: tenant, ClientID: clientID, Endpoints: azauth.Endpoints{Login: "https://login.example/tenant"}}, "endpoints.login", azauth.ErrConfig},
		{"endpoint not a URL", azauth.Config{TenantID: tenant, ClientID: clientID, Endpoints: azauth.Endpoints{Graph: "graph.example"}}, "endpoints.graph", azauth.ErrConfig},
		{"no tenant", azauth.Config{ClientID: clientID}, "tenant_id", azauth.ErrConfig},
		{"bad tenant", azauth.Config{TenantID: "contoso/evil", ClientID: clientID}, "tenant_id", azauth.ErrConfig},
		{"no client", azauth.Config{TenantID: tenant}, "client_id", azauth.ErrConfig},
		{"secret env unset", azauth.Config{TenantID: tenant, ClientID: clientID, Auth: azauth.Auth{SecretEnv: "NOPE"}}, "auth.secret_env", azauth.ErrConfig},
		{"default secret env unset", azauth.Config{TenantID: tenant, ClientID: clientID}, "auth.secret_env", azauth.ErrConfig},
		{"secret file empty", azauth.Config{TenantID: tenant, ClientID: clientID, Auth: azauth.Auth{SecretFile: empty}}, "auth.secret_file", azauth.ErrConfig},
		{"secret file missing", azauth.Config{TenantID: tenant, ClientID: clientID, Auth: azauth.Auth{SecretFile: filepath.Join(dir, "missing")}}, "", os.ErrNotExist},
		{"certificate file unset", azauth.Config{TenantID: tenant, ClientID: clientID, Auth: azauth.Auth{Method: azauth.ClientCertificate}}, "auth.certificate_file", azauth.ErrConfig},
		{"certificate garbage", azauth.Config{TenantID: tenant, ClientID: clientID, Auth: azauth.Auth{Method: azauth.ClientCertificate, CertificateFile: garbage}}, "", nil},
		{"workload without token file", azauth.Config{TenantID: tenant, ClientID: clientID, Auth: azauth.Auth{Method: azauth.WorkloadIdentity}}, "auth.token_file", azauth.ErrConfig},
		{"unknown method", azauth.Config{TenantID: tenant, ClientID: clientID, Auth: azauth.Auth{Method: "kerberos"}}, "auth.method", azauth.ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred, err := tt.cfg.Credential(getenv)
			if err == nil {
				t.Fatalf("got credential %T, want error", cred)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
			var ce *azauth.ConfigError
			if tt.field != "" && (!errors.As(err, &ce) || ce.Field != tt.field) {
				t.Errorf("error %v: want a *ConfigError for field %q", err, tt.field)
			}
		})
	}
}

// emulator starts a token server and returns a config pointing at it.
func emulator(t *testing.T) (*azauthtest.Server, azauth.Config, []azauth.Option) {
	t.Helper()
	s := azauthtest.NewServer()
	t.Cleanup(s.Close)
	cfg := azauth.Config{
		TenantID:  tenant,
		ClientID:  clientID,
		Endpoints: azauth.Endpoints{Login: s.URL},
	}
	opts := []azauth.Option{
		azauth.WithHTTPClient(s.Client()),
		azauth.WithRetry(policy.RetryOptions{MaxRetries: -1}),
	}
	return s, cfg, opts
}

func getToken(t *testing.T, cred azcore.TokenCredential, scope string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	return tok.Token, err
}

func TestCredentialMethods(t *testing.T) {
	s, base, opts := emulator(t)
	dir := t.TempDir()

	// client secret, from the environment and from a file
	s.AddSecretApp(tenant, clientID, "s3cret")
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// client certificate
	certApp := "22222222-2222-2222-2222-222222222222"
	cert, pemBytes, err := azauthtest.NewClientCertificate("smimesync test app")
	if err != nil {
		t.Fatal(err)
	}
	s.AddCertificateApp(tenant, certApp, cert)
	certFile := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(certFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	// workload identity
	fedApp := "33333333-3333-3333-3333-333333333333"
	s.AddFederatedApp(tenant, fedApp, "eyJhbGciOiJSUzI1NiJ9.k8s-service-account.sig")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("eyJhbGciOiJSUzI1NiJ9.k8s-service-account.sig"), 0o600); err != nil {
		t.Fatal(err)
	}
	// managed identity, App Service protocol
	miClient := "44444444-4444-4444-4444-444444444444"
	endpoint, header := s.AddManagedIdentity(tenant, miClient)
	t.Setenv("IDENTITY_ENDPOINT", endpoint)
	t.Setenv("IDENTITY_HEADER", header)

	with := func(client string, a azauth.Auth) azauth.Config {
		c := base
		c.ClientID = client
		c.Auth = a
		return c
	}
	tests := []struct {
		name   string
		cfg    azauth.Config
		getenv map[string]string
		method string
		app    string
	}{
		{"secret env", with(clientID, azauth.Auth{SecretEnv: "MY_SECRET"}), map[string]string{"MY_SECRET": "s3cret"}, "client_secret", clientID},
		{"secret default env", with(clientID, azauth.Auth{}), map[string]string{azauth.DefaultSecretEnv: "s3cret"}, "client_secret", clientID},
		{"secret file", with(clientID, azauth.Auth{Method: azauth.ClientSecret, SecretFile: secretFile}), nil, "client_secret", clientID},
		{"certificate", with(certApp, azauth.Auth{Method: azauth.ClientCertificate, CertificateFile: certFile}), nil, "client_certificate", certApp},
		{"certificate with chain", with(certApp, azauth.Auth{Method: azauth.ClientCertificate, CertificateFile: certFile, SendCertificateChain: true}), nil, "client_certificate", certApp},
		{"workload identity", with(fedApp, azauth.Auth{Method: azauth.WorkloadIdentity, TokenFile: tokenFile}), nil, "workload_identity", fedApp},
		{"managed identity", with(miClient, azauth.Auth{Method: azauth.ManagedIdentity}), nil, "managed_identity", miClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := append([]azauth.Option{azauth.WithGetenv(func(k string) string { return tt.getenv[k] })}, opts...)
			cred, err := tt.cfg.Credential(o...)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := getToken(t, cred, resource+"/.default")
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.Verify(tok, resource)
			if err != nil {
				t.Fatal(err)
			}
			if c.AppID != tt.app || c.TenantID != tenant || c.Method != tt.method {
				t.Errorf("claims %+v, want app %s tenant %s method %s", c, tt.app, tenant, tt.method)
			}
			if _, err := s.Verify(tok, "https://graph.microsoft.com"); !errors.Is(err, azauthtest.ErrWrongAudience) {
				t.Errorf("Verify for another audience: %v, want ErrWrongAudience", err)
			}
		})
	}
}

func TestCredentialRefused(t *testing.T) {
	s, base, opts := emulator(t)
	s.AddSecretApp(tenant, clientID, "s3cret")
	other, _, err := azauthtest.NewClientCertificate("not registered")
	if err != nil {
		t.Fatal(err)
	}
	certApp := "22222222-2222-2222-2222-222222222222"
	s.AddCertificateApp(tenant, certApp, other)
	_, pemBytes, err := azauthtest.NewClientCertificate("impostor")
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "impostor.pem")
	if err := os.WriteFile(certFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cfg    func(azauth.Config) azauth.Config
		secret string
	}{
		{"wrong secret", func(c azauth.Config) azauth.Config { return c }, "guess"},
		{"unknown app", func(c azauth.Config) azauth.Config { c.ClientID = "99999999-9999-9999-9999-999999999999"; return c }, "s3cret"},
		{"unknown tenant", func(c azauth.Config) azauth.Config { c.TenantID = "fabrikam.example"; return c }, "s3cret"},
		{"certificate of someone else", func(c azauth.Config) azauth.Config {
			c.ClientID = certApp
			c.Auth = azauth.Auth{Method: azauth.ClientCertificate, CertificateFile: certFile}
			return c
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Refused()
			o := append([]azauth.Option{azauth.WithGetenv(func(string) string { return tt.secret })}, opts...)
			cred, err := tt.cfg(base).Credential(o...)
			if err != nil {
				t.Fatal(err)
			}
			if tok, err := getToken(t, cred, resource+"/.default"); err == nil {
				t.Fatalf("got token %.20s…, want refusal", tok)
			}
			if s.Refused() != before+1 {
				t.Errorf("server refused %d requests, want 1", s.Refused()-before)
			}
		})
	}
}

func TestWrongAudienceOnDemand(t *testing.T) {
	s, cfg, opts := emulator(t)
	s.AddSecretApp(tenant, clientID, "s3cret")
	s.SetAudience(tenant, clientID, "https://graph.microsoft.com")
	cred, err := cfg.Credential(append(opts, azauth.WithGetenv(func(string) string { return "s3cret" }))...)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := getToken(t, cred, resource+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(tok, resource); !errors.Is(err, azauthtest.ErrWrongAudience) {
		t.Fatalf("Verify: %v, want ErrWrongAudience", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	s := azauthtest.NewServer()
	defer s.Close()
	other := azauthtest.NewServer()
	defer other.Close()
	now := time.Now()
	good := azauthtest.Claims{Audience: resource, TenantID: tenant, AppID: clientID, IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()}
	expired := good
	expired.Expires = now.Add(-time.Minute).Unix()
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"good", s.Issue(good), nil},
		{"expired", s.Issue(expired), azauthtest.ErrInvalidToken},
		{"other server's", other.Issue(good), azauthtest.ErrInvalidToken},
		{"not a JWT", "opaque", azauthtest.ErrInvalidToken},
		{"tampered", s.Issue(good) + "x", azauthtest.ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Verify(tt.token, resource+"/")
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
}
