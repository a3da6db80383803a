package azauth

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azcloud "github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Method is how the application signs in to Microsoft Entra.
type Method string

// The sign-in methods [Config.Credential] knows.
const (
	// ClientSecret signs in with the application's client secret, read from
	// [Auth.SecretEnv] or [Auth.SecretFile]. It is the default.
	ClientSecret Method = "client_secret"
	// ClientCertificate signs in with a certificate and its private key
	// (PEM or PKCS#12) from [Auth.CertificateFile].
	ClientCertificate Method = "client_certificate"
	// ManagedIdentity uses the Azure resource's managed identity; a
	// non-empty [Config.ClientID] picks a user-assigned identity.
	ManagedIdentity Method = "managed_identity"
	// WorkloadIdentity exchanges a federated token (a Kubernetes service
	// account token) read from [Auth.TokenFile].
	WorkloadIdentity Method = "workload_identity"
)

// DefaultSecretEnv is the environment variable a client secret is read from
// when neither [Auth.SecretEnv] nor [Auth.SecretFile] is set.
const DefaultSecretEnv = "SMIMESYNC_CLIENT_SECRET"

// Auth says how to sign in. Secrets never sit in the configuration itself:
// they are named by environment variable or file.
type Auth struct {
	// Method is the sign-in method; empty means [ClientSecret].
	Method Method `yaml:"method"`
	// SecretEnv names the environment variable holding the client secret
	// (default [DefaultSecretEnv] when SecretFile is empty too).
	SecretEnv string `yaml:"secret_env"`
	// SecretFile is a file holding the client secret (surrounding white
	// space is ignored).
	SecretFile string `yaml:"secret_file"`
	// CertificateFile holds the client certificate and its private key,
	// PEM or PKCS#12.
	CertificateFile string `yaml:"certificate_file"`
	// CertificatePasswordEnv names the environment variable holding the
	// password of an encrypted PKCS#12 CertificateFile.
	CertificatePasswordEnv string `yaml:"certificate_password_env"`
	// SendCertificateChain sends the certificate chain with each token
	// request (x5c), as subject name/issuer authentication needs.
	SendCertificateChain bool `yaml:"send_certificate_chain"`
	// TokenFile is the federated token file for [WorkloadIdentity]; empty
	// means the AZURE_FEDERATED_TOKEN_FILE environment variable.
	TokenFile string `yaml:"token_file"`
}

// Config is the identity of the application in a tenant and how it signs
// in. It is embedded in each Microsoft 365 sink's configuration.
type Config struct {
	// TenantID is the Entra tenant: its GUID or a verified domain.
	TenantID string `yaml:"tenant_id"`
	// ClientID is the application (client) id.
	ClientID string `yaml:"client_id"`
	// Auth says how the application signs in.
	Auth Auth `yaml:"auth"`
	// Cloud names the national cloud; empty means [Worldwide].
	Cloud Cloud `yaml:"cloud"`
	// Endpoints overrides single endpoints of Cloud (for private clouds
	// and emulators).
	Endpoints Endpoints `yaml:"endpoints"`
}

// ResolvedEndpoints returns the endpoints c talks to: the preset of
// c.Cloud with c.Endpoints' non-empty fields in their place.
func (c Config) ResolvedEndpoints() (Endpoints, error) { return Resolve(c.Cloud, c.Endpoints) }

// An Option changes how [Config.Credential] builds its credential.
type Option func(*options)

type options struct {
	transport policy.Transporter
	retry     *policy.RetryOptions
	getenv    func(string) string
}

// WithHTTPClient makes the credential send its requests through client (for
// example one that trusts a test CA). An *http.Client is an azcore
// Transporter.
func WithHTTPClient(client *http.Client) Option {
	return func(o *options) {
		if client != nil {
			o.transport = client
		}
	}
}

// WithTransport makes the credential send its requests through t.
func WithTransport(t policy.Transporter) Option { return func(o *options) { o.transport = t } }

// WithRetry replaces azcore's retry options for token requests (tests use
// it to fail fast instead of retrying a refused connection for seconds).
func WithRetry(r policy.RetryOptions) Option { return func(o *options) { o.retry = &r } }

// WithGetenv replaces os.Getenv for reading secrets named by environment
// variable.
func WithGetenv(getenv func(string) string) Option { return func(o *options) { o.getenv = getenv } }

// idPattern is what MSAL accepts in a tenant id: letters, digits, '.' and '-'.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9.-]+$`)

