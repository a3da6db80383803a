// Package azauthtest is a Microsoft Entra token endpoint for tests, in the
// spirit of net/http/httptest: a TLS server on loopback that azidentity's
// real client-credentials, client-certificate, workload-identity and (App
// Service style) managed-identity flows can sign in to, and that issues
// signed tokens the service emulators check with [Server.Verify].
//
// # Using it (for the authors of other emulators and sinks)
//
//	tokens := azauthtest.NewServer()
//	defer tokens.Close()
//	tokens.AddSecretApp(tenant, clientID, "s3cret")
//
//	// The sink under test: azidentity against the emulator.
//	cfg := azauth.Config{
//		TenantID: tenant, ClientID: clientID,
//		Auth:      azauth.Auth{SecretEnv: "TEST_SECRET"}, // t.Setenv("TEST_SECRET", "s3cret")
//		Endpoints: azauth.Endpoints{Login: tokens.URL, Graph: graphEmulator.URL},
//	}
//	cred, err := cfg.Credential(azauth.WithHTTPClient(tokens.Client()))
//
//	// The service emulator: check each request's bearer token.
//	claims, err := tokens.Verify(bearer, graphEmulator.URL) // audience = resource
//
// Tokens carry aud (the resource: the requested scope without "/.default"),
// tid, appid, iat and exp, and are signed with a key only this server
// knows; Verify checks signature, expiry and audience and returns the
// claims, whose TenantID and AppID key per-app throttling. The TLS
// certificate is net/http/httptest's, so [Server.Client] (or any
// httptest.Server's Client) trusts every emulator at once; give it to the
// sink too. [Server.SetAudience] makes the tokens issued to one app carry a
// wrong audience, for the "wrong audience is refused" test.
//
// The traps this server honours (FACTS.md): the authority is HTTPS at the
// root of the host; /{tenant}/v2.0/.well-known/openid-configuration
// carries authorization_endpoint, token_endpoint and an issuer on the same
// scheme, host and port; the token answer has access_token and expires_in
// (an hour: MSAL treats less than five minutes as expired); MSAL adds
// "openid offline_access profile" to the scope. Credentials must be built
// with instance discovery off (azauth does this for any non-Microsoft host).
package azauthtest

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/internal/testpki"
)

// Errors [Server.Verify] wraps.
var (
	// ErrInvalidToken: the token is malformed, not signed by this server,
	// or expired.
	ErrInvalidToken = errors.New("azauthtest: invalid token")
	// ErrWrongAudience: the token is valid but was issued for another
	// resource.
	ErrWrongAudience = errors.New("azauthtest: token audience does not match")
)

// Claims are what a token says about its holder.
type Claims struct {
	// Audience is the resource the token is for ("https://outlook.office365.com").
	Audience string `json:"aud"`
	// TenantID is the tenant (as the app was registered).
	TenantID string `json:"tid"`
	// AppID is the client id of the application.
	AppID string `json:"appid"`
	// IssuedAt and Expires are Unix seconds.
	IssuedAt int64 `json:"iat"`
	Expires  int64 `json:"exp"`
	// Method is how the app signed in ("client_secret",
	// "client_certificate", "workload_identity", "managed_identity").
	Method string `json:"amr_method"`
	// Roles are the application permissions granted to the app for the
	// token's audience (see [Server.GrantRoles]); absent from the token,
	// as from Entra's, when there are none.
	Roles []string `json:"roles,omitempty"`
}

type appKey struct{ tenant, client string }

type app struct {
	secret    string
	cert      *x509.Certificate
	federated string
	audience  string // forced audience, "" for the requested one
	// roles are the application permissions granted, per resource
	// (normalised by normResource).
	roles map[string][]string
}

// Server is a running token endpoint. Its URL is the authority host to give
// azauth as [azauth.Endpoints.Login].
type Server struct {
	// URL is "https://127.0.0.1:port", without a trailing slash.
	URL string
	// TokenLifetime is how long issued tokens last (default one hour).
	// Set it before the first token request.
	TokenLifetime time.Duration

	srv *httptest.Server
	key []byte

	mu      sync.Mutex
	apps    map[appKey]*app
	mi      map[string]appKey // managed identity header secret → app
	issued  int
	refused int
	tokens  []string
}

