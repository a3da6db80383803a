package exchange_test

import (
	"errors"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
)

// TestConfigErrorType: every configuration error of New is an
// *exchange.ConfigError naming the field; one that azauth found keeps
// azauth's error reachable (errors.Is azauth.ErrConfig, errors.As
// *azauth.ConfigError), the sink's own do not pass for azauth's.
func TestConfigErrorType(t *testing.T) {
	base := exchange.Config{Config: azauth.Config{TenantID: tenant, ClientID: clientID}, Credential: staticCred{}}
	tests := []struct {
		name      string
		mod       func(*exchange.Config)
		field     string
		fromAzure bool
	}{
		{"no tenant", func(c *exchange.Config) { c.TenantID = "" }, "organization", false},
		{"bad organization", func(c *exchange.Config) { c.Organization = "contoso.com/../x" }, "organization", false},
		{"bad lookup", func(c *exchange.Config) { c.Lookup = "guess" }, "lookup", false},
		{"bad read_back", func(c *exchange.Config) { c.ReadBack = "sometimes" }, "read_back", false},
		{"bad cloud", func(c *exchange.Config) { c.Cloud = "mars" }, "cloud", true},
		{"plain http endpoint", func(c *exchange.Config) { c.Endpoints.Exchange = "http://outlook.office365.com" }, "endpoints.exchange", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			_, err := exchange.New(c)
			var ce *exchange.ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field || ce.Reason == "" {
				t.Fatalf("New = %v (%T), want an *exchange.ConfigError for %s", err, err, tt.field)
			}
			if !errors.Is(err, exchange.ErrConfig) {
				t.Errorf("%v does not wrap exchange.ErrConfig", err)
			}
			var ae *azauth.ConfigError
			if got := errors.As(err, &ae); got != tt.fromAzure {
				t.Errorf("errors.As(*azauth.ConfigError) = %v, want %v", got, tt.fromAzure)
			}
			if got := errors.Is(err, azauth.ErrConfig); got != tt.fromAzure {
				t.Errorf("errors.Is(azauth.ErrConfig) = %v, want %v", got, tt.fromAzure)
			}
		})
	}
}