// Credential builds the azidentity credential c describes: a
// ClientSecretCredential, ClientCertificateCredential,
// ManagedIdentityCredential or WorkloadIdentityCredential whose authority
// host is c's login endpoint. Instance discovery is turned off when the
// login endpoint is not one of Microsoft's own hosts. Errors in c wrap
// [ErrConfig] and name the field; a secret or certificate that cannot be
// read names the variable or file.
func (c Config) Credential(opts ...Option) (azcore.TokenCredential, error) {
	o := options{getenv: os.Getenv}
	for _, f := range opts {
		f(&o)
	}
	ep, err := c.ResolvedEndpoints()
	if err != nil {
		return nil, err
	}
	co := azcore.ClientOptions{
		Cloud: azcloud.Configuration{
			ActiveDirectoryAuthorityHost: ep.Login + "/",
			Services:                     map[azcloud.ServiceName]azcloud.ServiceConfiguration{},
		},
		Transport: o.transport,
	}
	if o.retry != nil {
		co.Retry = *o.retry
	}
	noDiscovery := !knownLoginHost(ep.Login)

	method := c.Auth.Method
	if method == "" {
		method = ClientSecret
	}
	if method != ManagedIdentity {
		if err := c.checkIDs(); err != nil {
			return nil, err
		}
	}
	switch method {
	case ClientSecret:
		secret, err := c.secret(o.getenv)
		if err != nil {
			return nil, err
		}
		return azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery,
		})
	case ClientCertificate:
		if c.Auth.CertificateFile == "" {
			return nil, &ConfigError{Field: "auth.certificate_file", Reason: "required for client_certificate"}
		}
		data, err := os.ReadFile(c.Auth.CertificateFile)
		if err != nil {
			return nil, fmt.Errorf("azauth: reading client certificate: %w", err)
		}
		var password []byte
		if c.Auth.CertificatePasswordEnv != "" {
			password = []byte(o.getenv(c.Auth.CertificatePasswordEnv))
		}
		certs, key, err := azidentity.ParseCertificates(data, password)
		if err != nil {
			return nil, fmt.Errorf("azauth: client certificate %s: %w", c.Auth.CertificateFile, err)
		}
		return azidentity.NewClientCertificateCredential(c.TenantID, c.ClientID, certs, key, &azidentity.ClientCertificateCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery, SendCertificateChain: c.Auth.SendCertificateChain,
		})
	case ManagedIdentity:
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
		if c.ClientID != "" {
			mo.ID = azidentity.ClientID(c.ClientID)
		}
		return azidentity.NewManagedIdentityCredential(mo)
	case WorkloadIdentity:
		file := c.Auth.TokenFile
		if file == "" {
			file = o.getenv("AZURE_FEDERATED_TOKEN_FILE")
		}
		if file == "" {
			return nil, &ConfigError{Field: "auth.token_file", Reason: "required for workload_identity (or set AZURE_FEDERATED_TOKEN_FILE)"}
		}
		return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery,
			ClientID: c.ClientID, TenantID: c.TenantID, TokenFilePath: file,
		})
	default:
		return nil, &ConfigError{Field: "auth.method", Reason: fmt.Sprintf("unknown method %q (want client_secret, client_certificate, managed_identity or workload_identity)", string(method))}
	}
}

func (c Config) checkIDs() error {
	if c.TenantID == "" {
		return &ConfigError{Field: "tenant_id", Reason: "required"}
	}
	if !idPattern.MatchString(c.TenantID) {
		return &ConfigError{Field: "tenant_id", Reason: fmt.Sprintf("%q may hold only letters, digits, '.' and '-'", c.TenantID)}
	}
	if c.ClientID == "" {
		return &ConfigError{Field: "client_id", Reason: "required"}
	}
	return nil
}

func (c Config) secret(getenv func(string) string) (string, error) {
	if c.Auth.SecretFile != "" {
		b, err := os.ReadFile(c.Auth.SecretFile)
		if err != nil {
			return "", fmt.Errorf("azauth: reading client secret: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", &ConfigError{Field: "auth.secret_file", Reason: fmt.Sprintf("%s is empty", c.Auth.SecretFile)}
		}
		return s, nil
	}
	env := c.Auth.SecretEnv
	if env == "" {
		env = DefaultSecretEnv
	}
	s := getenv(env)
	if s == "" {
		return "", &ConfigError{Field: "auth.secret_env", Reason: fmt.Sprintf("environment variable %s is empty or unset", env)}
	}
	return s, nil
}