// NewServer starts a token endpoint on loopback over TLS. Close it when done.
func NewServer() *Server {
	s := &Server{TokenLifetime: time.Hour, apps: map[appKey]*app{}, mi: map[string]appKey{}}
	s.key = make([]byte, 32)
	_, _ = rand.Read(s.key)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.openidConfiguration)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.token)
	mux.HandleFunc("GET /msi/token", s.managedIdentityToken)
	s.srv = httptest.NewTLSServer(mux)
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// Client returns an HTTP client that trusts the server's test CA (the
// certificate every httptest TLS server in the process uses).
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Certificate returns the server's TLS certificate, the CA a client must
// trust.
func (s *Server) Certificate() *x509.Certificate { return s.srv.Certificate() }

// AddSecretApp registers an application that signs in with a client secret.
func (s *Server) AddSecretApp(tenant, clientID, secret string) {
	s.app(tenant, clientID).secret = secret
}

// AddCertificateApp registers an application that signs in with a client
// assertion signed by the key of cert.
func (s *Server) AddCertificateApp(tenant, clientID string, cert *x509.Certificate) {
	s.app(tenant, clientID).cert = cert
}

// AddFederatedApp registers an application that signs in with a federated
// token (workload identity): the client assertion must equal assertion.
func (s *Server) AddFederatedApp(tenant, clientID, assertion string) {
	s.app(tenant, clientID).federated = assertion
}

// AddManagedIdentity registers a managed identity and returns the values of
// the IDENTITY_ENDPOINT and IDENTITY_HEADER environment variables under
// which azidentity's ManagedIdentityCredential reaches it (the App Service
// protocol). Tokens carry tid = tenant and appid = clientID.
func (s *Server) AddManagedIdentity(tenant, clientID string) (endpoint, header string) {
	s.app(tenant, clientID)
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	header = base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	s.mi[header] = appKey{strings.ToLower(tenant), strings.ToLower(clientID)}
	s.mu.Unlock()
	return s.URL + "/msi/token", header
}

// SetAudience makes every token issued from now on to the app carry aud as
// its audience instead of the resource asked for ("" restores the normal
// behaviour).
func (s *Server) SetAudience(tenant, clientID, aud string) {
	s.app(tenant, clientID).audience = aud
}

// GrantRoles grants the app the application permissions roles on
// resource (the audience, as "https://outlook.office365.com" or the
// emulator's URL), as an admin's consent does: every token issued from now
// on for that resource carries them in its roles claim. Calling it again
// replaces the resource's roles; no roles revokes them (the claim is then
// left out, as Entra leaves it out).
func (s *Server) GrantRoles(tenant, clientID, resource string, roles ...string) {
	a := s.app(tenant, clientID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.roles == nil {
		a.roles = map[string][]string{}
	}
	a.roles[normResource(resource)] = append([]string(nil), roles...)
}

// normResource is a resource as roles are keyed by it.
func normResource(r string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(r, "/.default"), "/"))
}

func (s *Server) app(tenant, clientID string) *app {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := appKey{strings.ToLower(tenant), strings.ToLower(clientID)}
	a := s.apps[k]
	if a == nil {
		a = &app{}
		s.apps[k] = a
	}
	return a
}

// Issued returns the number of tokens issued; Refused the number of token
// requests refused.
func (s *Server) Issued() int { s.mu.Lock(); defer s.mu.Unlock(); return s.issued }

// IssuedTokens returns every access token the server has issued, in
// order: tests scan logs and traces for them.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tokens...)
}

// Refused returns the number of token requests refused.
func (s *Server) Refused() int { s.mu.Lock(); defer s.mu.Unlock(); return s.refused }

// Issue signs a token carrying c, as the token endpoint would. Tests use it
// to make tokens the endpoint would not give (expired ones, other tenants).
func (s *Server) Issue(c Claims) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	p, _ := json.Marshal(c)
	body := h + "." + base64.RawURLEncoding.EncodeToString(p)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.sign(body))
}

