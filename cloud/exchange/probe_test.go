package exchange_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
)

// TestTokenRoles: Token reads the roles claim of the token the sink signs
// in with; an app granted nothing lacks Exchange.ManageAsApp, and Ping
// (Get-Recipient -ResultSize 1) is refused by a service that requires it.
func TestTokenRoles(t *testing.T) {
	e := newEnv(t, exchangetest.Config{RequireRole: "Exchange.ManageAsApp"}, nil)
	e.exo.Add(seed()...)
	c, err := e.sink.Token(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.HasRoles || len(c.Roles) != 0 || c.AppID != clientID {
		t.Errorf("claims %+v: want no roles claim, appid %s", c, clientID)
	}
	if m := azauth.MissingRoles(c.Roles, exchange.RequiredRoles); len(m) != 1 || m[0].Name != "Exchange.ManageAsApp" {
		t.Errorf("missing %v, want Exchange.ManageAsApp", m)
	}
	if err := e.sink.Ping(ctx(t)); !errors.Is(err, exchange.ErrUnauthorized) {
		t.Errorf("Ping without the permission: %v, want ErrUnauthorized", err)
	}

	e.tokens.GrantRoles(tenant, clientID, e.exo.URL, "Exchange.ManageAsApp")
	good := newEnvWithTokens(t, e, nil)
	c, err = good.sink.Token(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !c.HasRoles || !slices.Equal(c.Roles, []string{"Exchange.ManageAsApp"}) || len(azauth.MissingRoles(c.Roles, exchange.RequiredRoles)) != 0 {
		t.Errorf("claims %+v: want roles [Exchange.ManageAsApp]", c)
	}
	if err := good.sink.Ping(ctx(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if n := e.exo.Requests("Get-Recipient"); n != 2 {
		t.Errorf("%d Get-Recipient calls, want 2 (one per Ping)", n)
	}
}

// newEnvWithTokens builds a second sink against e's emulators (a fresh
// credential, so a fresh token).
func newEnvWithTokens(t *testing.T, e *env, mod func(*exchange.Config)) *env {
	t.Helper()
	cfg := exchange.Config{
		Config: azauth.Config{
			TenantID: tenant, ClientID: clientID,
			Auth:      azauth.Auth{Method: azauth.ClientSecret, SecretEnv: "TEST_EXCHANGE_SECRET"},
			Endpoints: azauth.Endpoints{Login: e.tokens.URL, Exchange: e.exo.URL},
		},
		Organization: org,
		HTTPClient:   e.tokens.Client(),
	}
	if mod != nil {
		mod(&cfg)
	}
	sink, err := exchange.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{tokens: e.tokens, exo: e.exo, sink: sink}
}

// TestProbeRoundTrip: the probe writes a recipient's certificates back
// unchanged and reads them again; the values are the same.
func TestProbeRoundTrip(t *testing.T) {
	e := newEnv(t, exchangetest.Config{}, nil)
	e.exo.Add(seed()...)
	r := findAddr(t, e, "alice@contoso.com")
	if err := e.sink.Write(ctx(t), r, testCerts); err != nil {
		t.Fatal(err)
	}
	before := e.exo.Writes("alice@contoso.com")
	rt, err := e.sink.ProbeRoundTrip(ctx(t), "alice@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	if !rt.Written || !rt.RoundTrips() || len(rt.Before) != 3 {
		t.Errorf("round trip %+v: want written, 3 values, round-tripping", rt)
	}
	if got, _ := e.exo.Recipient("alice@contoso.com"); !sameCerts(exchangeCerts(got), testCerts) {
		t.Error("the probe changed the recipient's certificates")
	}
	if n := e.exo.Writes("alice@contoso.com"); n != before+1 {
		t.Errorf("%d writes by the probe, want 1", n-before)
	}
}

// TestProbeRoundTripMismatch: a service that stores other bytes than were
// sent (a wrong byte encoding) is found by the probe.
func TestProbeRoundTripMismatch(t *testing.T) {
	e := newEnv(t, exchangetest.Config{Misread: func(v []byte) []byte { return append([]byte{0}, v...) }}, nil)
	e.exo.Add(withCerts(seed()[0], testCerts)) // seeded as they are: Misread applies to writes
	rt, err := e.sink.ProbeRoundTrip(ctx(t), "alice@contoso.com")
	var mm *exchange.ReadBackMismatchError
	if !errors.As(err, &mm) || rt == nil || !rt.Written || rt.RoundTrips() {
		t.Errorf("probe on a misreading service: %+v, %v; want a ReadBackMismatchError", rt, err)
	}
}

// TestProbeNeverWritesUnread: a recipient whose certificates cannot be
// read is not written (writing back what was not read could clear it);
// nor is a directory-synced one, nor one that holds nothing.
func TestProbeNeverWritesUnread(t *testing.T) {
	e := newEnv(t, exchangetest.Config{CLIXML: exchangetest.CLIXMLPlaceholder, EntityPlaceholder: true}, nil)
	e.exo.Add(withCerts(seed()[0], testCerts), seed()[3], seed()[4])
	for _, id := range []string{"alice@contoso.com", "dave@contoso.com", "shared@contoso.com"} {
		rt, err := e.sink.ProbeRoundTrip(ctx(t), id)
		if !errors.Is(err, exchange.ErrNotProbed) || (rt != nil && rt.Written) {
			t.Errorf("%s: %+v, %v; want ErrNotProbed and nothing written", id, rt, err)
		}
		if n := e.exo.Writes(id); n != 0 {
			t.Errorf("%s written %d times", id, n)
		}
	}
	if got, _ := e.exo.Recipient("alice@contoso.com"); !sameCerts(exchangeCerts(got), testCerts) {
		t.Error("alice lost her certificates")
	}
}

func withCerts(r exchangetest.Recipient, c cloud.Certificates) exchangetest.Recipient {
	r.UserCertificate, r.UserSMimeCertificate = c.UserCertificate, c.UserSMIMECertificate
	return r
}

func exchangeCerts(r exchangetest.Recipient) cloud.Certificates {
	return cloud.Certificates{UserCertificate: r.UserCertificate, UserSMIMECertificate: r.UserSMimeCertificate}
}