func (s *Server) sign(body string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// Verify checks that token was issued by this server, has not expired, and
// is for audience (compared without a trailing slash, case-insensitively).
// It returns the token's claims; errors wrap [ErrInvalidToken] or
// [ErrWrongAudience].
func (s *Server) Verify(token, audience string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("%w: not a JWT", ErrInvalidToken)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.sign(parts[0]+"."+parts[1])) {
		return Claims{}, fmt.Errorf("%w: bad signature", ErrInvalidToken)
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: payload: %v", ErrInvalidToken, err)
	}
	var c Claims
	if err := json.Unmarshal(p, &c); err != nil {
		return Claims{}, fmt.Errorf("%w: payload: %v", ErrInvalidToken, err)
	}
	if time.Now().Unix() >= c.Expires {
		return c, fmt.Errorf("%w: expired at %s", ErrInvalidToken, time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	}
	norm := func(a string) string { return strings.ToLower(strings.TrimSuffix(a, "/")) }
	if norm(c.Audience) != norm(audience) {
		return c, fmt.Errorf("%w: token is for %q, not %q", ErrWrongAudience, c.Audience, audience)
	}
	return c, nil
}

func (s *Server) openidConfiguration(w http.ResponseWriter, r *http.Request) {
	t := r.PathValue("tenant")
	base := s.URL + "/" + t
	writeJSON(w, http.StatusOK, map[string]any{
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"issuer":                                base + "/v2.0",
		"jwks_uri":                              s.URL + "/" + t + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"tenant_region_scope":                   "WW",
	})
}

// oauthError answers as Entra does: a JSON body with error,
// error_description and error_codes, the last holding the number of the
// description's AADSTS code (0 when it has none).
func (s *Server) oauthError(w http.ResponseWriter, status int, code, desc string) {
	s.mu.Lock()
	s.refused++
	s.mu.Unlock()
	n := 0
	if m := aadstsCode.FindStringSubmatch(desc); m != nil {
		n, _ = strconv.Atoi(m[1])
	}
	writeJSON(w, status, map[string]any{"error": code, "error_description": desc, "error_codes": []int{n}})
}

var aadstsCode = regexp.MustCompile(`^AADSTS(\d+):`)

// hasTenant reports whether any application is registered in tenant.
func (s *Server) hasTenant(tenant string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.apps {
		if k.tenant == tenant {
			return true
		}
	}
	for _, k := range s.mi {
		if k.tenant == tenant {
			return true
		}
	}
	return false
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	tenant := strings.ToLower(r.PathValue("tenant"))
	if err := r.ParseForm(); err != nil {
		s.oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		s.oauthError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported here", gt))
		return
	}
	clientID := strings.ToLower(r.PostForm.Get("client_id"))
	s.mu.Lock()
	a := s.apps[appKey{tenant, clientID}]
	var cp app
	var granted []string
	if a != nil {
		cp = *a
		cp.roles = nil
		if resource, err := resourceOf(r.PostForm.Get("scope")); err == nil {
			granted = a.roles[normResource(resource)]
		}
	}
	s.mu.Unlock()
	if a == nil && !s.hasTenant(tenant) {
		// As Entra answers for a tenant that does not exist.
		s.oauthError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	if a == nil {
		s.oauthError(w, http.StatusBadRequest, "unauthorized_client", fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'.", clientID, tenant))
		return
	}
	resource, err := resourceOf(r.PostForm.Get("scope"))
	if err != nil {
		s.oauthError(w, http.StatusBadRequest, "invalid_scope", err.Error())
		return
	}
	method := ""
	switch {
	case r.PostForm.Get("client_secret") != "":
		if cp.secret == "" || !hmac.Equal([]byte(cp.secret), []byte(r.PostForm.Get("client_secret"))) {
			s.oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
			return
		}
		method = "client_secret"
	case r.PostForm.Get("client_assertion") != "":
		assertion := r.PostForm.Get("client_assertion")
		switch {
		case cp.federated != "" && hmac.Equal([]byte(cp.federated), []byte(assertion)):
			method = "workload_identity"
		case cp.cert != nil:
			if err := verifyAssertion(assertion, cp.cert, clientID, s.URL+"/"+r.PathValue("tenant")+"/oauth2/v2.0/token"); err != nil {
				s.oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS700027: Client assertion failed signature validation: "+err.Error())
				return
			}
			method = "client_certificate"
		default:
			s.oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS700213: No matching federated identity record or certificate found for the presented assertion.")
			return
		}
	default:
		s.oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000218: The request body must contain client_secret or client_assertion.")
		return
	}
	tok, life := s.mint(tenant, clientID, resource, cp.audience, method, granted)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     int(life.Seconds()),
		"ext_expires_in": int(life.Seconds()),
		"access_token":   tok,
	})
}

func (s *Server) managedIdentityToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	k, ok := s.mi[r.Header.Get("X-IDENTITY-HEADER")]
	var forced string
	var granted []string
	if a := s.apps[k]; a != nil {
		forced = a.audience
		granted = a.roles[normResource(r.URL.Query().Get("resource"))]
	}
	s.mu.Unlock()
	if !ok {
		s.oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown X-IDENTITY-HEADER")
		return
	}
	if id := r.URL.Query().Get("client_id"); id != "" && !strings.EqualFold(id, k.client) {
		s.oauthError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("no user-assigned identity %q on this resource", id))
		return
	}
	resource := strings.TrimSuffix(r.URL.Query().Get("resource"), "/")
	if resource == "" {
		s.oauthError(w, http.StatusBadRequest, "invalid_request", "resource is required")
		return
	}
	tok, life := s.mint(k.tenant, k.client, resource, forced, "managed_identity", granted)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_on":   strconv.FormatInt(time.Now().Add(life).Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    k.client,
	})
}

func (s *Server) mint(tenant, clientID, resource, forced, method string, roles []string) (string, time.Duration) {
	life := s.TokenLifetime
	if life <= 0 {
		life = time.Hour
	}
	aud := resource
	if forced != "" {
		aud = forced
	}
	now := time.Now()
	tok := s.Issue(Claims{Audience: aud, TenantID: tenant, AppID: clientID, IssuedAt: now.Unix(), Expires: now.Add(life).Unix(), Method: method, Roles: roles})
	s.mu.Lock()
	s.issued++
	s.tokens = append(s.tokens, tok)
	s.mu.Unlock()
	return tok, life
}

// resourceOf returns the resource of the one ".default" scope in scope,
// ignoring the OpenID scopes MSAL always adds.
func resourceOf(scope string) (string, error) {
	var res []string
	for _, sc := range strings.Fields(scope) {
		switch sc {
		case "openid", "offline_access", "profile":
			continue
		}
		if !strings.HasSuffix(sc, "/.default") {
			return "", fmt.Errorf("AADSTS70011: scope %q is not valid for the client credentials flow (want <resource>/.default)", sc)
		}
		res = append(res, strings.TrimSuffix(sc, "/.default"))
	}
	if len(res) != 1 {
		return "", fmt.Errorf("AADSTS70011: want exactly one <resource>/.default scope, got %q", scope)
	}
	return res[0], nil
}

// verifyAssertion checks a client assertion JWT (PS256 or RS256, as MSAL
// makes them) against cert: signature, iss = sub = clientID, aud = the
// token endpoint, and not expired.
func verifyAssertion(assertion string, cert *x509.Certificate, clientID, tokenEndpoint string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Aud string          `json:"aud"`
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Exp json.Number     `json:"exp"`
		Raw json.RawMessage `json:"-"`
	}
	for i, dst := range []any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return err
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("certificate key is %T, want RSA", cert.PublicKey)
	}
	switch hdr.Alg {
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, nil)
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	default:
		err = fmt.Errorf("alg %q not supported", hdr.Alg)
	}
	if err != nil {
		return err
	}
	if !strings.EqualFold(claims.Iss, clientID) || !strings.EqualFold(claims.Sub, clientID) {
		return fmt.Errorf("iss/sub %q/%q is not the client id", claims.Iss, claims.Sub)
	}
	if !strings.EqualFold(claims.Aud, tokenEndpoint) {
		return fmt.Errorf("aud %q is not the token endpoint %q", claims.Aud, tokenEndpoint)
	}
	exp, err := claims.Exp.Int64()
	if err != nil || time.Now().Unix() >= exp {
		return errors.New("assertion expired")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// NewClientCertificate makes a self-signed RSA certificate for an
// application's client-certificate sign-in, returned parsed and as PEM
// holding the certificate and its PKCS#8 private key (what
// azauth.Auth.CertificateFile reads).
func NewClientCertificate(commonName string) (*x509.Certificate, []byte, error) {
	// The real clock: the certificate signs client assertions, which
	// are judged on it like the tokens.
	now := time.Now()
	c, err := testpki.SelfSigned(testpki.Clock(time.Now), testpki.FreshKey(testpki.RSA),
		testpki.Serial(big.NewInt(now.UnixNano())), testpki.CommonName(commonName),
		testpki.Validity(now.Add(-time.Hour), now.Add(24*time.Hour)),
		testpki.KeyUsage(x509.KeyUsageDigitalSignature), testpki.ExtKeyUsage())
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := c.KeyPEM()
	if err != nil {
		return nil, nil, err
	}
	cert, out := c.X509(), append(c.PEM(), keyPEM...)
	return cert, out, nil
}
